"""The expected time of a run, from a few timed steps of the model on this device."""

from __future__ import annotations

import math

import pytest

from engine.estimate import estimate_run, pretrain_area, steps_per_epoch
from engine.regions import BLOCK, PRETRAIN_BUDGET


def test_steps_follow_the_engines_defaults():
    assert steps_per_epoch(32 * 32 * 8 * 10, 32, 8) == 10
    assert steps_per_epoch(10, 32, 8) == 4  # the engine's minimum
    assert pretrain_area(100, 100, 40) == 100 * 100
    big = pretrain_area(20000, 20000, 400)
    assert big == (PRETRAIN_BUDGET // (BLOCK * BLOCK * 400)) * BLOCK * BLOCK < 20000 * 20000


@pytest.mark.slow
def test_estimate_is_the_timed_steps_times_the_runs_steps():
    shape = dict(bands=2, dates=3, width=40, height=24, labelled_area=20 * 20, classes=3, preset="lite", crop=8,
                 batch_size=2, tile=8, overlap=0, predict_batch=2, device="cpu")
    with_pretraining = estimate_run(**shape, pretrain_epochs=3, train_epochs=5)
    assert with_pretraining.train_step > 0 and with_pretraining.predict_batch > 0
    assert with_pretraining.train == pytest.approx(5 * steps_per_epoch(400, 8, 2) * with_pretraining.train_step)
    assert with_pretraining.pretrain == pytest.approx(3 * steps_per_epoch(40 * 24, 8, 2) * with_pretraining.train_step)
    tiles = math.ceil(40 / 8) * math.ceil(24 / 8)  # overlap 0: tiles side by side
    assert with_pretraining.predict == pytest.approx(math.ceil(tiles / 2) * with_pretraining.predict_batch)
    assert with_pretraining.total == pytest.approx(
        with_pretraining.pretrain + with_pretraining.train + with_pretraining.predict)
    mapping_only = estimate_run(**shape, pretrain_epochs=None, train_epochs=0)
    assert mapping_only.pretrain == mapping_only.train == 0 and mapping_only.predict > 0
