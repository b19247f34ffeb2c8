"""Which observations are usable: nodata values, cloud masks and Sentinel-2 scene classification (SCL)."""

from __future__ import annotations

from typing import Optional

import numpy as np

# Sentinel-2 L2A scene classification classes that are not a clear view of the ground:
# 0 no data, 1 saturated or defective, 3 cloud shadow, 8 cloud medium probability, 9 cloud high probability,
# 10 thin cirrus, 11 snow or ice.
SCL_INVALID_CLASSES: tuple[int, ...] = (0, 1, 3, 8, 9, 10, 11)


def data_valid(values: np.ndarray, nodata: Optional[float]) -> np.ndarray:
    """True where ``values`` is a real observation: not NaN / infinite and not the nodata value."""
    valid = np.isfinite(values) if np.issubdtype(values.dtype, np.floating) else np.ones(values.shape, bool)
    if nodata is not None:
        if np.isnan(nodata):
            return valid
        valid &= values != nodata
    return valid


def cloud_valid(mask: np.ndarray, nodata: Optional[float] = None) -> np.ndarray:
    """True where a cloud mask says clear (zero); non-zero means cloud, the mask's nodata means unknown."""
    valid = mask == 0
    if nodata is not None and not np.isnan(nodata) and nodata != 0:
        valid &= mask != nodata
    return valid


def scl_valid(scl: np.ndarray) -> np.ndarray:
    """True where a Sentinel-2 SCL class is a clear view (vegetation, bare soil, water, unclassified, dark area)."""
    return ~np.isin(scl, SCL_INVALID_CLASSES)
