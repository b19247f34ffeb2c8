"""Dropout for CPU training: the same statistics as ``F.dropout`` at about a quarter of its random-number cost.

Why: torch's CPU dropout draws one Bernoulli sample per element (``bernoulli_``, ~15 % of a ``lite`` training step
on this project's 2-core benchmark CPU). Here every element takes 16 bits of one 64-bit draw and is kept where
they exceed a threshold, so the drop probability is ``p`` rounded to 1/65536.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

_LEVELS = 1 << 16


def keep_mask(shape: torch.Size | tuple[int, ...], p: float, device: torch.device) -> tuple[Tensor, float]:
    """A bool mask of ``shape`` (True = keep, each element dropped with probability ~``p``) and ``1 / (1 - p')``
    for the rounded probability ``p'`` actually used. Uses torch's default generator (``torch.manual_seed``)."""
    n = 1
    for s in shape:
        n *= int(s)
    dropped = round(p * _LEVELS)
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(-(1 << 63), None)
    halves = words.view(torch.int16)[:n].view(shape)
    return halves >= dropped - (1 << 15), _LEVELS / (_LEVELS - dropped)


class _MaskedScale(torch.autograd.Function):
    """``x * mask * scale`` with the bool mask (1 byte per element) kept for the backward."""

    @staticmethod
    def forward(ctx, x: Tensor, mask: Tensor, scale: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(mask)
        ctx.scale = scale
        return torch.mul(x, mask).mul_(scale)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (mask,) = ctx.saved_tensors
        return torch.mul(grad, mask).mul_(ctx.scale), None, None


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """``F.dropout(x, p, training)``; on CPUs through ``keep_mask`` (see the module's docstring)."""
    if not training or p <= 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return F.dropout(x, p, training=True)
    mask, scale = keep_mask(x.shape, p, x.device)
    return _MaskedScale.apply(x, mask, scale)
