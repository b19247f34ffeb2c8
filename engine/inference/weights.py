"""The blending window and the tile grid of overlapping prediction windows.

Tiles sit on one regular grid anchored at pixel 0 of the whole raster (start = k * (tile - overlap)); the last tile
may reach past the edge and is padded with invalid pixels. Because the grid is global, a block of a large raster
processed with a halo gets exactly the tiles (and so the blend) that whole-array prediction gives.
"""

from __future__ import annotations

import math

import numpy as np


def tile_step(tile: int, overlap: int) -> int:
    """Distance between the starts of neighbouring tiles."""
    if tile < 1:
        raise ValueError(f"tile must be positive, got {tile}")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in 0..tile-1, got {overlap} for tile {tile}")
    return tile - overlap


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Starts of the tiles that cover ``0..length`` on the global grid."""
    step = tile_step(tile, overlap)
    count = 1 if length <= tile else math.ceil((length - tile) / step) + 1
    return [k * step for k in range(count)]


def starts_touching(lo: int, hi: int, length: int, tile: int, overlap: int) -> list[int]:
    """Global-grid tile starts whose tiles overlap the pixel range ``lo..hi`` (``0 <= lo < hi <= length``)."""
    return [s for s in tile_starts(length, tile, overlap) if s < hi and s + tile > lo]


def blend_window_1d(tile: int, overlap: int) -> np.ndarray:
    """1-D weights: a raised-cosine ramp over ``overlap`` pixels at each end, 1 in between, never 0.

    In an overlap zone one tile's weight falls as its neighbour's rises, so the blend changes smoothly across
    tile borders; at the raster edge only one tile covers a pixel and normalising by the summed weight gives it 1.
    """
    weights = np.ones(tile, dtype=np.float64)
    if overlap > 0:
        ramp = np.sin(0.5 * np.pi * (np.arange(overlap) + 0.5) / overlap) ** 2
        weights[:overlap] = ramp
        weights[tile - overlap :] = np.minimum(weights[tile - overlap :], ramp[::-1])
    return weights


def blend_window(tile: int, overlap: int) -> np.ndarray:
    """2-D blending weights ``(tile, tile)`` float32: the outer product of the 1-D window."""
    w = blend_window_1d(tile, overlap)
    return np.outer(w, w).astype(np.float32)
