"""Prediction: tiled array prediction with overlap blending, class / confidence rasters, field-level results.

``predict_array`` and the tiling need only torch and numpy; the raster, style and field modules use GDAL and are
imported on first use, so the array predictor also works on a machine without ``osgeo``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .tiling import predict_array

_LAZY = {
    "predict_raster": ".raster",
    "PredictRasterResult": ".raster",
    "field_results": ".fields",
    "write_class_style": ".styles",
}

__all__ = ["predict_array", *_LAZY]

if TYPE_CHECKING:  # pragma: no cover
    from .fields import field_results
    from .raster import PredictRasterResult, predict_raster
    from .styles import write_class_style


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
