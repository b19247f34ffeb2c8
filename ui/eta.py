"""Time left, estimated from the engine's progress ``(fraction, message)`` as it arrives: for the current step and for
the whole run. Pure Python (no Qt), so the dialog and its task can share it and tests can feed it fake clocks."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

# "Training: epoch 3/30", "Mapping block 4 of 20": the counter tells how far the step is.
_COUNTER = re.compile(r"(\d+)\s*(?:/|of)\s*(\d+)")
# Training and its validation passes are one step to the user.
_SAME_STEP = {"Validating": "Training"}
MIN_SECONDS = 3.0  # no estimate from less than this much of a step (the first batches are slow to start)


def step_name(message: str) -> str:
    """``'Training: epoch 3/30'`` -> ``'Training'``; ``'Mapping block 4 of 20'`` -> ``'Mapping block'``."""
    name = re.split(r"[:\d]", message, maxsplit=1)[0].strip().rstrip(",") or message
    return _SAME_STEP.get(name, name)


def format_duration(seconds: float) -> str:
    """A duration as people say it: ``'45 s'``, ``'12 min'``, ``'2 h 05 min'``."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{max(5, int(round(seconds / 5.0)) * 5)} s"
    minutes = int(round(seconds / 60.0))
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def estimate_text(estimate) -> str:
    """An ``engine.estimate.RunEstimate`` in words: the total, then each step the run makes."""
    parts = [(name, seconds) for name, seconds in (("pre-training", estimate.pretrain), ("training", estimate.train),
                                                   ("mapping", estimate.predict)) if seconds > 0]
    steps = ", ".join(f"{name} {format_duration(seconds)}" for name, seconds in parts)
    return f"About {format_duration(estimate.total)} on {estimate.device}: {steps}."


@dataclass
class _Step:
    name: str
    started: float
    start_fraction: float
    counter_start: Optional[tuple[int, float]] = None  # (counter value, fraction when it was first seen)
    per_count: Optional[float] = None  # fraction of the run one count (epoch, block) takes
    total: Optional[int] = None
    seen: dict = field(default_factory=dict)


class TimeLeft:
    """Feed it every progress report; ``text()`` says the time left for the step and the run, once it can tell.

    The step's end is found from its counter (the fraction one epoch or block takes, times those left); its speed
    from the fraction done since it began. The rest of the run is assumed to go at the run's average speed so far,
    so the whole-run figure is rougher than the step's and improves as the run goes on.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.started = clock()
        self.fraction = 0.0
        self.step: Optional[_Step] = None
        self.step_left: Optional[float] = None
        self.run_left: Optional[float] = None

    def update(self, fraction: float, message: str = "") -> None:
        now = self.clock()
        self.fraction = max(self.fraction, min(1.0, fraction))
        if message:
            name = step_name(message)
            if self.step is None or self.step.name != name:
                self.step = _Step(name, now, self.fraction)
            self._count(message)
        self._estimate(now)

    def _count(self, message: str) -> None:
        step = self.step
        match = _COUNTER.search(message)
        if step is None or match is None:
            return
        value, total = int(match.group(1)), int(match.group(2))
        step.total = total
        if value not in step.seen:
            step.seen[value] = self.fraction
        if step.counter_start is None:
            step.counter_start = (value, self.fraction)
        first, first_fraction = step.counter_start
        if value > first:
            step.per_count = (step.seen[value] - first_fraction) / (value - first)

    def _estimate(self, now: float) -> None:
        step = self.step
        self.step_left = self.run_left = None
        if step is None:
            return
        elapsed, done = now - step.started, self.fraction - step.start_fraction
        if elapsed < MIN_SECONDS or done <= 0:
            return
        speed = done / elapsed  # fraction of the run per second in this step
        step_end = None
        if step.per_count is not None and step.total is not None and step.counter_start is not None:
            first, first_fraction = step.counter_start
            step_end = min(1.0, first_fraction + (step.total - first + 1) * step.per_count)
        if step_end is not None:
            self.step_left = max(0.0, step_end - self.fraction) / speed
        run_elapsed = now - self.started
        if self.fraction > 0 and run_elapsed > 0:
            run_speed = self.fraction / run_elapsed
            after_step = (1.0 - step_end) / run_speed if step_end is not None else None
            if self.step_left is not None and after_step is not None:
                self.run_left = self.step_left + after_step
            else:
                self.run_left = (1.0 - self.fraction) / run_speed

    def text(self) -> str:
        """``'about 2 min left in this step, 14 min in all'``; empty while there is too little to go on."""
        if self.run_left is None:
            return ""
        if self.step_left is None:
            return f"about {format_duration(self.run_left)} left in all"
        return (f"about {format_duration(self.step_left)} left in this step, "
                f"{format_duration(self.run_left)} in all")
