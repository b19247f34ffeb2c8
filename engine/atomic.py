"""Writing outputs under temporary names and renaming them when complete, alone or several together.

A temporary name is ``.<stem>.<8 hex>.partial<suffix>`` beside the target (same folder, so the rename is atomic;
same suffix, so GDAL picks the right driver). A failed write is an ``EngineError`` that names the folder ("no space
left on ...") and leaves nothing; stale temporary files of a killed run are recognised by that pattern.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Iterator, Optional

from .errors import EngineError, release_frames

SIDECAR = ".aux.xml"  # GDAL's PAM sidecar (category names, statistics), moved with its raster
_NO_SPACE_BYTES = 1024 * 1024  # a failed write with less free space than this was a full disk
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO)


class WriteFailed(RuntimeError):
    """A write that GDAL / OGR reported as failed; staged outputs turn it into an ``EngineError``."""


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
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise EngineError(no_space_message(folder)) from None
        raise EngineError(f"The output folder '{folder}' is not writable. Choose another folder.") from None
    _remove_quietly(probe)
    return target


def temporary_name(target: Path) -> Path:
    return target.with_name(f".{target.stem}.{uuid.uuid4().hex[:8]}.partial{target.suffix}")


def stale_partials(target: str | os.PathLike) -> list[Path]:
    """Temporary files of earlier runs writing ``target`` (and their GDAL sidecars) that are still lying beside it."""
    target = Path(target)
    pattern = re.compile(rf"\.{re.escape(target.stem)}\.[0-9a-f]{{8}}\.partial{re.escape(target.suffix)}"
                         rf"({re.escape(SIDECAR)})?")
    folder = target.parent if str(target.parent) else Path(".")
    try:
        return sorted(p for p in folder.iterdir() if pattern.fullmatch(p.name))
    except OSError:
        return []


def no_space_message(folder: Path) -> str:
    return f"No space left on '{folder}'. Free some space or choose another folder; nothing was written there."


def write_failure(exc: BaseException, target: Path) -> Optional[EngineError]:
    """The user's error for a write of ``target`` that raised ``exc``; None when ``exc`` is not a failed write.

    Full disks surface as OSError (ENOSPC) from Python, RuntimeError from torch.save ("file write failed") and from
    GDAL ("No space left on device", or only a short write), so the free space of the folder decides too.
    """
    if not isinstance(exc, (OSError, RuntimeError)):
        return None
    folder = target.parent if str(target.parent) else Path(".")
    code = exc.errno if isinstance(exc, OSError) else None
    text = str(exc).lower()
    if code in (errno.ENOSPC, errno.EDQUOT) or "no space left" in text or _nearly_full(folder):
        return EngineError(no_space_message(folder))
    if code in _WRITE_ERRNOS:
        return EngineError(f"Cannot write '{target.name}' in '{folder}': {exc.strerror}. Choose another folder; "
                           "nothing was written there.")
    if isinstance(exc, WriteFailed):
        return EngineError(f"Writing '{target.name}' in '{folder}' failed ({exc}). Check the folder; nothing was "
                           "written there.")
    return None


def _nearly_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < _NO_SPACE_BYTES
    except OSError:
        return False


class StagedOutputs:
    """Several outputs written under temporary names and renamed into place together by ``commit``.

    ``stage(path)`` returns the temporary path to write; ``discard`` (or leaving the ``with`` block with an error)
    deletes every staged file, so a run that fails after its first output leaves none of them. A staged raster's
    ``.aux.xml`` sidecar is moved with it (and an old sidecar of the target removed: it described the old file).
    """

    def __init__(self) -> None:
        self._staged: list[tuple[Path, Path]] = []  # (temporary, target)
        self.committed: list[Path] = []

    def stage(self, path: str | os.PathLike) -> Path:
        target = check_writable(path)
        tmp = temporary_name(target)
        self._staged.append((tmp, target))
        return tmp

    def temporary(self, path: str | os.PathLike) -> Optional[Path]:
        """The temporary name staged for ``path`` (None when it is not staged)."""
        for tmp, target in self._staged:
            if target == Path(path):
                return tmp
        return None

    def failure(self, exc: BaseException) -> Optional[EngineError]:
        """``write_failure`` for the first staged target (they share the run's folders)."""
        for _, target in self._staged:
            error = write_failure(exc, target)
            if error is not None:
                return error
        return None

    def commit(self) -> list[Path]:
        for tmp, target in self._staged:
            if not tmp.exists():
                raise EngineError(f"The output '{target}' was not written (its temporary file is missing).")
        for tmp, target in self._staged:
            os.replace(tmp, target)
            sidecar, old = Path(str(tmp) + SIDECAR), Path(str(target) + SIDECAR)
            if sidecar.exists():
                os.replace(sidecar, old)
            else:
                _remove_quietly(old)
            self.committed.append(target)
        self._staged = []
        return self.committed

    def discard(self) -> None:
        for tmp, _ in self._staged:
            _remove_quietly(tmp)
            _remove_quietly(Path(str(tmp) + SIDECAR))
        self._staged = []

    def __enter__(self) -> "StagedOutputs":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self.commit()
            except BaseException as error:
                translated = self.failure(error)  # before discarding, which frees the space
                release_frames(error)
                self.discard()
                if translated is not None:
                    raise translated from None
                raise
            return
        translated = self.failure(exc)
        release_frames(exc)  # the staged datasets' frames: closed now, not at some later garbage collection
        self.discard()
        if translated is not None:
            raise translated from None


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renames it to ``path`` on success, deletes it on any error.

    The temporary name keeps the suffix so that GDAL picks the right driver from it. A failed write (full disk,
    read-only folder) becomes an ``EngineError`` naming the folder.
    """
    with StagedOutputs() as staged:
        yield staged.stage(path)


def remove_quietly(path: Path) -> None:
    """Deletes a file, ignoring that it may be gone already."""
    _remove_quietly(path)


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
