"""Fine-tuning: accuracy on unseen fields, class weights, crop sampling, model selection, resume, AMP on CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.errors import EngineError
from engine.model import STCLN, make_config
from engine.training import Scene, finetune, pretrain
from engine.training.finetune import MAX_WEIGHT_RATIO, class_weights_for
from engine.training.precision import resolve_precision
from engine.training.sampling import CropSampler
from engine.training.validation import predict_scene
from tests.engine.synthetic import make_scene

TINY = dict(spatial_channels=(8, 16), d_model=16, n_heads=2, n_layers=1, d_ff=32, sta_channels=8, norm_groups=4)


def _split(seed: int = 1, **kwargs):
    """Train / val / test scenes of one synthetic series, split by field (field id modulo 3)."""
    s = make_scene(seed=seed, **kwargs)
    part = s.field_ids % 3
    scene = lambda keep: Scene(s.x, s.valid, s.positions, np.where(keep, s.labels, 0), s.field_ids)  # noqa: E731
    return s, scene(part == 0), scene(part == 1), part == 2


def test_reaches_95_percent_on_fields_it_never_saw() -> None:
    s, train, val, test = _split(size=36, field=6, dates=8)
    # the lite preset, narrowed to keep the test fast on two shared cores
    config = make_config("lite", 4, 3, spatial_channels=(16, 32), d_model=32, d_ff=64)
    result = finetune([train], [val], config, epochs=8, crop=12, batch_size=8, steps_per_epoch=4, lr=2e-3, device="cpu")
    model = STCLN(config)
    model.load_state_dict(result.state_dict)
    cpu = torch.device("cpu")
    predicted = predict_scene(model, Scene(s.x, s.valid, s.positions), 12, cpu, resolve_precision("fp32", cpu))
    accuracy = float((predicted[test] == s.labels[test]).mean())
    assert accuracy >= 0.95, (accuracy, result.history)
    assert result.val_metrics["miou"] == max(h["val_miou"] for h in result.history)
    assert result.history[result.best_epoch - 1]["val_miou"] == result.val_metrics["miou"]
    assert set(result.history[0]) == {"epoch", "loss", "val_oa", "val_miou", "seconds"}


def test_class_weights_are_inverse_frequency() -> None:
    labels = np.zeros((4, 5), np.int64)
    labels[0, :] = 1  # 5 pixels
    labels[1, :3] = 3  # 3 pixels; class 2 absent
    scene = Scene(np.zeros((1, 1, 4, 5), np.float32), np.ones((1, 4, 5), bool), np.zeros(1), labels)
    weights = class_weights_for([scene], 3)
    assert weights == pytest.approx([8 / (2 * 5), 0.0, 8 / (2 * 3)])


def test_class_weights_are_capped_for_very_rare_classes() -> None:
    labels = np.ones((100, 100), np.int64)
    labels[0, :5] = 2  # 5 pixels against 9995
    scene = Scene(np.zeros((1, 1, 100, 100), np.float32), np.ones((1, 100, 100), bool), np.zeros(1), labels)
    weights = class_weights_for([scene], 2)
    assert weights[0] == pytest.approx(10000 / (2 * 9995))
    assert weights[1] / weights[0] == pytest.approx(MAX_WEIGHT_RATIO)


def test_training_crops_hold_labelled_pixels() -> None:
    labels = np.zeros((40, 40), np.int64)
    labels[30:33, 5:7] = 2
    scene = Scene(np.zeros((1, 1, 40, 40), np.float32), np.ones((1, 40, 40), bool), np.zeros(1), labels)
    crops = CropSampler([scene], 8, labelled=True).sample(np.random.default_rng(0), 50)
    assert all((labels[y : y + 8, x : x + 8] > 0).any() for _, y, x in crops)
    assert len({(y, x) for _, y, x in crops}) > 5  # positions vary around the field


def test_from_pretrained_backbone_and_without_validation_keeps_last_epoch() -> None:
    s, train, _, _ = _split(size=24, field=6, dates=6, bands=3)
    pre_config = make_config("lite", 3, 1, **TINY)
    pre = pretrain([Scene(s.x, s.valid, s.positions)], pre_config, epochs=1, crop=12, batch_size=2,
                   steps_per_epoch=1, device="cpu")
    config = make_config("lite", 3, 3, **TINY)
    result = finetune([train], [], config, init_state=pre.state_dict, epochs=2, crop=12, batch_size=2,
                      steps_per_epoch=1, device="cpu")
    assert result.best_epoch == 2 and result.val_metrics == {}
    assert result.history[-1]["val_miou"] is None
    # the backbone started from the pre-trained weights, not from a fresh initialisation
    fresh = finetune([train], [], config, epochs=1, crop=12, batch_size=2, steps_per_epoch=1, device="cpu", lr=0.0)
    warm = finetune([train], [], config, init_state=pre.state_dict, epochs=1, crop=12, batch_size=2,
                    steps_per_epoch=1, device="cpu", lr=0.0)
    name = "layers.0.attn.in_proj_weight" if "layers.0.attn.in_proj_weight" in warm.state_dict else next(
        k for k in warm.state_dict if k.startswith("layers.") and k.endswith("weight"))
    assert torch.equal(warm.state_dict[name], pre.state_dict[name])
    assert not torch.equal(fresh.state_dict[name], pre.state_dict[name])


def test_early_stopping_after_patience_epochs_without_improvement() -> None:
    _, train, val, _ = _split(size=24, field=6, dates=6, bands=3)
    config = make_config("lite", 3, 3, **TINY)
    result = finetune([train], [val], config, epochs=8, patience=2, crop=12, batch_size=2, steps_per_epoch=1,
                      lr=0.0, device="cpu")
    assert len(result.history) < 8
    after = result.history[result.best_epoch :]
    assert len(after) == 2 and all(h["val_miou"] <= result.val_metrics["miou"] for h in after)


def test_resume_equals_uninterrupted_run(tmp_path) -> None:
    _, train, val, _ = _split(size=24, field=6, dates=6, bands=3)
    config = make_config("lite", 3, 3, **TINY)
    kwargs = dict(crop=12, batch_size=3, steps_per_epoch=2, device="cpu", seed=3)
    full = finetune([train], [val], config, epochs=3, **kwargs)
    path = str(tmp_path / "ft.ckpt")
    finetune([train], [val], config, epochs=2, checkpoint=path, **kwargs)
    resumed = finetune([train], [val], config, epochs=3, checkpoint=path, resume=True, **kwargs)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    assert resumed.best_epoch == full.best_epoch
    assert all(torch.equal(v, resumed.state_dict[k]) for k, v in full.state_dict.items())


def test_no_labelled_training_pixels_is_a_user_error() -> None:
    s, train, val, _ = _split(size=24, field=6, dates=6, bands=3)
    empty = Scene(s.x, s.valid, s.positions, np.zeros_like(s.labels))
    with pytest.raises(EngineError, match="No labelled training pixels"):
        finetune([empty], [val], make_config("lite", 3, 3, **TINY), epochs=1, device="cpu")


@pytest.mark.gpu
def test_one_amp_training_step_on_cuda() -> None:
    _, train, val, _ = _split(size=32)
    config = make_config("lite", 4, 3)
    precision = resolve_precision("auto", torch.device("cuda"))
    assert precision.name in ("bf16", "fp16") and precision.scaler.is_enabled() == (precision.name == "fp16")
    torch.manual_seed(0)
    before = STCLN(config).state_dict()
    result = finetune([train], [val], config, epochs=1, crop=16, batch_size=4, steps_per_epoch=1, device="cuda",
                      precision="auto")
    assert np.isfinite(result.history[0]["loss"]) and result.history[0]["val_oa"] is not None
    assert any(not torch.equal(v, result.state_dict[k]) for k, v in before.items() if v.is_floating_point())
