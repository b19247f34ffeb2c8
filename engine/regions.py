"""Choosing and reading the regions of a raster time series that training works on.

Training samples crops from in-memory regions (``Scene``). Small rasters are read whole; for large ones
pre-training reads random blocks up to a memory budget and fine-tuning reads the blocks around the labelled fields.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from .data.normalization import normalise
from .progress import Reporter
from .training import Scene

Window = tuple[int, int, int, int]  # x0, y0, width, height

BLOCK = 512
# Values (T x C x pixels) read into memory for pre-training; about 600 MB of float32.
PRETRAIN_BUDGET = 150_000_000


def tile_windows(x0: int, y0: int, width: int, height: int, block: int = BLOCK) -> list[Window]:
    """Splits a window into blocks of at most ``block`` x ``block`` pixels."""
    return [
        (x, y, min(block, x0 + width - x), min(block, y0 + height - y))
        for y in range(y0, y0 + height, block)
        for x in range(x0, x0 + width, block)
    ]


def pretraining_windows(width: int, height: int, values_per_pixel: int, seed: int = 0) -> list[Window]:
    """The whole raster when it fits the budget, else a seeded random choice of blocks that does."""
    blocks = tile_windows(0, 0, width, height)
    if width * height * values_per_pixel <= PRETRAIN_BUDGET:
        return blocks
    rng = np.random.default_rng(seed)
    keep = max(1, PRETRAIN_BUDGET // (BLOCK * BLOCK * values_per_pixel))
    chosen = rng.choice(len(blocks), size=min(keep, len(blocks)), replace=False)
    return [blocks[i] for i in sorted(chosen)]


def read_scenes(
    series,
    windows: Iterable[Window],
    mean: np.ndarray,
    std: np.ndarray,
    positions: np.ndarray,
    bands: Sequence[str] | None,
    reporter: Reporter,
) -> list[Scene]:
    """Reads and normalises each window into a ``Scene`` (without labels)."""
    windows = list(windows)
    scenes = []
    for i, (x0, y0, w, h) in enumerate(windows):
        reporter.report(i / len(windows), "Reading images")
        x, valid = series.read(x0, y0, w, h, bands=list(bands) if bands else None)
        if valid.any():
            scenes.append(Scene(x=normalise(x, valid, mean, std), valid=valid, positions=positions, labels=None))
    reporter.report(1.0, "Reading images")
    return scenes
