"""A tiny synthetic time series of rectangular fields whose classes differ by their seasonal (NDVI-like) profile."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SyntheticScene:
    x: np.ndarray  # (T, C, H, W) float32, roughly normalised, invalid = 0
    valid: np.ndarray  # (T, H, W) bool
    positions: np.ndarray  # (T,) float32, days
    labels: np.ndarray  # (H, W) int64, 1..K (every pixel belongs to a field)
    field_ids: np.ndarray  # (H, W) int32, 1..F


def make_scene(
    size: int = 48,
    field: int = 8,
    dates: int = 10,
    bands: int = 4,
    classes: int = 3,
    noise: float = 0.15,
    cloud: float = 0.1,
    seed: int = 0,
) -> SyntheticScene:
    """Square fields of ``field`` pixels tiling a ``size`` x ``size`` scene, classes drawn at random per field.

    Class k's greenness peaks at a different time of the season; bands respond to it with fixed gains. Each field
    has its own small offset, pixels have noise, and ``cloud`` of the (date, pixel) entries are invalid.
    """
    rng = np.random.default_rng(seed)
    days = np.linspace(0, 300, dates).astype(np.float32)
    peaks = np.linspace(60, 240, classes)
    profiles = np.exp(-0.5 * ((days[None] - peaks[:, None]) / 40.0) ** 2)  # (K, T)
    gains = np.linspace(-1.0, 1.5, bands)  # how each band reacts to greenness
    n = size // field
    field_ids = np.zeros((size, size), np.int32)
    labels = np.zeros((size, size), np.int64)
    x = np.zeros((dates, bands, size, size), np.float32)
    for i in range(n):
        for j in range(n):
            fid = i * n + j + 1
            cls = int(rng.integers(classes))
            ys, xs = slice(i * field, (i + 1) * field), slice(j * field, (j + 1) * field)
            field_ids[ys, xs] = fid
            labels[ys, xs] = cls + 1
            curve = profiles[cls] + rng.normal(0, 0.05)
            x[:, :, ys, xs] = (curve[:, None] * gains[None, :])[:, :, None, None]
    x += rng.normal(0, noise, x.shape).astype(np.float32)
    valid = rng.random((dates, size, size)) >= cloud
    x[~np.broadcast_to(valid[:, None], x.shape)] = 0.0
    return SyntheticScene(x, valid, days, labels, field_ids)
