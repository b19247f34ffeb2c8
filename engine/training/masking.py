"""The pre-training mask, the mask token, and the reconstruction loss over masked valid observations."""

from __future__ import annotations

import numpy as np
import torch

MASK_MODES = ("spatiotemporal", "temporal", "spatial")


def make_pretraining_mask(
    shape: tuple[int, int, int, int], ratio: float, mode: str, rng: np.random.Generator
) -> torch.Tensor:
    """A Bernoulli mask ``(B, T, H, W)`` bool, True = masked, each entry masked with probability ``ratio``.

    ``spatiotemporal``: one pixel at one date (all bands); ``temporal``: whole dates; ``spatial``: whole pixels
    over all dates.
    """
    if mode not in MASK_MODES:
        raise ValueError(f"mask mode must be one of {MASK_MODES}, not {mode!r}")
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"mask ratio must be within 0..1, not {ratio}")
    b, t, h, w = shape
    draw = {"spatiotemporal": (b, t, h, w), "temporal": (b, t, 1, 1), "spatial": (b, 1, h, w)}[mode]
    mask = rng.random(draw, dtype=np.float32) < ratio
    return torch.from_numpy(np.broadcast_to(mask, shape).copy())


def apply_mask_token(x: torch.Tensor, mask: torch.Tensor, valid: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
    """``x (B, T, C, H, W)`` with every masked valid observation replaced by ``token (C,)``.

    Invalid entries stay 0 (the model ignores them), so a cloud is neither shown nor replaced.
    """
    replace = (mask & valid).unsqueeze(2)
    return torch.where(replace, token.to(x.dtype).view(1, 1, -1, 1, 1), x)


def reconstruction_sums(
    prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of squared errors over masked valid entries (all bands), and the number of such entries x bands."""
    weight = (mask & valid).unsqueeze(2).to(torch.float32)
    squared = (prediction.float() - target.float()).square() * weight
    count = weight.sum() * prediction.shape[2]
    return squared.sum(), count


def masked_reconstruction_loss(
    prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """MSE over entries that were masked AND valid observations; 0 (with a gradient path) when there are none.

    ``prediction``, ``target``: ``(B, T, C, H, W)``; ``mask``, ``valid``: ``(B, T, H, W)`` bool.
    """
    total, count = reconstruction_sums(prediction, target, mask, valid)
    return total / count.clamp(min=1.0)
