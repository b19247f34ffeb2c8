"""What a run may write: its outputs checked against its inputs, locked against a second run, stale temporary files
of killed runs removed, and folders it created removed again when it fails.

Every public step of ``engine.pipeline`` is wrapped with ``guard_run(step)``, so the command line, Processing and the
dialog get the same protection. ``RUN_FILES`` says which arguments of each step are outputs and inputs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import inspect
import json
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

from .atomic import SIDECAR, check_writable, no_space_message, stale_partials
from .errors import CancelledError, EngineError


@dataclass(frozen=True)
class RunFiles:
    outputs: tuple[str, ...]  # argument names of output files (or folders)
    inputs: tuple[str, ...]  # argument names of input paths, SeriesInput or LabelInput
    folder_outputs: tuple[str, ...] = ()  # outputs that are folders: these files inside are written
    checkpoint: Optional[str] = None  # argument naming the model whose training checkpoint is kept for resume


REPORT_FILES = ("metrics.json", "per_class.csv", "report.html")
RUN_FILES = {
    "pretrain": RunFiles(("out_model",), ("series",), checkpoint="out_model"),
    "train": RunFiles(("out_model",), ("series", "labels", "init_model"), checkpoint="out_model"),
    "predict": RunFiles(("out_map", "out_confidence", "out_probabilities", "fields_out"),
                        ("model_path", "series", "fields", "extent")),
    "evaluate": RunFiles((), ("map_path", "labels", "model_path"), folder_outputs=("report_dir",)),
    "map_crops": RunFiles((), ("series", "labels", "existing_model"), folder_outputs=("out_dir",)),
}
FOLDER_FILES = {"report_dir": REPORT_FILES, "out_dir": ()}
# What ``pipeline.map_crops`` writes into its folder (the dialog and Processing stage it and move it there).
MAP_CROPS_FILES = ("crop_map.tif", "crop_map.qml", "confidence.tif", "confidence.qml", "fields.gpkg", "model.cropmodel",
                   "pretrained.cropmodel", "report")


def checkpoint_path(model_path: str | os.PathLike) -> Path:
    return Path(str(model_path) + ".checkpoint")


# ---------------------------------------------------------------------------------------------------- inputs


def input_paths(value: Any) -> list[str]:
    """The files behind an argument: a path, a ``SeriesInput`` (images, masks, SCL, reference) or a ``LabelInput``."""
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [str(value)]
    paths: list[str] = []
    for name in ("images", "cloud_masks", "scl"):
        paths += [str(p) for p in (getattr(value, name, None) or [])]
    for name in ("reference", "path"):
        if getattr(value, name, None):
            paths.append(str(getattr(value, name)))
    return paths


def _identity(path: str) -> Optional[tuple]:
    """``(device, inode)`` of an existing file (links followed), else None."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return (info.st_dev, info.st_ino)


def check_outputs_spare_inputs(outputs: Iterable[str | os.PathLike], inputs: Iterable[str]) -> None:
    """``EngineError`` when an output would replace one of the run's inputs (same resolved path, or same file)."""
    known: dict[Any, str] = {}
    for path in inputs:
        key = _identity(path)
        if key is not None:
            known[key] = path
        with contextlib.suppress(OSError, RuntimeError):
            known[Path(path).resolve()] = path
    for output in outputs:
        hit = known.get(_identity(str(output))) if _identity(str(output)) else None
        if hit is None:
            with contextlib.suppress(OSError, RuntimeError):
                hit = known.get(Path(output).resolve())
        if hit is not None:
            raise EngineError(
                f"The output '{output}' is the input '{hit}' of this run and would be replaced. Choose another "
                "output name; nothing was written."
            )


# ---------------------------------------------------------------------------------------------------- locks


def lock_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.lock")


class OutputLock:
    """An exclusive lock on one output, held through a ``.<name>.lock`` file beside it.

    The operating system releases the lock when the process dies (even by SIGKILL), so a lock file left behind never
    blocks a later run; the file records who holds it, for the message of a run that finds it taken.
    """

    def __init__(self, target: str | os.PathLike) -> None:
        self.target = Path(target)
        self.path = lock_path(self.target)
        self._fd: Optional[int] = None

    def acquire(self) -> None:
        for _ in range(20):  # the holder may delete the file between our open and our lock: open it again
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if not _try_lock(fd):
                holder = _read_holder(fd)
                os.close(fd)
                raise EngineError(
                    f"'{self.target}' is being written by another CropMapper run ({holder}). Wait for it to finish, "
                    "or choose another output."
                )
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except OSError:
                same = False
            if same:
                self._fd = fd
                self._write_holder()
                return
            os.close(fd)
        raise EngineError(f"Cannot lock '{self.target}' for writing. Try again.")

    def _write_holder(self) -> None:
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": dt.datetime.now().isoformat(timespec="seconds")}
        data = json.dumps(info).encode()
        try:
            os.ftruncate(self._fd, 0)
            os.lseek(self._fd, 0, os.SEEK_SET)
            os.write(self._fd, data)
        except OSError:
            self.release()
            raise EngineError(no_space_message(self.path.parent)) from None

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        _unlock(self._fd)
        os.close(self._fd)
        self._fd = None


def _try_lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def _unlock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:
        import msvcrt

        with contextlib.suppress(OSError):
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    fcntl.flock(fd, fcntl.LOCK_UN)


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096).decode() or "{}")
        return f"process {info['pid']} on {info['host']}, started {info['started']}"
    except (OSError, ValueError, KeyError):
        return "process unknown"


# ---------------------------------------------------------------------------------------------------- the guard


def _main_process() -> bool:
    return int(os.environ.get("RANK", "0") or 0) == 0


def missing_top(folder: Path) -> Optional[Path]:
    """The highest ancestor of ``folder`` (itself included) that does not exist yet."""
    top = None
    for candidate in [folder, *folder.parents]:
        if candidate.exists():
            break
        top = candidate
    return top


def _holds_files(folder: Path) -> bool:
    return any(not p.is_dir() for p in folder.rglob("*"))


def _remove_stale(targets: Iterable[Path], started: float) -> None:
    """Temporary files of killed runs (older than this run) writing the same outputs."""
    for target in targets:
        for stale in stale_partials(target):
            with contextlib.suppress(OSError):
                if stale.stat().st_mtime < started:
                    shutil.rmtree(stale) if stale.is_dir() else stale.unlink()


@contextlib.contextmanager
def guarded_outputs(files: RunFiles, arguments: dict[str, Any]) -> Iterator[list[str]]:
    """Checks and locks a step's outputs for the duration; yields the notes to add to its warnings."""
    import time

    started = time.time()
    outputs = [Path(arguments[name]) for name in files.outputs if arguments.get(name)]
    folders = [Path(arguments[name]) for name in files.folder_outputs if arguments.get(name)]
    written = outputs + [f / name for f in folders for name in FOLDER_FILES.get(_folder_arg(files, f, arguments), ())]
    inputs = [p for name in files.inputs for p in input_paths(arguments.get(name))]
    check_outputs_spare_inputs(written + folders, inputs)
    checkpoint = checkpoint_path(arguments[files.checkpoint]) if files.checkpoint and arguments.get(files.checkpoint) else None
    notes: list[str] = []
    options = arguments.get("options")
    if checkpoint is not None and getattr(options, "resume", False) and not checkpoint.is_file():
        notes.append(f"There was no checkpoint '{checkpoint}' to resume from: training started from the first epoch.")

    created = {top for top in (missing_top(p.parent if p in outputs else p) for p in outputs + folders) if top}
    locks: list[OutputLock] = []
    try:
        if _main_process():
            for target in outputs + folders:
                check_writable(target)
                lock = OutputLock(target)
                lock.acquire()
                locks.append(lock)
            sidecars = [p.with_suffix(".qml") for p in outputs] + [Path(str(p) + SIDECAR) for p in outputs]
            _remove_stale(written + folders + sidecars + ([checkpoint] if checkpoint else []), started)
    except OSError as exc:
        _release(locks)
        remove_created(created)
        raise EngineError(f"Cannot write beside '{(outputs + folders)[0]}': {exc.strerror}. Choose another "
                          "folder.") from None
    except BaseException:
        _release(locks)
        remove_created(created)
        raise
    try:
        yield notes
    except BaseException as exc:
        _release(locks)  # the lock files first: they are files in the folders to remove
        remove_created(created)
        kept = checkpoint if checkpoint is not None and checkpoint.is_file() and _main_process() else None
        if kept is not None:
            note = (f"The training checkpoint '{kept}' of the last completed epoch is kept: run the same command "
                    "again with resume to continue from it.")
            if isinstance(exc, (CancelledError, KeyboardInterrupt)):
                raise CancelledError(str(exc) or "Cancelled.", kept=[str(kept)]) from None
            if isinstance(exc, EngineError):
                raise EngineError(f"{exc} {note}") from None
        raise
    finally:
        _release(locks)


def _release(locks: list[OutputLock]) -> None:
    for lock in locks:
        lock.release()


def remove_created(created: set[Path]) -> None:
    """Folders this run created, when they hold no file (a failed run leaves no empty folder tree)."""
    for top in created:
        if top.is_dir() and not _holds_files(top):
            shutil.rmtree(top, ignore_errors=True)


def _folder_arg(files: RunFiles, folder: Path, arguments: dict[str, Any]) -> str:
    for name in files.folder_outputs:
        if arguments.get(name) and Path(arguments[name]) == folder:
            return name
    return ""


def guard_run(step: str) -> Callable:
    """Decorates the pipeline step ``step`` (see ``RUN_FILES``) with ``guarded_outputs``.

    Notes (resume without a checkpoint) are added to the outcome's ``warnings`` when it has them.
    """
    files = RUN_FILES[step]

    def decorate(function: Callable) -> Callable:
        signature = inspect.signature(function)

        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            with guarded_outputs(files, dict(bound.arguments)) as notes:
                outcome = function(*args, **kwargs)
            if notes and isinstance(getattr(outcome, "warnings", None), list):
                outcome.warnings.extend(notes)
            return outcome

        return wrapper

    return decorate
