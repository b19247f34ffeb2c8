"""Geodata in: time series from rasters, labels from field polygons, normalisation and splits.

Names are imported lazily so that ``engine.data.normalization`` and ``engine.data.splits`` work without GDAL
(``osgeo``), e.g. on a GPU machine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "open_time_series": ".timeseries",
    "TimeSeries": ".timeseries",
    "canonical_band_name": ".timeseries",
    "RasterGrid": ".grid",
    "band_statistics": ".normalization",
    "normalise": ".normalization",
    "rasterize_fields": ".labels",
    "FieldRasters": ".labels",
    "split_fields": ".splits",
    "FieldSplit": ".splits",
    "parse_date": ".dates",
    "SCL_INVALID_CLASSES": ".masks",
}

__all__ = list(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from .dates import parse_date
    from .grid import RasterGrid
    from .labels import FieldRasters, rasterize_fields
    from .masks import SCL_INVALID_CLASSES
    from .normalization import band_statistics, normalise
    from .splits import FieldSplit, split_fields
    from .timeseries import TimeSeries, canonical_band_name, open_time_series


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
