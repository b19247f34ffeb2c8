"""Checked GDAL / OGR writes: errors that GDAL only reports when a dataset is closed become exceptions.

GDAL writes cached blocks when a dataset is closed; a full disk then only shows as a CPL error (and, with
exceptions enabled, as an "Exception ignored" traceback on stderr). Closing through ``closing_checked`` turns it
into a ``WriteFailed`` that the staged outputs translate ("no space left on ...").
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator

from .atomic import WriteFailed


@contextlib.contextmanager
def closing_checked(path: str | os.PathLike) -> Iterator[None]:
    """Drop the last reference to a dataset inside this block; raises ``WriteFailed`` when closing it failed."""
    from osgeo import gdal

    ignored: list[str] = []
    previous = sys.unraisablehook
    # With exceptions on, the bindings raise inside the dataset's destructor, which Python can only print
    # ("Exception ignored in delete_Dataset" and a traceback): collect it instead.
    # Only the text: the exception's traceback would keep GDAL objects alive past their dataset.
    sys.unraisablehook = lambda unraisable: ignored.append(str(unraisable.exc_value))
    gdal.ErrorReset()
    try:
        yield
        failed = gdal.GetLastErrorType() >= gdal.CE_Failure
        message = gdal.GetLastErrorMsg()
    finally:
        sys.unraisablehook = previous
    if failed or ignored:
        raise WriteFailed(f"writing '{path}' failed: {message or ignored[0]}")


def check_ogr(code: int, what: str) -> None:
    """OGR methods return an error code (0 = success) instead of raising unless ``ogr.UseExceptions`` is on."""
    if code:
        from osgeo import gdal

        raise WriteFailed(f"{what} failed: {gdal.GetLastErrorMsg() or f'OGR error {code}'}")
