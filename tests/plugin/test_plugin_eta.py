"""Time left from the engine's progress reports, on a fake clock; and in a real QgsTask's messages."""

from __future__ import annotations

import pytest
from qgis.core import QgsApplication

from cropmapper.ui.eta import TimeLeft, format_duration, step_name
from cropmapper.ui.tasks import EngineTask, Status


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_step_names_and_durations():
    assert step_name("Training: epoch 3/30") == step_name("Validating: epoch 3/30") == "Training"
    assert step_name("Mapping block 4 of 20") == "Mapping block"
    assert [format_duration(s) for s in (12, 59, 61, 725, 7500)] == ["10 s", "60 s", "1 min", "12 min", "2 h 05 min"]


def test_step_and_run_left_from_epochs():
    """Pre-training (0..0.3, 2 epochs of 10 s), then training (0.3..0.9, 3 epochs of 20 s), then mapping."""
    clock = Clock()
    eta = TimeLeft(clock)
    eta.update(0.0, "Pre-training: epoch 1/2")
    clock.now = 1.0
    eta.update(0.015, "Pre-training: epoch 1/2")
    assert eta.text() == ""  # too early to tell
    clock.now = 5.0
    eta.update(0.075, "Pre-training: epoch 1/2")
    assert eta.step_left is None and eta.run_left == pytest.approx((1 - 0.075) / (0.075 / 5))
    clock.now = 10.0
    eta.update(0.15, "Pre-training: epoch 2/2")
    clock.now = 15.0
    eta.update(0.225, "Pre-training: epoch 2/2")
    assert eta.step_left == pytest.approx(5.0)  # half of the second epoch is left
    assert "left in this step" in eta.text()
    clock.now = 20.0
    eta.update(0.3, "Training: epoch 1/3")
    clock.now = 40.0
    eta.update(0.5, "Training: epoch 2/3")
    clock.now = 50.0
    eta.update(0.6, "Validating: epoch 2/3")  # the same step
    assert eta.step.name == "Training"
    assert eta.step_left == pytest.approx(30.0)  # 0.3 of the run left at 0.01 per second
    assert eta.run_left == pytest.approx(30.0 + 0.1 / (0.6 / 50.0))


def test_task_messages_carry_the_time_left(wait_for):
    import time

    def job(progress, cancelled):
        for i in range(40):
            progress(i / 40, f"Training: epoch {i // 10 + 1}/4")
            time.sleep(0.12)
        return "done"

    task = EngineTask("CropMapper: test", job)
    messages = []
    results = []
    descriptions = []
    task.message.connect(messages.append)
    task.message.connect(lambda _m: descriptions.append(task.description()))  # after the task's own slot
    task.done.connect(results.append)
    QgsApplication.taskManager().addTask(task)
    wait_for(lambda: bool(results), timeout=60)
    assert results[0].status is Status.SUCCESS
    with_eta = [m for m in messages if "left in this step" in m]
    assert with_eta and with_eta[-1].startswith("Training: epoch 4/4 (about")
    assert descriptions[0] == "CropMapper: test"  # nothing to go on yet
    assert any(d.startswith("CropMapper: test: about") and "in all" in d for d in descriptions)  # the task manager
