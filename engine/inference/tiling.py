"""Tiled prediction with overlap blending: the array predictor that the raster writer wraps.

Works on any source that can read a window of the raw series (an in-memory array here, a raster in ``raster.py``).
A region (a block of the output) is predicted from every tile of the global tile grid that touches it; the source is
read once per region with a halo so those tiles lie wholly inside the read window. Windows are batched through the
network under ``torch.inference_mode``; probabilities are blended on the device with a smooth weight window.

This module imports no GDAL: it runs on machines with PyTorch and numpy only.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, ContextManager, Iterable, Iterator, Optional, Sequence, TypeVar

import numpy as np
import torch

from ..data.buffers import block_zeros
from ..data.normalization import normalise
from ..device import resolve_device
from ..errors import EngineError
from ..progress import CancelledCallback, ProgressCallback, Reporter
from .weights import blend_window, starts_touching, tile_step

# A raw-series reader: (x0, y0, w, h) -> (x float32 (T, C, h, w), valid bool (T, h, w)); outside the raster: invalid.
# It returns arrays of its own, which the caller may overwrite (blocks are normalised in place).
WindowReader = Callable[[int, int, int, int], tuple[np.ndarray, np.ndarray]]

T_ = TypeVar("T_")
A_ = TypeVar("A_")

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_MAX_AUTO_BATCH = 256


@dataclass
class PreparedRegion:
    """A region to predict with its halo read and normalised (made in a background thread)."""

    x0: int
    y0: int
    w: int
    h: int
    src_x0: int
    src_y0: int
    x: np.ndarray  # normalised (T, C, Hs, Ws)
    valid: np.ndarray  # (T, Hs, Ws)
    keep: np.ndarray  # (h, w) bool: pixels to map (a valid observation, inside the extent)


def resolve_precision(precision: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype for ``precision`` on ``device`` (None = fp32). ``auto``: bf16/fp16 on CUDA, fp32 elsewhere."""
    name = (precision or "auto").lower()
    if name not in PRECISIONS:
        raise EngineError(f"Unknown precision '{precision}'. Use one of: {', '.join(PRECISIONS)}.")
    if name == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if name == "fp16" and device.type == "cpu":
        raise EngineError("fp16 prediction needs a GPU. Use 'bf16' or 'fp32' on the CPU.")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def _inference_context(device: torch.device, precision: str) -> ContextManager:
    """The model engineer's ``inference_context`` when present, else autocast under ``inference_mode``."""
    try:
        from ..model.fast import inference_context  # type: ignore[attr-defined]
    except ImportError:
        inference_context = None
    stack = contextlib.ExitStack()
    stack.enter_context(torch.inference_mode())
    if inference_context is not None:
        stack.enter_context(inference_context(device, (precision or "auto").lower()))
        return stack
    dtype = resolve_precision(precision, device)
    if dtype is not None:
        stack.enter_context(torch.autocast(device.type, dtype=dtype))
    return stack


def _prepare_model(model: torch.nn.Module, device: torch.device, precision: str) -> torch.nn.Module:
    """The model engineer's ``prepare_for_inference`` (channels-last, CPU chunking, bf16 weights where chosen)."""
    try:
        from ..model.fast import prepare_for_inference  # type: ignore[attr-defined]
    except ImportError:
        return model
    prepared = prepare_for_inference(model, device, (precision or "auto").lower())
    return model if prepared is None else prepared


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


class TilePredictor:
    """The network on its device plus the tile grid, blending window and batch size; predicts one region at a time."""

    def __init__(
        self,
        bundle,
        dates: Sequence,
        width: int,
        height: int,
        tile: int = 32,
        overlap: int = 8,
        batch_size: Optional[int] = 16,
        device: str | torch.device = "auto",
        precision: str = "auto",
    ) -> None:
        if tile < 4:
            raise EngineError(f"The tile size must be at least 4 pixels, not {tile}.")
        if not 0 <= overlap < tile:
            raise EngineError(f"The tile overlap must be between 0 and {tile - 1} pixels, not {overlap}.")
        tile_step(tile, overlap)
        self.bundle = bundle
        self.width, self.height = int(width), int(height)
        self.tile, self.overlap = int(tile), int(overlap)
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.precision = precision
        resolve_precision(precision, self.device)  # fail early on a bad name
        self.num_classes = len(bundle.classes)
        self.mean = np.asarray(bundle.mean, np.float32)
        self.std = np.asarray(bundle.std, np.float32)
        positions = np.asarray(bundle.positions_for(list(dates)), np.float32)
        self.positions = torch.from_numpy(positions).to(self.device)
        model = bundle.build_model(self.device)
        model.eval()
        self.model = _prepare_model(model, self.device, precision)
        self.window = torch.from_numpy(blend_window(self.tile, self.overlap)).to(self.device)
        self.batch_size = int(batch_size) if batch_size else (self._auto_batch_size() if self.device.type == "cuda" else 16)

    # -- regions -------------------------------------------------------------------------------------------------
    def source_window(self, x0: int, y0: int, w: int, h: int) -> tuple[int, int, int, int]:
        """The window ``(x0, y0, w, h)`` to read so that every tile touching the region lies inside it."""
        xs = starts_touching(x0, x0 + w, self.width, self.tile, self.overlap)
        ys = starts_touching(y0, y0 + h, self.height, self.tile, self.overlap)
        return xs[0], ys[0], xs[-1] + self.tile - xs[0], ys[-1] + self.tile - ys[0]

    def prepare(
        self, read: WindowReader, x0: int, y0: int, w: int, h: int, inside: Optional[np.ndarray] = None
    ) -> PreparedRegion:
        """Reads the region with its halo and normalises it (thread-safe: no torch work)."""
        sx, sy, sw, sh = self.source_window(x0, y0, w, h)
        raw, valid = read_padded(read, sx, sy, sw, sh, self.width, self.height)
        # in place: a block is tens of MB, read in the background while the previous one is mapped, so a second
        # buffer would add to the peak memory of every multi-block map
        x = normalise(raw, valid, self.mean, self.std, out=raw)
        del raw
        keep = valid[:, y0 - sy : y0 - sy + h, x0 - sx : x0 - sx + w].any(axis=0)
        if inside is not None:
            keep &= inside
        return PreparedRegion(x0, y0, w, h, sx, sy, x, valid, keep)

    @torch.inference_mode()
    def predict(self, region: PreparedRegion, check: Optional[Callable[[], None]] = None) -> np.ndarray:
        """Blended probabilities ``(K, h, w)`` float32 of a prepared region; 0 where ``keep`` is False."""
        k, t = self.num_classes, self.tile
        acc = torch.zeros((k, region.h, region.w), dtype=torch.float32, device=self.device)
        wsum = torch.zeros((region.h, region.w), dtype=torch.float32, device=self.device)
        # Pixels of the source window that are worth mapping: a tile without any is skipped (exactly: it
        # contributes only to pixels that end up nodata).
        want = np.zeros(region.valid.shape[1:], dtype=bool)
        want[region.y0 - region.src_y0 : region.y0 - region.src_y0 + region.h,
             region.x0 - region.src_x0 : region.x0 - region.src_x0 + region.w] = region.keep
        tiles = [
            (ty, tx)
            for ty in starts_touching(region.y0, region.y0 + region.h, self.height, t, self.overlap)
            for tx in starts_touching(region.x0, region.x0 + region.w, self.width, t, self.overlap)
            if want[ty - region.src_y0 : ty - region.src_y0 + t, tx - region.src_x0 : tx - region.src_x0 + t].any()
        ]
        start = 0
        while start < len(tiles):
            if check is not None:
                check()
            batch = tiles[start : start + self.batch_size]
            probs = self._run(region, batch)
            for (ty, tx), p in zip(batch, probs):
                # intersection of the tile with the region, in region coordinates and in tile coordinates
                ry0, ry1 = max(ty, region.y0), min(ty + t, region.y0 + region.h)
                rx0, rx1 = max(tx, region.x0), min(tx + t, region.x0 + region.w)
                w = self.window[ry0 - ty : ry1 - ty, rx0 - tx : rx1 - tx]
                acc[:, ry0 - region.y0 : ry1 - region.y0, rx0 - region.x0 : rx1 - region.x0] += (
                    p[:, ry0 - ty : ry1 - ty, rx0 - tx : rx1 - tx] * w
                )
                wsum[ry0 - region.y0 : ry1 - region.y0, rx0 - region.x0 : rx1 - region.x0] += w
            start += len(batch)
        keep = torch.from_numpy(region.keep).to(self.device)
        out = torch.where(keep & (wsum > 0), acc / wsum.clamp_min(1e-12), torch.zeros((), device=self.device))
        return out.cpu().numpy().astype(np.float32, copy=False)

    # -- the network ---------------------------------------------------------------------------------------------
    def _batch_tensors(self, region: PreparedRegion, tiles: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.tile
        xs = np.stack([region.x[:, :, ty - region.src_y0 : ty - region.src_y0 + t,
                                tx - region.src_x0 : tx - region.src_x0 + t] for ty, tx in tiles])
        vs = np.stack([region.valid[:, ty - region.src_y0 : ty - region.src_y0 + t,
                                    tx - region.src_x0 : tx - region.src_x0 + t] for ty, tx in tiles])
        x, v = torch.from_numpy(xs), torch.from_numpy(vs)
        if self.device.type == "cuda":
            x, v = x.pin_memory(), v.pin_memory()
        return x.to(self.device, non_blocking=True), v.to(self.device, non_blocking=True)

    def _forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        positions = self.positions.expand(x.shape[0], -1)
        with _inference_context(self.device, self.precision):
            logits = self.model(x, positions, valid)
        return torch.softmax(logits.float(), dim=1)

    def _run(self, region: PreparedRegion, tiles: list[tuple[int, int]]) -> torch.Tensor:
        """Probabilities ``(B, K, tile, tile)`` of the tiles; halves the batch size on out-of-memory."""
        try:
            x, v = self._batch_tensors(region, tiles)
            return self._forward(x, v)
        except RuntimeError as exc:
            if not _is_oom(exc) or len(tiles) == 1:
                if _is_oom(exc):
                    raise EngineError(
                        "The device ran out of memory even for a single tile. Use a smaller tile size or the CPU."
                    ) from None
                raise
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        self.batch_size = max(1, len(tiles) // 2)
        half = len(tiles) // 2
        return torch.cat([self._run(region, tiles[:half]), self._run(region, tiles[half:])])

    def _auto_batch_size(self) -> int:
        """Windows per batch from the free GPU memory, measured with a one-window probe (70 % of what is free)."""
        t, c = self.tile, len(self.mean)
        steps = self.positions.shape[0]
        x = torch.zeros((1, steps, c, t, t), device=self.device)
        v = torch.ones((1, steps, t, t), dtype=torch.bool, device=self.device)
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        before = torch.cuda.memory_allocated(self.device)
        self._forward(x, v)
        torch.cuda.synchronize(self.device)
        per_window = max(torch.cuda.max_memory_allocated(self.device) - before, 1)
        free, _ = torch.cuda.mem_get_info(self.device)
        return int(min(max(1, 0.7 * free // per_window), _MAX_AUTO_BATCH))


def read_padded(read: WindowReader, x0: int, y0: int, w: int, h: int, width: int, height: int):
    """Reads a window that may reach past the raster; the part outside is zero and invalid."""
    ix0, iy0 = max(x0, 0), max(y0, 0)
    ix1, iy1 = min(x0 + w, width), min(y0 + h, height)
    if ix0 == x0 and iy0 == y0 and ix1 == x0 + w and iy1 == y0 + h:
        x, valid = read(x0, y0, w, h)
        return np.asarray(x, np.float32), np.asarray(valid, bool)
    inner_x, inner_valid = read(ix0, iy0, max(ix1 - ix0, 0), max(iy1 - iy0, 0)) if ix1 > ix0 and iy1 > iy0 else (None, None)
    t = inner_valid.shape[0] if inner_valid is not None else None
    if t is None:
        raise EngineError("Internal error: a prediction window lies wholly outside the raster.")
    c = inner_x.shape[1]
    x = block_zeros((t, c, h, w), np.float32)
    valid = block_zeros((t, h, w), bool)
    x[:, :, iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0] = inner_x
    valid[:, iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0] = inner_valid
    return x, valid


def array_reader(x: np.ndarray, valid: np.ndarray) -> WindowReader:
    """A ``WindowReader`` over in-memory arrays (windows inside the array)."""

    def read(x0: int, y0: int, w: int, h: int):
        return (np.array(x[:, :, y0 : y0 + h, x0 : x0 + w], np.float32),
                np.array(valid[:, y0 : y0 + h, x0 : x0 + w], bool))

    return read


def prefetched(items: Iterable[A_], load: Callable[[A_], T_]) -> Iterator[tuple[A_, T_]]:
    """Yields ``(item, load(item))`` while ``load`` of the next item runs in a background thread.

    Reading and normalising the next region (GDAL and numpy release the GIL) then overlaps the network's work on
    the current one. Errors of ``load`` surface at the matching item.
    """
    items = list(items)
    if not items:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cropmapper-read") as pool:
        pending = pool.submit(load, items[0])
        try:
            for index, item in enumerate(items):
                result = pending.result()
                pending = pool.submit(load, items[index + 1]) if index + 1 < len(items) else None
                yield item, result
                del result
        finally:
            if pending is not None:
                pending.cancel()


def block_windows(width: int, height: int, block: int) -> list[tuple[int, int, int, int]]:
    """Row-major blocks ``(x0, y0, w, h)`` of at most ``block`` x ``block`` pixels covering the raster."""
    return [
        (x0, y0, min(block, width - x0), min(block, height - y0))
        for y0 in range(0, height, block)
        for x0 in range(0, width, block)
    ]


def predict_array(
    bundle,
    x: np.ndarray,
    dates: Sequence,
    valid: Optional[np.ndarray] = None,
    tile: int = 32,
    overlap: int = 8,
    batch_size: Optional[int] = 16,
    device: str = "auto",
    precision: str = "auto",
    progress: Optional[ProgressCallback] = None,
    cancelled: Optional[CancelledCallback] = None,
    block: int = 512,
) -> np.ndarray:
    """Class probabilities ``(K, H, W)`` float32 for a raw (not normalised) series ``x (T, C, H, W)``.

    Overlapping ``tile`` x ``tile`` windows (``overlap`` pixels shared with each neighbour) are blended with a
    smooth weight window, so no seam shows at tile borders; arrays smaller than a tile are padded. ``valid (T, H, W)``
    marks usable observations (default: finite values); pixels with no valid observation get probability 0 for
    every class. ``batch_size`` None (or 0) picks it from the free GPU memory; on out-of-memory it is halved.
    """
    x = np.asarray(x)
    if x.ndim != 4:
        raise EngineError(f"The time series must be a (dates, bands, rows, columns) array, not shape {x.shape}.")
    steps, channels, height, width = x.shape
    if valid is None:
        valid = np.isfinite(x).all(axis=1)
    valid = np.asarray(valid, bool)
    if valid.shape != (steps, height, width):
        raise EngineError(f"The valid mask has shape {valid.shape}, expected {(steps, height, width)}.")
    if len(dates) != steps:
        raise EngineError(f"{len(dates)} dates were given for a series of {steps} acquisitions.")
    if channels != len(np.atleast_1d(bundle.mean)):
        raise EngineError(
            f"The image has {channels} bands but the model was trained on {len(np.atleast_1d(bundle.mean))}."
        )
    reporter = Reporter(progress, cancelled)
    predictor = TilePredictor(bundle, dates, width, height, tile, overlap, batch_size, device, precision)
    out = np.zeros((predictor.num_classes, height, width), np.float32)
    read = array_reader(x, valid)
    blocks = block_windows(width, height, block)
    prepared = prefetched(blocks, lambda b: predictor.prepare(read, *b))
    for index, ((bx, by, bw, bh), region) in enumerate(prepared):
        reporter.report(index / len(blocks), "Predicting")
        out[:, by : by + bh, bx : bx + bw] = predictor.predict(region, reporter.check)
    reporter.report(1.0, "Prediction done")
    return out
