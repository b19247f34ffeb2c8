"""``python -m engine``: the command line."""

import sys

try:
    from .cli import main
except KeyboardInterrupt:  # Ctrl-C while the engine is still being imported (torch, GDAL: a second or so)
    print("Interrupted: nothing was written.", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
