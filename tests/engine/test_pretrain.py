"""Masked pre-training: the mask, the loss, learning, checkpoints and exact resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.errors import CancelledError, EngineError
from engine.model import make_config
from engine.training import Scene, make_pretraining_mask, masked_reconstruction_loss, pretrain
from engine.training.masking import apply_mask_token
from tests.engine.synthetic import make_scene

TINY = dict(spatial_channels=(8, 16), d_model=16, n_heads=2, n_layers=1, d_ff=32, sta_channels=8, norm_groups=4)


def _scenes(seed: int = 0, size: int = 24) -> list[Scene]:
    s = make_scene(size=size, field=6, dates=6, bands=3, seed=seed)
    return [Scene(s.x, s.valid, s.positions)]


def test_loss_counts_only_masked_valid_entries() -> None:
    target = torch.zeros(1, 2, 2, 2, 2)  # B, T, C, H, W
    prediction = torch.full_like(target, 50.0)  # unmasked entries: large errors that must not count
    mask = torch.zeros(1, 2, 2, 2, dtype=torch.bool)
    valid = torch.ones(1, 2, 2, 2, dtype=torch.bool)
    mask[0, 0, 0, 0] = True  # masked, valid: error 1 in both bands
    prediction[0, 0, :, 0, 0] = 1.0
    mask[0, 1, 0, 1] = True  # masked, valid: error 3 in both bands
    prediction[0, 1, :, 0, 1] = 3.0
    mask[0, 1, 1, 1] = True  # masked but a cloud: error 100, never a target
    valid[0, 1, 1, 1] = False
    prediction[0, 1, :, 1, 1] = 100.0
    prediction.requires_grad_(True)

    loss = masked_reconstruction_loss(prediction, target, mask, valid)
    assert loss.item() == pytest.approx((1 + 1 + 9 + 9) / 4)
    loss.backward()
    touched = prediction.grad.abs().sum(dim=2) > 0
    assert touched.sum().item() == 2
    assert touched[0, 0, 0, 0] and touched[0, 1, 0, 1]


def test_loss_without_targets_is_zero_with_gradient_path() -> None:
    prediction = torch.randn(1, 2, 3, 2, 2, requires_grad=True)
    mask = torch.zeros(1, 2, 2, 2, dtype=torch.bool)
    loss = masked_reconstruction_loss(prediction, torch.zeros_like(prediction), mask, ~mask)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.count_nonzero(prediction.grad) == 0


@pytest.mark.parametrize("mode", ["spatiotemporal", "temporal", "spatial"])
def test_mask_modes(mode: str) -> None:
    mask = make_pretraining_mask((4, 10, 16, 16), 0.4, mode, np.random.default_rng(0))
    assert mask.shape == (4, 10, 16, 16) and mask.dtype == torch.bool
    assert 0.3 < mask.float().mean().item() < 0.5
    if mode == "temporal":  # whole dates
        assert torch.equal(mask, mask[:, :, :1, :1].expand_as(mask))
    elif mode == "spatial":  # whole pixels over all dates
        assert torch.equal(mask, mask[:, :1].expand_as(mask))
    else:
        assert not torch.equal(mask, mask[:, :, :1, :1].expand_as(mask))
        assert not torch.equal(mask, mask[:, :1].expand_as(mask))


def test_mask_token_replaces_only_masked_valid_observations() -> None:
    x = torch.randn(1, 2, 3, 2, 2)
    mask = torch.zeros(1, 2, 2, 2, dtype=torch.bool)
    valid = torch.ones(1, 2, 2, 2, dtype=torch.bool)
    mask[0, 0, 1, 1] = True
    mask[0, 1, 0, 0] = True
    valid[0, 1, 0, 0] = False
    token = torch.tensor([7.0, 8.0, 9.0])
    shown = apply_mask_token(x, mask, valid, token)
    assert torch.equal(shown[0, 0, :, 1, 1], token)
    assert torch.equal(shown[0, 1, :, 0, 0], x[0, 1, :, 0, 0])  # a cloud stays as it was
    keep = ~(mask & valid).unsqueeze(2).expand_as(x)
    assert torch.equal(shown[keep], x[keep])


def test_loss_falls_on_a_small_fixed_dataset() -> None:
    config = make_config("lite", 3, 1, **TINY)
    result = pretrain(
        _scenes(), config, epochs=5, crop=12, batch_size=4, steps_per_epoch=6, lr=3e-3, device="cpu", seed=1
    )
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 5 and all(np.isfinite(losses))
    assert losses[-1] < 0.7 * losses[0], losses
    assert set(result.history[0]) == {"epoch", "loss", "seconds"}
    assert "mask_token" in result.pretext_state and any(k.startswith("head.") for k in result.state_dict)


@pytest.mark.parametrize("mask_mode", ["spatiotemporal", "temporal"])
def test_resume_ends_with_the_weights_of_an_uninterrupted_run(tmp_path, mask_mode: str) -> None:
    config = make_config("lite", 3, 1, **TINY)
    kwargs = dict(crop=12, batch_size=3, steps_per_epoch=2, lr=1e-3, device="cpu", seed=7, mask_mode=mask_mode)
    full = pretrain(_scenes(), config, epochs=3, checkpoint=str(tmp_path / "full.ckpt"), **kwargs)
    part = str(tmp_path / "part.ckpt")
    pretrain(_scenes(), config, epochs=2, checkpoint=part, **kwargs)
    resumed = pretrain(_scenes(), config, epochs=3, checkpoint=part, resume=True, **kwargs)

    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    assert full.state_dict.keys() == resumed.state_dict.keys()
    for name, value in full.state_dict.items():
        assert torch.equal(value, resumed.state_dict[name]), name
    assert all(torch.equal(v, resumed.pretext_state[k]) for k, v in full.pretext_state.items())


def test_resume_without_checkpoint_starts_fresh_and_a_foreign_checkpoint_is_refused(tmp_path) -> None:
    config = make_config("lite", 3, 1, **TINY)
    path = str(tmp_path / "run.ckpt")
    kwargs = dict(epochs=1, crop=12, batch_size=2, steps_per_epoch=1, device="cpu")
    result = pretrain(_scenes(), config, checkpoint=path, resume=True, **kwargs)
    assert len(result.history) == 1
    other = make_config("lite", 3, 1, **{**TINY, "n_layers": 2})
    with pytest.raises(EngineError, match="another model configuration"):
        pretrain(_scenes(), other, checkpoint=path, resume=True, **kwargs)


def test_cancel_raises_and_reports_progress() -> None:
    config = make_config("lite", 3, 1, **TINY)
    seen: list[float] = []
    with pytest.raises(CancelledError):
        pretrain(
            _scenes(), config, epochs=3, crop=12, batch_size=2, steps_per_epoch=2, device="cpu",
            progress=lambda f, m: seen.append(f), cancelled=lambda: len(seen) >= 3,
        )
    assert seen == sorted(seen) and len(seen) == 3


def test_user_errors() -> None:
    config = make_config("lite", 4, 1, **TINY)
    with pytest.raises(EngineError, match="bands"):
        pretrain(_scenes(), config, epochs=1, device="cpu")
    with pytest.raises(EngineError, match="mask mode"):
        pretrain(_scenes(), make_config("lite", 3, 1, **TINY), mask_mode="random", device="cpu")


@pytest.mark.gpu
def test_one_amp_pretraining_step_on_cuda() -> None:
    config = make_config("lite", 3, 1)
    result = pretrain(_scenes(size=32), config, epochs=1, crop=16, batch_size=4, steps_per_epoch=1, device="cuda",
                      precision="auto")
    assert np.isfinite(result.history[0]["loss"])
