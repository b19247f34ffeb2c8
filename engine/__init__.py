"""CropMapper engine: STCLN crop-type mapping from satellite image time series.

Everything that computes lives here. This package never imports QGIS or PyQt, and uses only relative
imports inside itself, so it works both as ``cropmapper.engine`` inside QGIS and as ``python -m engine``.
"""

from .errors import CancelledError, EngineError

__version__ = "0.1.0"

__all__ = ["CancelledError", "EngineError", "__version__"]
