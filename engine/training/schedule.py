"""The epochs and steps a training run does, fitted to an optional time budget, and the time it has left."""

from __future__ import annotations

import time
from typing import Any, Optional


def format_minutes(seconds: float) -> str:
    """``"about 40 s"``, ``"about 3 min"``, ``"about 1 h 05 min"``."""
    if seconds < 90:
        return f"about {max(1, round(seconds / 10) * 10)} s"
    minutes = round(seconds / 60)
    return f"about {minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"about {minutes} min"


class RunSchedule:
    """Epochs x steps of a run, shrunk to fit ``budget_seconds`` (None: as asked) once steps have been timed.

    The first step fixes how many steps an epoch can afford (an epoch never exceeds the budget), every finished
    epoch (steps and validation) how many epochs fit in the time left. ``left()`` says how long the rest will take.
    """

    def __init__(self, epochs: int, steps: int, budget_seconds: Optional[float] = None, start_epoch: int = 0,
                 clock=time.perf_counter) -> None:
        self.asked_epochs, self.asked_steps = int(epochs), int(steps)
        self.epochs, self.steps = int(epochs), int(steps)
        self.budget = float(budget_seconds) if budget_seconds else None
        self.start_epoch = int(start_epoch)
        self._clock = clock
        self._began = clock()
        self._epoch_began = self._began
        self._step_seconds: list[float] = []
        self._epoch_seconds: list[float] = []
        self._last = self._began

    def step_done(self) -> None:
        now = self._clock()
        self._step_seconds.append(now - self._last)
        self._last = now
        if self.budget is not None and len(self._step_seconds) == 1:
            affordable = int(self.budget // max(self._step_seconds[0], 1e-6))
            self.steps = max(1, min(self.steps, affordable))

    def epoch_begins(self) -> None:
        self._epoch_began = self._last = self._clock()

    def epoch_done(self) -> None:
        now = self._clock()
        self._epoch_seconds.append(now - self._epoch_began)
        self._last = now
        if self.budget is not None:
            done = len(self._epoch_seconds)
            mean = sum(self._epoch_seconds) / done
            room = self.budget - (now - self._began)
            self.epochs = max(self.start_epoch + done,
                              min(self.epochs, self.start_epoch + done + int(max(room, 0.0) // max(mean, 1e-6))))

    def finished(self, epoch: int) -> bool:
        """Whether epoch ``epoch`` (0-based) is beyond what the schedule allows."""
        return epoch >= self.epochs

    def seconds_left(self, epoch: int, step: int) -> Optional[float]:
        """Estimated seconds until the run ends, from step ``step`` of epoch ``epoch``; None before any timing."""
        if self._epoch_seconds:
            per_epoch = sum(self._epoch_seconds) / len(self._epoch_seconds)
            in_epoch = self._clock() - self._epoch_began
            return max(0.0, (self.epochs - epoch) * per_epoch - in_epoch)
        if self._step_seconds:
            per_step = sum(self._step_seconds) / len(self._step_seconds)
            return per_step * ((self.epochs - epoch) * self.steps - step)
        return None

    def left(self, epoch: int, step: int) -> str:
        """``", about 3 min left"``, or ``""`` before the first step is timed."""
        seconds = self.seconds_left(epoch, step)
        return "" if seconds is None else f", {format_minutes(seconds)} left"

    def summary(self) -> dict[str, Any]:
        """What was chosen: epochs and steps asked and run, the budget, and a sentence for the user."""
        run = self.start_epoch + len(self._epoch_seconds)
        out: dict[str, Any] = {"epochs_asked": self.asked_epochs, "epochs": run, "steps_per_epoch": self.steps,
                               "steps_per_epoch_asked": self.asked_steps, "time_budget_seconds": self.budget}
        if self.budget is not None:
            out["note"] = (f"Time budget {format_minutes(self.budget)[6:]}: {run} of {self.asked_epochs} epochs "
                           f"of {self.steps} steps fit ({format_minutes(self._clock() - self._began)[6:]} used).")
        return out


def agree(schedule: RunSchedule) -> None:
    """Under torchrun, every rank takes the smallest epochs and steps any rank chose (they must run alike)."""
    from .distributed import backend_device, is_distributed

    if schedule.budget is None or not is_distributed():
        return
    import torch
    import torch.distributed as dist

    values = torch.tensor([schedule.epochs, schedule.steps], dtype=torch.int64,
                          device=backend_device(torch.device("cpu")))
    dist.all_reduce(values, op=dist.ReduceOp.MIN)
    schedule.epochs, schedule.steps = int(values[0].item()), int(values[1].item())
