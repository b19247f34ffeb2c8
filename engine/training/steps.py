"""One optimiser step of fine-tuning or pre-training, in micro-batches sized to a memory budget.

The batch's loss is normalised by its global count (computed before any forward), each micro-batch's share is
back-propagated on its own and the gradients add up, so the step is the one the whole batch would give (up to
BatchNorm, whose batch statistics are then those of the micro-batch: still thousands of pixels x dates).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..model import STCLNConfig
from .distributed import all_reduce_sum
from .masking import reconstruction_sums
from .precision import Precision
from .sampling import Batch

# Activations one optimiser step may hold for the backward. With the process's own ~300 MB (torch, the model, the
# scenes) a fine-tuning run stays near 1 GB whatever the number of dates.
ACTIVATION_BUDGET_BYTES = 640 * 2**20
# Bytes per stored fp32 value, measured: the backward's own temporaries and the allocator's slack roughly double
# the values autograd keeps (calibrated on lite and paper, T = 24 and 70, docs/BENCHMARKS_training.md).
BYTES_PER_VALUE = 8.0
# With recomputation the kept values are few and the backward's temporaries dominate: measured ~2x the estimate
# (lite, T = 48: 3 windows a micro-batch peaked at 1.5 GB against ~0.6 GB estimated).
RECOMPUTE_SLACK = 2.0
# Pixels of a recomputed chunk at T = 24; fewer for longer series so that a chunk's T x T attention weights stay
# the same size and memory grows linearly with the dates.
RECOMPUTE_CHUNK_PIXELS = 128


@dataclass(frozen=True)
class StepPlan:
    """Windows per forward/backward, and the temporal encoder's recomputation chunk (None = keep everything)."""

    micro_batch: int
    recompute_chunk: Optional[int]


def window_activation_bytes(config: STCLNConfig, dates: int, pixels: int, recompute: bool = False) -> float:
    """Estimated bytes that training keeps for the backward per window of ``pixels`` pixels and ``dates`` dates."""
    d, ff, heads = config.d_model, config.d_ff, config.n_heads
    spatial = 2 * sum(config.spatial_channels)  # conv and ReLU outputs per (date, pixel)
    # per token and layer: input, head-major Q K V, attention output, norms, feed-forward hidden (ReLU and
    # dropout), dropout masks, and the T x heads attention weights (softmax output, mask, dropped)
    layer = 8.5 * d + 2.25 * ff + 2.25 * heads * dates
    temporal = (2 * d + config.sta_channels) if recompute else config.n_layers * layer + 2 * d
    per_token = spatial + temporal + 2 * config.sta_channels
    sta = 3 * pixels  # one affinity row (scores, softmax) per pixel
    return BYTES_PER_VALUE * pixels * (dates * per_token + sta)


def recompute_peak_bytes(config: STCLNConfig, dates: int, chunk: int) -> float:
    """Bytes of one recomputed temporal-encoder chunk of ``chunk`` pixels (held only during its backward)."""
    d, ff, heads = config.d_model, config.d_ff, config.n_heads
    layer = 8.5 * d + 2.25 * ff + 2.25 * heads * dates
    return BYTES_PER_VALUE * chunk * dates * config.n_layers * layer


def plan_step(config: STCLNConfig, dates: int, pixels: int, batch: int, budget: float = ACTIVATION_BUDGET_BYTES,
              divisible: bool = True) -> StepPlan:
    """The largest micro-batch of windows of ``pixels`` pixels whose activations fit ``budget``; recomputation only
    when one window alone does not fit (it costs a third more temporal-encoder FLOPs). ``divisible=False``
    (data-parallel runs): the whole batch at once, recomputing when it does not fit."""
    full = window_activation_bytes(config, dates, pixels)
    if not divisible:
        return StepPlan(batch, None if batch * full <= budget else recompute_chunk(dates))
    if full <= budget:
        return StepPlan(max(1, min(batch, int(budget // full))), None)
    lean = RECOMPUTE_SLACK * window_activation_bytes(config, dates, pixels, recompute=True)
    chunk = recompute_chunk(dates)
    room = budget - RECOMPUTE_SLACK * recompute_peak_bytes(config, dates, chunk)
    return StepPlan(max(1, min(batch, int(room // lean))), chunk)


def recompute_chunk(dates: int) -> int:
    """Pixels per recomputed temporal-encoder chunk for a series of ``dates`` dates (``RECOMPUTE_CHUNK_PIXELS``)."""
    return max(16, RECOMPUTE_CHUNK_PIXELS * 24 // max(dates, 24))


def micro_slices(batch: int, micro: int) -> list[slice]:
    """Contiguous slices of ``batch`` items, ``micro`` at a time, as even as possible."""
    parts = max(1, math.ceil(batch / max(micro, 1)))
    base, extra = divmod(batch, parts)
    out, start = [], 0
    for i in range(parts):
        size = base + (1 if i < extra else 0)
        if size:
            out.append(slice(start, start + size))
        start += size
    return out


def _finish(optimiser: torch.optim.Optimizer, module: nn.Module, clip: float, precision: Precision) -> None:
    scaler = precision.scaler
    scaler.unscale_(optimiser)
    if clip and clip > 0:
        torch.nn.utils.clip_grad_norm_([p for p in module.parameters() if p.grad is not None], clip)
    scaler.step(optimiser)
    scaler.update()


def finetune_step(train_module: nn.Module, module: nn.Module, batch: Batch, class_weight: torch.Tensor,
                  optimiser: torch.optim.Optimizer, clip: float, precision: Precision, world_size: int,
                  micro_batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted cross-entropy over labelled pixels (label 0 ignored), backward, clipping, Adam step.

    Returns this rank's summed loss and the global weight sum (detached), for the epoch's mean loss.
    """
    target = batch.labels - 1  # label 0 (unlabelled) becomes -1, ignored
    pixel_weight = class_weight[target.clamp(min=0)] * (target >= 0)
    count = all_reduce_sum(pixel_weight.sum())
    scale = world_size / count.clamp(min=1.0)
    total = torch.zeros((), device=target.device)
    optimiser.zero_grad(set_to_none=True)
    for part in micro_slices(target.shape[0], micro_batch):
        with precision.autocast():
            logits = train_module(batch.x[part], batch.positions[part], batch.valid[part])
        loss_sum = F.cross_entropy(logits.float(), target[part], weight=class_weight, ignore_index=-1,
                                   reduction="sum")
        precision.scaler.scale(loss_sum * scale).backward()
        total += loss_sum.detach()
    _finish(optimiser, module, clip, precision)
    return total, count


def pretrain_step(train_module: nn.Module, module: nn.Module, batch: Batch, mask: torch.Tensor,
                  optimiser: torch.optim.Optimizer, clip: float, precision: Precision, world_size: int,
                  micro_batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """MSE over masked valid observations, backward, clipping, Adam step; returns this rank's summed squared
    error and the global count of such entries x bands (detached)."""
    count = all_reduce_sum((mask & batch.valid).sum().float() * batch.x.shape[2])
    scale = world_size / count.clamp(min=1.0)
    total = torch.zeros((), device=batch.x.device)
    optimiser.zero_grad(set_to_none=True)
    for part in micro_slices(batch.x.shape[0], micro_batch):
        with precision.autocast():
            prediction = train_module(batch.x[part], batch.positions[part], batch.valid[part], mask[part])
        sse, _ = reconstruction_sums(prediction, batch.x[part], mask[part], batch.valid[part])
        precision.scaler.scale(sse * scale).backward()
        total += sse.detach()
    _finish(optimiser, module, clip, precision)
    return total, count
