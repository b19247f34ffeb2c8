"""CropMapper engine: STCLN crop-type mapping from satellite image time series.

Everything that computes lives here. This package never imports QGIS or PyQt, and uses only relative
imports inside itself, so it works both as ``cropmapper.engine`` inside QGIS and as ``python -m engine``.
"""

import sys

try:
    from .errors import CancelledError, EngineError
except KeyboardInterrupt:  # Ctrl-C while ``python -m engine`` is still starting ("-m" until __main__ runs)
    if sys.argv[:1] != ["-m"]:
        raise
    print("Interrupted: nothing was written.", file=sys.stderr)
    raise SystemExit(130) from None

__version__ = "0.1.0"

__all__ = ["CancelledError", "EngineError", "__version__"]
