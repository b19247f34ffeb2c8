"""Writing outputs under a temporary name and renaming them when complete."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Iterator

from .errors import EngineError


def check_writable(path: str | os.PathLike) -> Path:
    """Makes sure the folder of ``path`` exists (creating it) and is writable; returns ``path`` as a Path."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EngineError(f"Cannot create the output folder '{folder}': {exc.strerror}. Choose another folder.") from None
    # Probe with a real file: permission bits say nothing for root or on a read-only file system.
    probe = folder / f".cropmapper-write-test-{uuid.uuid4().hex[:8]}"
    try:
        probe.touch()
    except OSError:
        raise EngineError(f"The output folder '{folder}' is not writable. Choose another folder.") from None
    _remove_quietly(probe)
    return target


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renames it to ``path`` on success, deletes it on any error.

    The temporary name keeps the suffix so that GDAL picks the right driver from it.
    """
    target = check_writable(path)
    tmp = target.with_name(f".{target.stem}.{uuid.uuid4().hex[:8]}.partial{target.suffix}")
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        _remove_quietly(tmp)
        raise
    finally:
        _remove_quietly(Path(str(tmp) + ".aux.xml"))


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
