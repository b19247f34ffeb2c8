"""Mapping a whole raster time series block by block: class map, confidence and probability GeoTIFFs.

Memory stays flat: the raster is cut into ``block`` x ``block`` blocks, each read with a halo of whole tiles (so
the blend equals whole-array prediction), the next block read and normalised in a background thread while the
network works on the current one, and every block written to the outputs and flushed before the next.

Under torchrun (``WORLD_SIZE > 1``) block ``i`` goes to rank ``i % world_size``; every rank stores its blocks as
raw arrays in a temporary folder beside the map, and rank 0 assembles the one GeoTIFF of each output after all
ranks agree they succeeded, so the result is identical, pixel for pixel, to a single-process run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from ..atomic import StagedOutputs, WriteFailed, atomic_output, check_writable
from ..classes import ClassTable
from ..errors import CancelledError, EngineError, release_frames
from ..progress import CancelledCallback, ProgressCallback, Reporter
from ..gdalwrite import closing_checked
from .smoothing import SmoothingOptions, bayesian_smooth
from .styles import apply_class_colors, class_qml, confidence_qml, sidecar_path, style_class_raster, uncertainty_qml
from .tiling import TilePredictor, block_windows, prefetched
from .uncertainty import UNCERTAINTY_DESCRIPTION, normalised_entropy
from .vectors import PolygonBurner

DEFAULT_GDAL_CACHE_MB = 8
MAX_BLOCK_INPUT_BYTES = 256 * 1024 * 1024
_TIFF_OPTIONS = ["TILED=YES", "COMPRESS=DEFLATE", "BIGTIFF=IF_SAFER"]
RASTER_SUFFIXES = (".tif", ".tiff")
NODATA = 0


@dataclass
class FieldStats:
    """Per-polygon sums of class probabilities over the mapped pixels of each polygon (index 0 = no polygon)."""

    vector: str
    layer: Optional[str]
    fids: list[int]  # source feature id of polygon index 1..N
    sums: np.ndarray  # (N + 1, K) float64
    counts: np.ndarray  # (N + 1,) int64 mapped pixels per polygon

    def add(self, ids: np.ndarray, probs: np.ndarray, mapped: np.ndarray) -> None:
        sel = mapped & (ids > 0)
        if not sel.any():
            return
        index = ids[sel]
        size = len(self.counts)
        self.counts += np.bincount(index, minlength=size)
        for k in range(probs.shape[0]):
            self.sums[:, k] += np.bincount(index, weights=probs[k][sel], minlength=size)


@dataclass
class PredictRasterResult:
    """What ``predict_raster`` wrote. ``class_counts`` and ``field_stats`` are complete on rank 0."""

    map_path: str
    confidence_path: Optional[str]
    probabilities_path: Optional[str]
    pixels: int  # pixels of the grid (width x height)
    seconds: float
    mapped_pixels: int = 0  # pixels given a class (not nodata)
    class_counts: Optional[np.ndarray] = None  # (K + 1,) pixels per map value 0..K
    field_stats: Optional[FieldStats] = None
    rank: int = 0
    world_size: int = 1
    qml_path: Optional[str] = None
    uncertainty_path: Optional[str] = None


@dataclass
class _BlockResult:
    classes: np.ndarray
    confidence: np.ndarray
    probabilities: Optional[np.ndarray]
    field_ids: Optional[np.ndarray] = field(default=None)
    uncertainty: Optional[np.ndarray] = None


def _map_dtype(num_classes: int):
    from osgeo import gdal

    if num_classes > 65534:
        raise EngineError(f"A map of {num_classes} classes cannot be written; use at most 65534 classes.")
    return (gdal.GDT_Byte, np.uint8) if num_classes <= 255 else (gdal.GDT_UInt16, np.uint16)


class _GeoTiffOutputs:
    """The open output GeoTIFFs (on their temporary names); blocks are written and flushed one by one."""

    def __init__(self, grid, classes: ClassTable, map_path: Path, conf_path: Optional[Path],
                 prob_path: Optional[Path], tiff_tile: int = 256, unc_path: Optional[Path] = None) -> None:
        from osgeo import gdal

        gdal.UseExceptions()
        self.counts = np.zeros(len(classes) + 1, np.int64)
        driver = gdal.GetDriverByName("GTiff")
        map_type, self.map_numpy = _map_dtype(len(classes))

        def create(path: Path, bands: int, datatype, extra: list[str]):
            try:
                options = _TIFF_OPTIONS + [f"BLOCKXSIZE={tiff_tile}", f"BLOCKYSIZE={tiff_tile}"] + extra
                dataset = driver.Create(str(path), grid.width, grid.height, bands, datatype, options)
            except RuntimeError as exc:
                raise EngineError(f"Cannot write '{path.name}' in '{path.parent}': {exc}. Check the folder and the free disk space.") from None
            dataset.SetGeoTransform(tuple(grid.geotransform))
            if grid.crs_wkt:
                dataset.SetProjection(grid.crs_wkt)
            for b in range(1, bands + 1):
                dataset.GetRasterBand(b).SetNoDataValue(NODATA)
            return dataset

        self.map = self.conf = self.prob = self.unc = None
        try:
            self.map = create(map_path, 1, map_type, [])
            apply_class_colors(self.map.GetRasterBand(1), classes)
            self.map.GetRasterBand(1).SetDescription("crop class")
            self.conf = create(conf_path, 1, gdal.GDT_Float32, ["PREDICTOR=3"]) if conf_path else None
            if self.conf is not None:
                self.conf.GetRasterBand(1).SetDescription("confidence (highest class probability)")
            self.unc = create(unc_path, 1, gdal.GDT_Float32, ["PREDICTOR=3"]) if unc_path else None
            if self.unc is not None:
                self.unc.GetRasterBand(1).SetDescription(UNCERTAINTY_DESCRIPTION)
            self.prob = create(prob_path, len(classes), gdal.GDT_Float32, ["PREDICTOR=3", "INTERLEAVE=BAND"]) if prob_path else None
            if self.prob is not None:
                for info in classes:
                    self.prob.GetRasterBand(info.value).SetDescription(info.name)
        except BaseException:
            with contextlib.suppress(RuntimeError):
                self.close()  # the ones already created, now (a full disk may fail at the second)
            raise

    def write(self, x0: int, y0: int, result: _BlockResult) -> None:
        self.map.GetRasterBand(1).WriteArray(result.classes, x0, y0)
        self.counts += np.bincount(result.classes.ravel(), minlength=len(self.counts))[: len(self.counts)]
        # Flushing drops the written blocks from GDAL's cache, so memory does not grow with the raster.
        self.map.FlushCache()
        if self.conf is not None:
            self.conf.GetRasterBand(1).WriteArray(result.confidence, x0, y0)
            self.conf.FlushCache()
        if self.unc is not None and result.uncertainty is not None:
            self.unc.GetRasterBand(1).WriteArray(result.uncertainty, x0, y0)
            self.unc.FlushCache()
        if self.prob is not None and result.probabilities is not None:
            for k, layer in enumerate(result.probabilities, start=1):
                self.prob.GetRasterBand(k).WriteArray(layer, x0, y0)
            self.prob.FlushCache()

    def close(self) -> None:
        """Flushes and closes every output; a write that failed (full disk) raises ``RuntimeError``."""
        error: Optional[BaseException] = None
        for name in ("map", "conf", "prob", "unc"):
            dataset = getattr(self, name)
            try:
                if dataset is not None:
                    dataset.FlushCache()
            except RuntimeError as exc:
                error = error or WriteFailed(f"writing '{name}' failed: {exc}")
            dataset = None
            try:
                with closing_checked(name):
                    setattr(self, name, None)
            except RuntimeError as exc:
                error = error or exc
        if error is not None:
            raise error


# -- distributed helpers ------------------------------------------------------------------------------------------
def _dist_info(rank: Optional[int], world_size: Optional[int]) -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)``: given, or from the torchrun process group (joined if needed)."""
    from ..training import distributed as dist_helpers

    if world_size is None or world_size > 1:
        if dist_helpers.launched_distributed() or (world_size or 1) > 1:
            info = dist_helpers.init_distributed()
            if info.world_size <= 1 and (world_size or 1) > 1:
                raise EngineError("Distributed mapping needs torchrun: start it with torchrun --nproc_per_node N.")
            return (info.rank if rank is None else rank, info.world_size if world_size is None else world_size,
                    info.local_rank)
    return (rank or 0), (world_size or 1), 0


def _all_ok(ok: bool) -> bool:
    """True when every rank reports ``ok`` (a collective: every rank must call it the same number of times)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return ok
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    flag = torch.tensor([1 if ok else 0], dtype=torch.int32, device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


def _parts_folder(out_map: Path, world_size: int) -> Path:
    return out_map.with_name(f".{out_map.stem}.parts-{world_size}")


# -- the public function ------------------------------------------------------------------------------------------
def predict_raster(
    bundle,
    series,
    out_map: Union[str, os.PathLike],
    out_confidence: Union[str, os.PathLike, None] = None,
    out_probabilities: Union[str, os.PathLike, None] = None,
    tile: int = 32,
    overlap: int = 8,
    batch_size: Optional[int] = 16,
    block: int = 512,
    device: str = "auto",
    precision: str = "auto",
    extent_mask: Union[np.ndarray, str, os.PathLike, None] = None,
    extent_layer: Optional[str] = None,
    field_vector: Union[str, os.PathLike, None] = None,
    field_layer: Optional[str] = None,
    rank: Optional[int] = None,
    world_size: Optional[int] = None,
    gdal_cache_mb: Optional[int] = DEFAULT_GDAL_CACHE_MB,
    progress: Optional[ProgressCallback] = None,
    cancelled: Optional[CancelledCallback] = None,
    staging: Optional[StagedOutputs] = None,
    out_uncertainty: Union[str, os.PathLike, None] = None,
    smoothing: Optional[SmoothingOptions] = None,
    parcel_vector: Union[str, os.PathLike, None] = None,
    parcel_layer: Optional[str] = None,
) -> PredictRasterResult:
    """Maps ``series`` with the model of ``bundle`` and writes the class map (and optional confidence / probabilities).

    The class GeoTIFF is uint8 (uint16 above 255 classes), tiled, DEFLATE-compressed, on the series' grid, nodata 0
    where no valid observation exists or outside ``extent_mask`` (a boolean array on the grid, or a polygon file;
    tiles wholly outside are skipped), with a colour table, category names and a ``.qml`` sidecar for QGIS.
    With ``field_vector`` the per-polygon probability sums are gathered on the way (``result.field_stats``) for
    ``field_results``. Outputs appear complete or not at all (cancel and errors leave nothing); with ``staging``
    they stay under their temporary names until the caller commits it (with its other outputs).
    Values far outside the model's band statistics are invalid observations (``TimeSeries.exclude_extremes``).

    ``block`` is shrunk for long or wide series so one block's input stays near ``MAX_BLOCK_INPUT_BYTES``.
    GDAL's block cache, process-wide and by default 5 % of the RAM, would otherwise fill with every source tile read
    and make memory grow with the raster: for the run it is capped at ``gdal_cache_mb`` (None leaves it alone).
    """
    started = time.perf_counter()
    reporter = Reporter(progress, cancelled)
    if getattr(bundle, "classes", None) is None:
        raise EngineError("The model has no crop classes (it is only pre-trained). Train it on labelled fields first.")
    if block < 1:
        raise EngineError(f"The block size must be positive, not {block}.")
    out_map, out_conf, out_prob, out_unc = _check_outputs(out_map, out_confidence, out_probabilities, out_uncertainty)
    if smoothing is not None:
        smoothing.validate()
        if smoothing.by_parcel and not parcel_vector:
            raise EngineError("Smoothing within parcels needs a parcel (fields) layer: give one, or smooth without it.")
    if staging is None:
        with StagedOutputs() as own:
            return predict_raster(
                bundle, series, out_map, out_conf, out_prob, tile, overlap, batch_size, block, device, precision,
                extent_mask, extent_layer, field_vector, field_layer, rank, world_size, gdal_cache_mb, progress,
                cancelled, staging=own, out_uncertainty=out_unc, smoothing=smoothing, parcel_vector=parcel_vector,
                parcel_layer=parcel_layer,
            )
    if hasattr(series, "exclude_extremes"):
        series.exclude_extremes(bundle.mean, bundle.std, list(bundle.band_names))
    rank, world, local_rank = _dist_info(rank, world_size)
    if world > 1 and device == "auto" and torch.cuda.is_available():
        device = f"cuda:{local_rank % torch.cuda.device_count()}"

    with _gdal_cache_limit(gdal_cache_mb):
        grid = series.grid
        width, height = int(grid.width), int(grid.height)
        classes: ClassTable = bundle.classes
        bands = list(bundle.band_names)

        def read(x0: int, y0: int, w: int, h: int):
            return series.read(x0, y0, w, h, bands=bands)

        inside_of = _extent_function(extent_mask, extent_layer, grid)
        fields = PolygonBurner(str(field_vector), field_layer, grid, purpose="field") if field_vector else None
        parcels = (PolygonBurner(str(parcel_vector), parcel_layer, grid, purpose="parcel")
                   if smoothing is not None and smoothing.by_parcel else None)
        stats = (
            FieldStats(str(field_vector), field_layer, fields.fids, np.zeros((fields.count + 1, len(classes))),
                       np.zeros(fields.count + 1, np.int64))
            if fields is not None else None
        )
        predictor = TilePredictor(bundle, series.dates, width, height, tile, overlap, batch_size, device, precision)
        block = effective_block(block, len(series.dates), len(bands), tile)
        blocks = block_windows(width, height, block)
        mine = list(range(rank, len(blocks), world))
        want_probs = out_prob is not None

        def load(index: int):
            x0, y0, w, h = blocks[index]
            region = predictor.prepare(read, x0, y0, w, h, inside_of(x0, y0, w, h))
            ids = fields.burn(x0, y0, w, h) if fields is not None else None
            parcel_ids = parcels.burn(x0, y0, w, h) if parcels is not None else None
            return region, ids, parcel_ids

        def computed(span: Reporter):
            """Yields ``(block index, _BlockResult)`` for this rank's blocks."""
            for n, (index, (region, ids, parcel_ids)) in enumerate(prefetched(mine, load)):
                span.report(n / max(len(mine), 1), f"Mapping block {n + 1} of {len(mine)}")
                probs = predictor.predict(region, span.check)
                if smoothing is not None:
                    span.check()
                    probs = bayesian_smooth(probs, smoothing, parcel_ids)
                result = _block_result(probs, classes, want_probs, out_unc is not None)
                if stats is not None:
                    stats.add(ids, probs, result.classes > 0)
                # Drop this block's arrays before the next is fetched (which starts reading the one after).
                del region, ids, parcel_ids, probs
                yield index, result

        if world == 1:
            counts = _write_outputs(grid, classes, out_map, out_conf, out_prob,
                                    ((blocks[i], r) for i, r in computed(reporter.span(0.0, 0.98))), _tiff_tile(block),
                                    staging, out_unc)
        else:
            counts, stats = _distributed(grid, classes, out_map, out_conf, out_prob, blocks, computed, stats,
                                         rank, world, reporter, _tiff_tile(block), staging, out_unc)
        qml = None
        if rank == 0:
            qml = _style_outputs(out_map, out_conf, classes, staging, out_unc)
    reporter.report(1.0, "Map written")
    return PredictRasterResult(
        str(out_map), str(out_conf) if out_conf else None, str(out_prob) if out_prob else None,
        width * height, time.perf_counter() - started,
        mapped_pixels=int(counts[1:].sum()) if counts is not None else 0,
        class_counts=counts, field_stats=stats, rank=rank, world_size=world, qml_path=qml,
        uncertainty_path=str(out_unc) if out_unc else None,
    )


def effective_block(block: int, dates: int, bands: int, tile: int) -> int:
    """``block``, shrunk so one block's float32 input fits ``MAX_BLOCK_INPUT_BYTES``.

    A shrunk block is a multiple of 256 (else of 64) so that it covers whole tiles of the output GeoTIFF.
    """
    per_pixel = dates * bands * 4 + dates  # normalised values and the valid mask
    side = int((MAX_BLOCK_INPUT_BYTES / max(per_pixel, 1)) ** 0.5) - 2 * tile  # room for the halo
    if side >= block:
        return block
    return side // 256 * 256 if side >= 256 else max(64, tile, side // 64 * 64)


def _tiff_tile(block: int) -> int:
    """Output GeoTIFF tile size: blocks then write whole tiles (a tile written in two goes is stored twice)."""
    if block % 256 == 0:
        return 256
    return block if block % 16 == 0 and block <= 512 else 256


@contextlib.contextmanager
def _gdal_cache_limit(limit_mb: Optional[int]):
    """Caps GDAL's (process-wide) block cache at ``limit_mb`` for the duration, then restores it."""
    if limit_mb is None:
        yield
        return
    from osgeo import gdal

    before = gdal.GetCacheMax()
    limit = int(limit_mb) * 1024 * 1024
    if before > limit:
        gdal.SetCacheMax(limit)
    try:
        yield
    finally:
        if before > limit:
            gdal.SetCacheMax(before)


def _check_outputs(*paths) -> list[Optional[Path]]:
    """The output paths, checked before any work: writable folders, no folder in the way, no path twice."""
    checked = [check_writable(p) if p else None for p in paths]
    for path in checked:
        if path is not None and not path.is_dir() and path.suffix.lower() not in RASTER_SUFFIXES:
            raise EngineError(f"The output '{path}' would be a GeoTIFF with a '{path.suffix}' name, which other "
                              f"programs would misread. Name it '{path.with_suffix('.tif').name}'.")
    given = [p.resolve() for p in checked if p is not None]
    if len(set(given)) < len(given):
        raise EngineError("The same file was chosen for two outputs. Give the map, confidence, uncertainty and probabilities their own names.")
    for path in checked:
        if path is not None and path.is_dir():
            raise EngineError(f"The output '{path}' is a folder. Give a file name such as '{path / 'crop_map.tif'}'.")
    return checked


def _block_result(probs: np.ndarray, classes: ClassTable, keep_probs: bool, uncertainty: bool = False) -> _BlockResult:
    """Class (argmax + 1, nodata 0 where every probability is 0) and confidence of a block's probabilities."""
    numpy_type = np.uint8 if len(classes) <= 255 else np.uint16
    confidence = probs.max(axis=0)
    labels = np.where(confidence > 0, probs.argmax(axis=0) + 1, NODATA).astype(numpy_type)
    entropy = normalised_entropy(probs) if uncertainty else None
    return _BlockResult(labels, confidence.astype(np.float32), probs if keep_probs else None, uncertainty=entropy)


def _extent_function(extent_mask, extent_layer, grid):
    """``(x0, y0, w, h) -> bool (h, w)`` or None: which pixels of a block lie inside the extent."""
    if extent_mask is None:
        return lambda x0, y0, w, h: None
    if isinstance(extent_mask, np.ndarray):
        if extent_mask.shape != (grid.height, grid.width):
            raise EngineError(
                f"The extent mask is {extent_mask.shape[1]} x {extent_mask.shape[0]} pixels but the images are "
                f"{grid.width} x {grid.height}."
            )
        mask = extent_mask.astype(bool, copy=False)
        return lambda x0, y0, w, h: mask[y0 : y0 + h, x0 : x0 + w]
    burner = PolygonBurner(str(extent_mask), extent_layer, grid, purpose="extent", ids=False)
    return lambda x0, y0, w, h: burner.burn(x0, y0, w, h) > 0


def _write_outputs(grid, classes, out_map, out_conf, out_prob, items, tiff_tile: int,
                   staging: StagedOutputs, out_unc: Optional[Path] = None) -> np.ndarray:
    """Writes ``(window, _BlockResult)`` items into the output GeoTIFFs, staged in ``staging``; returns class counts."""
    tmp_map = staging.stage(out_map)
    tmp_conf = staging.stage(out_conf) if out_conf else None
    tmp_prob = staging.stage(out_prob) if out_prob else None
    tmp_unc = staging.stage(out_unc) if out_unc else None
    outputs = _GeoTiffOutputs(grid, classes, tmp_map, tmp_conf, tmp_prob, tiff_tile, tmp_unc)
    try:
        for (x0, y0, _, _), result in items:
            outputs.write(x0, y0, result)
    except BaseException as exc:
        # The error's frames hold the datasets (GDAL's own wrapper frame among them): close them now, quietly.
        with contextlib.suppress(RuntimeError), closing_checked("outputs"):
            release_frames(exc)
            outputs.close()
        raise
    outputs.close()  # a failed flush or close (full disk) raises here
    return outputs.counts


def _style_outputs(out_map: Path, out_conf: Optional[Path], classes: ClassTable, staging: StagedOutputs,
                   out_unc: Optional[Path] = None) -> str:
    """Category names on the staged map, and the ``.qml`` sidecars staged under their final names' temporaries."""
    style_class_raster(staging.temporary(out_map), classes)
    qml = sidecar_path(out_map)
    staging.stage(qml).write_text(class_qml(classes), encoding="utf-8")
    if out_conf:
        staging.stage(sidecar_path(out_conf)).write_text(confidence_qml(len(classes)), encoding="utf-8")
    if out_unc:
        staging.stage(sidecar_path(out_unc)).write_text(uncertainty_qml(), encoding="utf-8")
    return str(qml)


def _distributed(grid, classes, out_map, out_conf, out_prob, blocks, computed, stats, rank, world, reporter,
                 tiff_tile: int, staging: StagedOutputs, out_unc: Optional[Path] = None):
    """Every rank maps its blocks into raw arrays; rank 0 assembles the GeoTIFFs once all ranks succeeded."""
    parts = _parts_folder(out_map, world)
    written: list[Path] = []
    error: Optional[BaseException] = None
    try:
        parts.mkdir(parents=True, exist_ok=True)
        for index, result in computed(reporter.span(0.0, 0.9)):
            path = parts / f"block_{index:07d}.npz"
            arrays = {"classes": result.classes, "confidence": result.confidence}
            if result.probabilities is not None:
                arrays["probabilities"] = result.probabilities
            if result.uncertainty is not None:
                arrays["uncertainty"] = result.uncertainty
            with atomic_output(path) as tmp:
                with open(tmp, "wb") as handle:
                    np.savez(handle, **arrays)
            written.append(path)
        if stats is not None:
            path = parts / f"fields_rank{rank:04d}.npz"
            with atomic_output(path) as tmp:
                with open(tmp, "wb") as handle:
                    np.savez(handle, sums=stats.sums, counts=stats.counts)
            written.append(path)
    except BaseException as exc:  # every rank must reach the agreement below, whatever happened
        error = exc
    if not _all_ok(error is None):
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        if rank == 0:  # every rank has stopped writing by now
            shutil.rmtree(parts, ignore_errors=True)
        if error is not None:
            raise error
        raise EngineError("Another process of the distributed run failed (see its message); no map was written.")

    counts = None
    if rank == 0:
        try:
            def items():
                for index, window in enumerate(blocks):
                    reporter.report(0.9 + 0.09 * index / len(blocks), "Assembling the map")
                    with np.load(parts / f"block_{index:07d}.npz") as data:
                        probs = data["probabilities"] if "probabilities" in data.files else None
                        unc = data["uncertainty"] if "uncertainty" in data.files else None
                        yield window, _BlockResult(data["classes"], data["confidence"], probs, uncertainty=unc)

            counts = _write_outputs(grid, classes, out_map, out_conf, out_prob, items(), tiff_tile, staging, out_unc)
            if stats is not None:
                stats.sums[:] = 0
                stats.counts[:] = 0
                for r in range(world):
                    with np.load(parts / f"fields_rank{r:04d}.npz") as data:
                        stats.sums += data["sums"]
                        stats.counts += data["counts"]
        except BaseException as exc:
            error = exc
        finally:
            shutil.rmtree(parts, ignore_errors=True)
    if not _all_ok(error is None):
        if error is not None:
            raise error
        raise EngineError("The first process of the distributed run could not assemble the map (see its message).")
    return counts, (stats if rank == 0 else None)


__all__ = ["FieldStats", "PredictRasterResult", "predict_raster", "CancelledError"]
