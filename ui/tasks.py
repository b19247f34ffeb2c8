"""QgsTask wrappers around engine steps: the work runs in a worker thread, GUI work only in ``finished()``.

Every task ends with a typed ``TaskResult`` (success / failure / cancelled) emitted by ``done`` in the GUI thread.
"""

from __future__ import annotations

import enum
import os
import re
import shutil
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from qgis.core import Qgis, QgsMessageLog, QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from ..engine.errors import CancelledError, EngineError, cancelled_message, release_frames
from ..engine.outputs import (
    MAP_CROPS_FILES,
    OutputLock,
    check_outputs_spare_inputs,
    input_paths,
    missing_top,
    remove_created,
)
from .eta import TimeLeft

LOG_TAG = "CropMapper"
Job = Callable[[Callable[[float, str], None], Callable[[], bool]], Any]


class Status(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    CANCELLED = "cancelled"


@dataclass
class TaskResult:
    """What a task produced: the job's return value on success, a message (and details) otherwise."""

    status: Status
    value: Any = None
    message: str = ""
    details: str = ""  # a traceback, for unexpected errors only (user errors are ``EngineError`` messages)

    @property
    def ok(self) -> bool:
        return self.status is Status.SUCCESS


class EngineTask(QgsTask):
    """Runs ``job(progress, cancelled)`` in the background.

    ``message`` carries the engine's progress text; ``progressChanged`` (QgsTask's) the percentage; ``done`` the
    ``TaskResult``. Engine errors become a FAILURE with the engine's message; anything else a FAILURE whose traceback
    goes to the QGIS message log.
    """

    message = pyqtSignal(str)
    done = pyqtSignal(object)  # TaskResult

    def __init__(self, description: str, job: Job, cleanup: Optional[Callable[[], None]] = None) -> None:
        super().__init__(description, QgsTask.CanCancel)
        self.job = job
        self.cleanup = cleanup
        self.result: Optional[TaskResult] = None
        self.base_description = description
        self.time_left = TimeLeft()
        self._step_text = ""
        self._shown = ""
        self.message.connect(self._describe)  # queued to the GUI thread, where the task manager reads it

    def _progress(self, fraction: float, text: str) -> None:
        self.setProgress(max(0.0, min(100.0, 100.0 * fraction)))
        self.time_left.update(fraction, text)
        self._step_text = text or self._step_text
        eta = self.time_left.text()
        shown = f"{self._step_text} ({eta})" if eta else self._step_text
        if shown and shown != self._shown:
            self._shown = shown
            self.message.emit(shown)

    def _describe(self, _text: str) -> None:
        eta = self.time_left.text()
        self.setDescription(f"{self.base_description}: {eta}" if eta else self.base_description)

    def run(self) -> bool:
        try:
            value = self.job(self._progress, self.isCanceled)
            if self.isCanceled():
                raise CancelledError("Cancelled by the user.")
            self.result = TaskResult(Status.SUCCESS, value)
        except CancelledError as exc:
            self.result = TaskResult(Status.CANCELLED, message=cancelled_message(exc))
            release_frames(exc)
        except EngineError as exc:  # a user error: its message says it all, a traceback would only alarm
            self.result = TaskResult(Status.FAILURE, message=str(exc))
            release_frames(exc)
        except Exception as exc:  # noqa: BLE001 - an unexpected error must reach the user, not the task manager
            self.result = TaskResult(
                Status.FAILURE, message=f"Unexpected error: {exc}. Details are in the CropMapper log.",
                details=traceback.format_exc(),
            )
            release_frames(exc)
        if not self.result.ok and self.cleanup is not None:
            try:
                self.cleanup()
            except Exception:  # noqa: BLE001
                QgsMessageLog.logMessage(traceback.format_exc(), LOG_TAG, Qgis.Warning)
        return self.result.ok

    def finished(self, ok: bool) -> None:  # noqa: ARG002 - the result says it all
        result = self.result or TaskResult(Status.CANCELLED, message="Cancelled before it started.")
        if result.status is Status.FAILURE and result.details:  # unexpected: the traceback is for a bug report
            QgsMessageLog.logMessage(f"{self.description()}: {result.message}\n{result.details}", LOG_TAG, Qgis.Critical)
        elif result.status is Status.FAILURE:
            QgsMessageLog.logMessage(f"{self.description()}: {result.message}", LOG_TAG, Qgis.Warning)
        elif result.status is Status.CANCELLED:
            QgsMessageLog.logMessage(f"{self.description()}: {result.message}", LOG_TAG, Qgis.Info)
        self.done.emit(result)


class StagedFolder:
    """Outputs are written into a hidden sibling ``.<name>.<id>.partial`` of ``folder`` and moved into ``folder`` only
    on ``commit``; ``discard`` deletes them. So a cancelled or failed run leaves nothing behind, not even the outputs
    of the steps that had completed (the engine's atomic writes only cover one file each).

    While staged, ``folder`` is locked against a second run writing it (the engine's ``OutputLock``), partial folders
    that killed runs left beside it are removed, and no output may replace one of the run's ``inputs``
    (``for_inputs``): checked before the work with the names the engine writes, and again at ``commit``.
    """

    def __init__(self, folder: str, inputs: Sequence[Any] = ()) -> None:
        self.final = Path(folder)
        self.partial = self.final.with_name(f".{self.final.name}.{uuid.uuid4().hex[:8]}.partial")
        self.inputs = list(inputs)
        self._lock: Optional[OutputLock] = None
        self._created: set[Path] = set()

    def for_inputs(self, *inputs: Any) -> "StagedFolder":
        """The run's inputs (paths, ``SeriesInput``, ``LabelInput``): outputs may not replace them."""
        self.inputs = [p for value in inputs for p in input_paths(value)]
        return self

    def create(self) -> Path:
        check_outputs_spare_inputs([self.final / name for name in MAP_CROPS_FILES], self.inputs)
        top = missing_top(self.final.parent)
        self._created = {top} if top else set()  # removed again by ``discard`` when left empty
        self.final.parent.mkdir(parents=True, exist_ok=True)
        lock = OutputLock(self.final)
        lock.acquire()
        self._lock = lock
        try:
            self._remove_stale()
            self.partial.mkdir()
        except BaseException:
            self._release()
            raise
        return self.partial

    def _remove_stale(self) -> None:
        """Partial folders of runs that were killed: any other run writing this folder would hold its lock."""
        pattern = re.compile(rf"\.{re.escape(self.final.name)}\.[0-9a-f]{{8}}\.partial")
        for path in self.final.parent.iterdir():
            if path != self.partial and pattern.fullmatch(path.name) and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def commit(self) -> Path:
        try:
            replaced = [self.final / child.name for child in self.partial.iterdir()]
            inside = [p for target in replaced if target.is_dir() for p in target.rglob("*")]
            check_outputs_spare_inputs(replaced + inside, self.inputs)
            if not self.final.exists():
                self.partial.rename(self.final)
                return self.final
            for child in sorted(self.partial.iterdir()):
                target = self.final / child.name
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                os.replace(child, target)
            self.partial.rmdir()
            return self.final
        finally:
            self._release()

    def discard(self) -> None:
        shutil.rmtree(self.partial, ignore_errors=True)
        self._release()
        remove_created(self._created)

    def final_path(self, path: Optional[str]) -> Optional[str]:
        """Where a file written under the partial folder is after ``commit``."""
        if not path:
            return path
        try:
            return str(self.final / Path(path).relative_to(self.partial))
        except ValueError:
            return path

    def __enter__(self) -> Path:
        return self.create()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self.commit()
            except BaseException:
                self.discard()
                raise
        else:
            self.discard()
