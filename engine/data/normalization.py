"""Per-band normalisation: statistics from a sample of valid pixels, and applying them.

This module does not import GDAL (``osgeo``): the model side uses it on machines without GDAL.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..errors import EngineError

_SAMPLE_WINDOW = 256
_MIN_STD = 1e-6
# Values further than this many standard deviations from their band's mean are not observations but untagged
# nodata (-3.4e38, 1e20, ...): reflectance (or an index) never strays that far, saturated pixels included.
EXTREME_STD = 1000.0


def plausible_range(mean: float, std: float) -> tuple[float, float]:
    """The lowest and highest value of a band with these statistics that counts as an observation."""
    spread = EXTREME_STD * max(std, _MIN_STD, 1e-6 * abs(mean))
    return mean - spread, mean + spread


def _robust_keep(data: np.ndarray) -> np.ndarray:
    """Rows of ``data (N, C)`` whose values all lie in the plausible range of statistics that ignore extremes.

    Centre: the median; spread: the median absolute deviation (robust to any share of extremes below half), or,
    for a band that is mostly one value, the mean deviation of the 99 % of values nearest the median. A plain mean
    and std would be dominated by a single -3.4e38.
    """
    keep = np.ones(len(data), bool)
    for c in range(data.shape[1]):
        values = data[:, c]
        centre = float(np.median(values))
        deviation = np.abs(values - centre)
        scale = 1.4826 * float(np.median(deviation))
        if scale == 0.0:
            near = deviation[deviation <= np.percentile(deviation, 99)]
            scale = float(near.mean()) if near.size else 0.0
        if scale == 0.0:
            continue  # (nearly) constant band: nothing to call extreme
        low, high = plausible_range(centre, scale)
        keep &= (values >= low) & (values <= high)
    return keep


class _Readable(Protocol):
    band_names: list[str]

    @property
    def grid(self): ...

    def read(self, x0: int, y0: int, w: int, h: int, bands=None): ...


def band_statistics(series: _Readable, max_pixels: int = 200_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation per band (``(C,)`` float32 each) of valid observations.

    Observations far outside the bulk of their band (``EXTREME_STD``, e.g. an untagged nodata of -3.4e38) are left
    out, so they cannot blow the statistics up.

    Reads windows in a seeded random order until ``max_pixels`` valid observations are collected (never the whole
    raster when it is large), then subsamples to ``max_pixels``.
    """
    width, height = series.grid.width, series.grid.height
    windows = [
        (x0, y0, min(_SAMPLE_WINDOW, width - x0), min(_SAMPLE_WINDOW, height - y0))
        for y0 in range(0, height, _SAMPLE_WINDOW)
        for x0 in range(0, width, _SAMPLE_WINDOW)
    ]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(windows))
    samples: list[np.ndarray] = []
    collected = 0
    for index in order:
        x, valid = series.read(*windows[index])
        values = np.moveaxis(x, 1, -1)[valid]  # (N, C) valid observations
        if len(values):
            samples.append(values.astype(np.float64))
            collected += len(values)
        if collected >= max_pixels:
            break
    if not collected:
        raise EngineError(
            "The time series has no valid observation to compute band statistics from: every pixel is nodata, "
            "cloud or masked. Check the nodata value and the cloud masks."
        )
    data = np.concatenate(samples)
    data = data[_robust_keep(data)]
    if not len(data):
        raise EngineError("Every observation of the time series lies far outside any plausible range. Check the "
                          "nodata value of the rasters.")
    if len(data) > max_pixels:
        data = data[rng.choice(len(data), size=max_pixels, replace=False)]
    mean = data.mean(axis=0)
    std = np.maximum(data.std(axis=0), _MIN_STD)
    return mean.astype(np.float32), std.astype(np.float32)


def normalise(x: np.ndarray, valid: np.ndarray, mean: np.ndarray, std: np.ndarray,
              out: np.ndarray | None = None) -> np.ndarray:
    """``(x - mean) / std`` per band, float32, with invalid observations set to 0.

    ``x`` is ``(..., T, C, H, W)`` and ``valid`` ``(..., T, H, W)``; ``mean``/``std`` have one value per band.
    ``out``: where to write the result (may be ``x`` itself when it is float32; ignored otherwise).
    """
    mean = np.asarray(mean, np.float32).reshape(-1, 1, 1)
    std = np.asarray(std, np.float32).reshape(-1, 1, 1)
    if mean.shape[0] != x.shape[-3] or std.shape[0] != x.shape[-3]:
        raise EngineError(
            f"The normalisation statistics have {mean.shape[0]} bands but the image has {x.shape[-3]}."
        )
    # One output buffer, computed in place: a raster block is tens of MB, and temporaries per step would triple
    # the transient memory of the background read (predict_raster's flat-memory target).
    if out is None or out.dtype != np.float32 or out.shape != np.shape(x):
        out = np.empty(np.shape(x), np.float32)
    np.subtract(x, mean, out=out, dtype=np.float32)
    np.divide(out, std, out=out)
    # Assigned, not multiplied by the mask: an invalid entry may hold NaN and NaN * 0 is NaN.
    invalid = ~np.asarray(valid, bool)[..., None, :, :]
    np.copyto(out, np.float32(0), where=invalid)
    return out
