"""Fast CPU training: dropout, recomputation, micro-batches, the memory plan, the allocator, schedules, budgets."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from engine import pipeline
from engine.errors import EngineError
from engine.model import STCLN, make_config
from engine.model.dropout import dropout, keep_mask
from engine.training import Scene, finetune
from engine.training.allocator import training_allocator
from engine.training.precision import resolve_precision
from engine.training.sampling import (FINETUNE_MAX_DEFAULT_STEPS, MIN_DEFAULT_STEPS, PRETRAIN_MAX_DEFAULT_STEPS,
                                      crop_size, default_finetune_steps, default_steps, make_batch)
from engine.training.schedule import RunSchedule
from engine.training.steps import finetune_step, micro_slices, plan_step, window_activation_bytes
from engine.training.validation import ValidationSet
from tests.engine.synthetic import make_scene

TINY = dict(spatial_channels=(8, 16), d_model=16, n_heads=2, n_layers=1, d_ff=32, sta_channels=8, norm_groups=4)


def test_dropout_drops_the_asked_share_and_scales_the_rest() -> None:
    torch.manual_seed(0)
    x = torch.ones(200_000, requires_grad=True)
    y = dropout(x, 0.1, training=True)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.9) < 0.005
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.9), rtol=1e-4)
    y.sum().backward()
    assert torch.equal(x.grad != 0, kept)  # the gradient flows exactly where the value was kept
    assert dropout(x, 0.1, training=False) is x


def test_dropout_mask_follows_the_torch_seed() -> None:
    torch.manual_seed(3)
    a, _ = keep_mask((5, 7), 0.5, torch.device("cpu"))
    torch.manual_seed(3)
    b, _ = keep_mask((5, 7), 0.5, torch.device("cpu"))
    assert torch.equal(a, b) and not a.all() and a.any()


def _inputs(b: int = 2, t: int = 6, c: int = 4, s: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, t, c, s, s, generator=g)
    valid = torch.rand(b, t, s, s, generator=g) > 0.2
    positions = torch.arange(t, dtype=torch.float32)[None].repeat(b, 1) * 20
    labels = torch.randint(0, 4, (b, s, s), generator=g)
    return x, positions, valid, labels


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _backward(model: STCLN, seed: int = 5) -> dict[str, torch.Tensor]:
    x, positions, valid, labels = _inputs()
    torch.manual_seed(seed)
    torch.nn.functional.cross_entropy(model(x, positions, valid), labels - 1, ignore_index=-1).backward()
    return _grads(model)


def _model(dropout_p: float) -> STCLN:
    torch.manual_seed(0)
    model = STCLN(make_config("lite", 4, 3, dropout=dropout_p, **TINY)).train()
    with torch.no_grad():
        model.sta.gamma.fill_(0.5)
    return model


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-5, rtol=1e-4), name


def test_recomputed_chunks_give_the_whole_batch_gradients() -> None:
    model = _model(0.0)
    chunked = copy.deepcopy(model)
    chunked.recompute_chunk = 10  # 64 pixels per window: uneven chunks
    _assert_same(_backward(model), _backward(chunked))


def test_recomputation_replays_the_dropout_masks(monkeypatch) -> None:
    model = _model(0.3)
    model.recompute_chunk = 10
    kept = copy.deepcopy(model)
    recomputed = _backward(model)
    import engine.model.stcln as stcln

    # the same chunks with their activations kept: any other dropout mask in the recomputation would differ
    monkeypatch.setattr(stcln, "checkpoint", lambda fn, *args, **kwargs: fn(*args))
    _assert_same(recomputed, _backward(kept))


def test_micro_batches_add_up_to_the_whole_batch_gradient() -> None:
    torch.manual_seed(0)
    config = make_config("lite", 4, 3, dropout=0.0, **TINY)
    model = STCLN(config).train()
    model.spatial.eval()  # BatchNorm on running statistics: then a micro-batch changes nothing
    other = copy.deepcopy(model)
    x, positions, valid, labels = _inputs(b=3)
    batch = make_batch([Scene(x[i].numpy(), valid[i].numpy(), positions[0].numpy(), labels[i].numpy())
                        for i in range(3)], [(i, 0, 0) for i in range(3)], 8, with_labels=True)
    weight = torch.tensor([1.0, 2.0, 0.5])
    precision = resolve_precision("fp32", torch.device("cpu"))
    results = []
    for m, micro in ((model, 3), (other, 1)):
        optimiser = torch.optim.SGD(m.parameters(), lr=0.0)
        results.append(finetune_step(m, m, batch, weight, optimiser, 0.0, precision, 1, micro))
    assert torch.allclose(results[0][0], results[1][0], rtol=1e-5) and torch.equal(results[0][1], results[1][1])
    a, b = _grads(model), _grads(other)
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6, rtol=1e-4), name


def test_micro_slices_cover_the_batch_evenly() -> None:
    assert micro_slices(8, 3) == [slice(0, 3), slice(3, 6), slice(6, 8)]
    assert micro_slices(8, 8) == [slice(0, 8)]
    assert micro_slices(2, 5) == [slice(0, 2)]


def test_memory_plan_recomputes_long_series_and_grows_linearly_with_dates() -> None:
    lite = make_config("lite", 10, 20)
    assert plan_step(lite, 24, 1024, 8).recompute_chunk is None  # the usual season: no recomputation
    long = plan_step(lite, 70, 1024, 8)
    assert long.recompute_chunk is not None and long.micro_batch >= 1
    ratio = window_activation_bytes(lite, 140, 1024, True) / window_activation_bytes(lite, 70, 1024, True)
    assert ratio < 2.05
    # data-parallel runs keep the batch whole
    assert plan_step(lite, 24, 1024, 8, divisible=False).micro_batch == 8


def test_training_allocator_nests() -> None:
    with training_allocator() as outer:
        with training_allocator() as inner:
            buffer = torch.ones(8 * 2**20)  # 32 MiB: above glibc's largest mmap threshold
        assert outer == inner
        assert float(buffer.sum()) == 8 * 2**20


def test_default_steps_are_bounded_and_count_labelled_pixels() -> None:
    t, c = 2, 1
    big = Scene(np.zeros((t, c, 1000, 1000), np.float32), np.ones((t, 1000, 1000), bool),
                np.arange(t, dtype=np.float32))
    assert default_steps([big], 32, 8) == PRETRAIN_MAX_DEFAULT_STEPS
    labels = np.zeros((1000, 1000), np.int64)
    labels[:10, :10] = 1  # one small field in a large region
    sparse = Scene(big.x, big.valid, big.positions, labels)
    assert default_finetune_steps([sparse], 32, 8) == MIN_DEFAULT_STEPS
    labels[:] = 1
    assert default_finetune_steps([Scene(big.x, big.valid, big.positions, labels)], 32, 8) == FINETUNE_MAX_DEFAULT_STEPS


def test_no_crop_larger_than_the_scene() -> None:
    small = Scene(np.zeros((2, 1, 20, 12), np.float32), np.ones((2, 20, 12), bool), np.arange(2, dtype=np.float32))
    assert crop_size([small], [(0, 0, 0)], 32) == (20, 12)
    assert crop_size([small], [(0, 0, 0)], 8) == (8, 8)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_schedule_fits_the_time_budget_and_says_so() -> None:
    clock = FakeClock()
    schedule = RunSchedule(epochs=10, steps=4, budget_seconds=30.0, clock=clock)
    epoch = 0
    while not schedule.finished(epoch):
        schedule.epoch_begins()
        step = 0
        while step < schedule.steps:
            clock.now += 2.0  # 2 s a step
            step += 1
            schedule.step_done()
        clock.now += 2.0  # validation
        schedule.epoch_done()
        epoch += 1
    assert schedule.steps == 4 and epoch == 3  # 10 s an epoch: three fit in 30 s
    summary = schedule.summary()
    assert summary["epochs"] == 3 and summary["epochs_asked"] == 10 and "3 of 10 epochs" in summary["note"]
    assert clock.now <= 30.0


def test_schedule_shrinks_an_epoch_that_alone_exceeds_the_budget_and_tells_time_left() -> None:
    clock = FakeClock()
    schedule = RunSchedule(epochs=5, steps=100, budget_seconds=20.0, clock=clock)
    schedule.epoch_begins()
    clock.now += 4.0
    schedule.step_done()
    assert schedule.steps == 5
    assert schedule.seconds_left(0, 1) == pytest.approx(4.0 * (5 * 5 - 1))
    assert "min left" in schedule.left(0, 1)
    assert RunSchedule(3, 3).summary().get("note") is None  # no budget: nothing to say


def test_finetune_with_a_tiny_time_budget_runs_one_short_epoch() -> None:
    s = make_scene(size=24, field=6, dates=4, seed=2)
    scene = Scene(s.x, s.valid, s.positions, s.labels, s.field_ids)
    config = make_config("lite", s.x.shape[1], int(s.labels.max()), **TINY)
    messages = []
    result = finetune([scene], [scene], config, epochs=5, crop=12, batch_size=2, steps_per_epoch=6, device="cpu",
                      time_budget_s=1e-3, progress=lambda f, m: messages.append(m))
    assert len(result.history) == 1 and result.schedule["steps_per_epoch"] == 1
    assert result.schedule["epochs"] == 1 and "1 of 5 epochs" in result.schedule["note"]
    result = finetune([scene], [], config, epochs=2, crop=12, batch_size=2, steps_per_epoch=2, device="cpu",
                      time_budget_s=3600, progress=lambda f, m: messages.append(m))
    assert result.schedule["epochs"] == 2 and "2 of 2 epochs" in result.schedule["note"]
    assert any(m.startswith("Training: epoch 2/2, about") and m.endswith("left") for m in messages), messages


@pytest.mark.parametrize("minutes", [0, -1, float("nan")])
def test_time_budget_must_be_positive(minutes: float, tmp_path) -> None:
    with pytest.raises(EngineError, match="time budget"):
        pipeline.map_crops(pipeline.SeriesInput(images=["missing.tif"]), pipeline.LabelInput("x.gpkg", "crop"),
                           str(tmp_path / "out"), time_budget_minutes=minutes)


def test_validation_set_keeps_a_bounded_subset_and_scores_only_covered_pixels() -> None:
    s = make_scene(size=40, field=5, dates=4, seed=4)
    scene = Scene(s.x, s.valid, s.positions, s.labels, s.field_ids)
    config = make_config("lite", s.x.shape[1], int(s.labels.max()), **TINY)
    model = STCLN(config)
    cpu = torch.device("cpu")
    precision = resolve_precision("fp32", cpu)
    full = ValidationSet([scene], 12, batch_size=4)
    part = ValidationSet([scene], 12, batch_size=4, max_tiles=3)
    assert sum(len(p[2]) for p in part.parts) == 3 < sum(len(p[2]) for p in full.parts)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cm_full = full.confusion(model, config.num_classes, cpu, precision)
    cm_part = part.confusion(model, config.num_classes, cpu, precision)
    assert cm_full.sum() == int((s.labels > 0).sum())  # every labelled pixel scored once
    assert 0 < cm_part.sum() <= 3 * 144
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the model is left as it was
    assert math.isclose(cm_full.sum(), full.confusion(model, config.num_classes, cpu, precision).sum())


def test_training_bench_times_the_engine_step_and_reports_its_memory_plan() -> None:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "training.py"
    spec = importlib.util.spec_from_file_location("bench_training", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    for kind in ("finetune", "pretrain"):
        r = bench.child("lite", kind, dates=4, crop=8, batch=2, repeats=1, precision="fp32", cpu_time=False)
        assert r["seconds_per_step"] > 0 and r["pixels_per_second"] == pytest.approx(2 * 64 / r["seconds_per_step"])
        assert r["training_flops_per_pixel"] == pytest.approx(3 * __import__("engine.model", fromlist=["x"])
                                                              .flops_per_pixel(make_config("lite", 10, 20), 4, 8, 8))
        assert r["peak_rss_mib"] > 0 and r["micro_batch"] == 2 and r["recompute_chunk"] is None
