"""Class time-series profiles: per class and date, the median and quartiles of NDVI (or one band) over the pixels of
labelled fields, so a user sees when two crops look alike and why they are confused.

Only valid observations count (clouds, shadows and nodata are left out date by date). Per class at most
``max_pixels`` pixels are kept (a seeded random draw), so a few large fields do not cost memory.
"""

from __future__ import annotations

import warnings
from typing import Optional, Sequence

import numpy as np

from ..progress import Reporter

RED_NAMES, NIR_NAMES = ("B04", "B4", "RED"), ("B08", "B8", "NIR")
MAX_PIXELS = 4000
BLOCK = 256


def profile_band(band_names: Sequence[str]) -> str:
    """``NDVI`` when the series has it or red and near-infrared bands, else its first band."""
    upper = [b.upper() for b in band_names]
    if "NDVI" in upper or (any(r in upper for r in RED_NAMES) and any(n in upper for n in NIR_NAMES)):
        return "NDVI"
    return band_names[0]


def _values(x: np.ndarray, band_names: Sequence[str], band: str) -> np.ndarray:
    """(T, H, W) values of ``band`` (NDVI computed from red and NIR when the series has no NDVI band)."""
    upper = [b.upper() for b in band_names]
    if band.upper() in upper:
        return x[:, upper.index(band.upper())]
    red = next(upper.index(r) for r in RED_NAMES if r in upper)
    nir = next(upper.index(n) for n in NIR_NAMES if n in upper)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (x[:, nir] - x[:, red]) / (x[:, nir] + x[:, red])


def class_profiles(ts, fields, keep_ids: Optional[Sequence[int]] = None, band: Optional[str] = None,
                   max_pixels: int = MAX_PIXELS, seed: int = 0, reporter: Optional[Reporter] = None) -> dict:
    """Profiles of the classes of ``fields`` (``FieldRasters``) over the series ``ts``; only the fields in
    ``keep_ids`` (e.g. the training fields) when given. Returns a JSON-able dict (``None`` where no value)."""
    reporter = reporter or Reporter()
    band = band or profile_band(ts.band_names)
    rng = np.random.default_rng(seed)
    x0, y0, w, h = fields.window
    labels = fields.labels if keep_ids is None else np.where(np.isin(fields.field_ids, list(keep_ids)), fields.labels, 0)
    per_class: dict[int, list[np.ndarray]] = {}
    windows = [(bx, by) for by in range(0, h, BLOCK) for bx in range(0, w, BLOCK)]
    for n, (bx, by) in enumerate(windows):
        reporter.report(n / max(len(windows), 1), "Reading the class time series")
        block = labels[by : by + BLOCK, bx : bx + BLOCK]
        if not (block > 0).any():
            continue
        bh, bw = block.shape
        x, valid = ts.read(x0 + bx, y0 + by, bw, bh)
        values = np.where(valid, _values(x.astype(np.float64), ts.band_names, band), np.nan)  # (T, bh, bw)
        for value in np.unique(block[block > 0]):
            picked = values[:, block == value].T  # (pixels, T)
            per_class.setdefault(int(value), []).append(picked)
    out = []
    for info in fields.classes:
        chunks = per_class.get(info.value)
        if not chunks:
            continue
        pixels = np.concatenate(chunks)
        if len(pixels) > max_pixels:
            pixels = pixels[rng.choice(len(pixels), max_pixels, replace=False)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # dates without any clear pixel of the class
            q25, median, q75 = np.nanpercentile(pixels, [25, 50, 75], axis=0)
        out.append({"value": info.value, "name": info.name, "color": list(info.color), "pixels": int(len(pixels)),
                    "median": _clean(median), "q25": _clean(q25), "q75": _clean(q75)})
    reporter.report(1.0, "Class time series read")
    return {"band": band, "dates": [d.isoformat() for d in ts.dates], "classes": out,
            "fields": "training fields" if keep_ids is not None else "all labelled fields"}


def _clean(values: np.ndarray) -> list[Optional[float]]:
    return [None if not np.isfinite(v) else float(v) for v in values]
