"""Field-level results: for every polygon, the class with the highest mean probability and that probability.

Where the probabilities come from, without ever holding a whole raster:
- from ``predict_raster(..., field_vector=...)``: while mapping, each block's field-id raster is burnt from the
  polygons and the class probabilities are summed per polygon (``PredictRasterResult.field_stats``); nothing is
  read again. This is what the pipeline does.
- from a probability stack GeoTIFF (``out_probabilities`` of ``predict_raster``, or its path): it is read block by
  block and summed the same way.

The output GeoPackage holds every polygon of the input layer with its original geometry, CRS and attributes, plus
``crop_class`` (class name), ``crop_value`` (class value 1..K), ``crop_prob`` (mean probability of that class over
the polygon's mapped pixels, 0..1) and ``crop_pixels`` (mapped pixels whose centre lies in the polygon); after
training, ``crop_split`` says which polygons were training, validation or test fields. Polygons
without a mapped pixel (outside the image, or only clouds) get NULL in the first three. Fields of the input named
like these are overwritten. Where polygons overlap, a pixel counts for the one drawn last.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ..atomic import StagedOutputs, WriteFailed, check_writable
from ..classes import ClassTable
from ..errors import EngineError
from ..gdalwrite import check_ogr, closing_checked
from ..progress import CancelledCallback, ProgressCallback, Reporter
from .raster import FieldStats, PredictRasterResult
from .tiling import block_windows
from .vectors import PolygonBurner, open_polygon_layer

OUTPUT_FIELDS = ("crop_class", "crop_value", "crop_prob", "crop_pixels", "crop_split")
SPLIT_FIELD = "crop_split"  # train / val / test / unused: what a labelled polygon was used for (map_crops only)


def field_results(
    bundle_classes: ClassTable,
    probabilities_source: Union[PredictRasterResult, FieldStats, str, os.PathLike],
    vector: Union[str, os.PathLike],
    out_gpkg: Union[str, os.PathLike],
    layer: Optional[str] = None,
    block: int = 512,
    progress: Optional[ProgressCallback] = None,
    cancelled: Optional[CancelledCallback] = None,
    staging: Optional[StagedOutputs] = None,
    field_splits: Optional[dict[int, str]] = None,
) -> str:
    """Writes the per-polygon class and probability of ``vector`` (layer ``layer``) to ``out_gpkg``; returns its path.

    ``field_splits`` (feature id -> train / val / test / unused): a ``crop_split`` column saying what each labelled
    polygon was used for (NULL for the others).

    ``probabilities_source``: a ``PredictRasterResult`` (its ``field_stats`` when it gathered them for this layer,
    else its probability stack), ``FieldStats``, or the path of a probability stack GeoTIFF.
    With ``staging`` the GeoPackage stays under its temporary name until the caller commits it.
    """
    if staging is None:
        with StagedOutputs() as own:
            return field_results(bundle_classes, probabilities_source, vector, out_gpkg, layer, block, progress,
                                 cancelled, staging=own, field_splits=field_splits)
    reporter = Reporter(progress, cancelled)
    out_gpkg = check_writable(out_gpkg)
    if Path(out_gpkg).resolve() == Path(vector).resolve():
        raise EngineError("The field results would overwrite the input polygons. Choose another output file.")
    if out_gpkg.suffix.lower() != ".gpkg":
        raise EngineError(f"The field-level results are written as a GeoPackage: name the output "
                          f"'{out_gpkg.with_suffix('.gpkg').name}', not '{out_gpkg.name}'.")
    stats = _stats_from(probabilities_source, bundle_classes, str(vector), layer, block, reporter.span(0.0, 0.7))
    if stats.sums.shape[1] != len(bundle_classes):
        raise EngineError(
            f"The probabilities hold {stats.sums.shape[1]} classes but the model has {len(bundle_classes)}."
        )
    reporter.report(0.7, "Writing field results")
    means = stats.sums / np.maximum(stats.counts, 1)[:, None]
    best = means.argmax(axis=1)
    by_fid = {fid: i for i, fid in enumerate(stats.fids, start=1)}
    _write_gpkg(str(vector), layer, staging.stage(out_gpkg), bundle_classes, by_fid, best, means, stats.counts,
                reporter, field_splits)
    reporter.report(1.0, "Field results written")
    return str(out_gpkg)


def _stats_from(source, classes: ClassTable, vector: str, layer: Optional[str], block: int,
                reporter: Reporter) -> FieldStats:
    if isinstance(source, FieldStats):
        return source
    if isinstance(source, PredictRasterResult):
        stats = source.field_stats
        if stats is not None and _same_layer(stats, vector, layer):
            return stats
        if source.probabilities_path:
            return stats_from_stack(source.probabilities_path, vector, layer, block, reporter)
        raise EngineError(
            "Field results need the class probabilities: map with the fields layer given (field_vector), or write "
            "the probability stack."
        )
    return stats_from_stack(str(source), vector, layer, block, reporter)


def _same_layer(stats: FieldStats, vector: str, layer: Optional[str]) -> bool:
    try:
        same_file = Path(stats.vector).resolve() == Path(vector).resolve()
    except OSError:
        same_file = stats.vector == vector
    return same_file and (stats.layer or None) == (layer or None)


def stats_from_stack(stack_path: str, vector: str, layer: Optional[str], block: int = 512,
                     reporter: Optional[Reporter] = None) -> FieldStats:
    """Per-polygon probability sums from a probability stack GeoTIFF, read block by block."""
    from osgeo import gdal

    from ..data.grid import RasterGrid

    reporter = reporter or Reporter()
    gdal.UseExceptions()
    try:
        dataset = gdal.Open(str(stack_path))
    except RuntimeError as exc:
        raise EngineError(f"Cannot open the probability raster '{stack_path}': {exc}.") from None
    grid = RasterGrid.from_dataset(dataset)
    burner = PolygonBurner(vector, layer, grid, purpose="field")
    k = dataset.RasterCount
    stats = FieldStats(vector, layer, burner.fids, np.zeros((burner.count + 1, k)), np.zeros(burner.count + 1, np.int64))
    windows = block_windows(grid.width, grid.height, block)
    for n, (x0, y0, w, h) in enumerate(windows):
        reporter.report(n / len(windows), "Summing probabilities per field")
        probs = dataset.ReadAsArray(x0, y0, w, h).astype(np.float32).reshape(k, h, w)
        stats.add(burner.burn(x0, y0, w, h), probs, probs.max(axis=0) > 0)
    return stats


def _write_gpkg(vector: str, layer: Optional[str], tmp: Path, classes: ClassTable, by_fid: dict[int, int],
                best: np.ndarray, means: np.ndarray, counts: np.ndarray, reporter: Reporter,
                field_splits: Optional[dict[int, str]] = None) -> None:
    """Writes the GeoPackage at ``tmp``, checking every OGR call, the close and the result read back."""
    from osgeo import ogr

    dataset, source = open_polygon_layer(vector, layer, "field")
    # OGR features, definitions and layers must go before the datasets they belong to, also when an error's
    # traceback keeps this frame alive (freed in the wrong order at garbage collection, they corrupt the heap).
    target_ds = target = definition = out_defn = field_defn = feature = out = None
    try:
        definition = source.GetLayerDefn()
        target_ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(tmp))
        if target_ds is None:
            raise WriteFailed(f"Cannot create the GeoPackage '{tmp}'")
        target = target_ds.CreateLayer(source.GetName(), source.GetSpatialRef(), source.GetGeomType(),
                                       ["GEOMETRY_NAME=geom"])
        if target is None:
            raise WriteFailed(f"Cannot create a layer in '{tmp}'")
        field_map = []
        replaced = set(OUTPUT_FIELDS) if field_splits is not None else set(OUTPUT_FIELDS) - {SPLIT_FIELD}
        for i in range(definition.GetFieldCount()):
            field_defn = definition.GetFieldDefn(i)
            if field_defn.GetName().lower() in replaced:
                field_map.append(-1)
                continue
            check_ogr(target.CreateField(field_defn), "Adding a field")
            field_map.append(target.GetLayerDefn().GetFieldCount() - 1)
        added = [("crop_class", ogr.OFTString), ("crop_value", ogr.OFTInteger), ("crop_prob", ogr.OFTReal),
                 ("crop_pixels", ogr.OFTInteger)] + ([(SPLIT_FIELD, ogr.OFTString)] if field_splits is not None else [])
        for name, kind in added:
            check_ogr(target.CreateField(ogr.FieldDefn(name, kind)), "Adding a field")
        out_defn = target.GetLayerDefn()
        check_ogr(target.StartTransaction(), "Starting a transaction")
        source.ResetReading()
        written = 0
        for n, feature in enumerate(source):
            if n % 1000 == 0:
                reporter.check()
            out = ogr.Feature(out_defn)
            out.SetFromWithMap(feature, 1, field_map)  # attributes and geometry as they are
            index = by_fid.get(feature.GetFID())
            pixels = int(counts[index]) if index is not None else 0
            out.SetField("crop_pixels", pixels)
            if field_splits and feature.GetFID() in field_splits:
                out.SetField(SPLIT_FIELD, field_splits[feature.GetFID()])
            if pixels > 0:
                value = int(best[index]) + 1
                out.SetField("crop_class", classes[value - 1].name)
                out.SetField("crop_value", value)
                out.SetField("crop_prob", float(means[index, value - 1]))
            check_ogr(target.CreateFeature(out), "Writing a feature")
            written += 1
        check_ogr(target.CommitTransaction(), "Writing the features")
    finally:
        out = feature = field_defn = out_defn = definition = target = None
        source = None
        if target_ds is not None:
            with closing_checked(tmp):
                target_ds = None
        dataset = None
    _check_written(tmp, written)


def _check_written(path: Path, features: int) -> None:
    """Reads the GeoPackage back: a file OGR cannot open, or with features missing, is a failed write."""
    from osgeo import gdal

    try:
        check = gdal.OpenEx(str(path), gdal.OF_VECTOR)
        count = check.GetLayerByIndex(0).GetFeatureCount() if check is not None and check.GetLayerCount() else -1
    except RuntimeError as exc:
        raise WriteFailed(f"the written GeoPackage cannot be read back: {exc}") from None
    finally:
        check = None
    if count != features:
        raise WriteFailed(f"the written GeoPackage holds {count} of {features} features")
