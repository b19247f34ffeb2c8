"""Spatiotemporal masked pre-training of the STCLN backbone on unlabelled time series."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import EngineError
from ..model import STCLN, STCLNConfig
from ..progress import CancelledCallback, ProgressCallback
from .checkpoint import resume_training, save_training
from .distributed import all_reduce_sum, barrier
from .allocator import training_allocator
from .masking import MASK_MODES, apply_mask_token, make_pretraining_mask
from .runtime import check_finite, log, setup_runtime, wrap_for_training
from .sampling import CropSampler, batch_dates, crop_size, default_steps, derive_seed, make_batch, rank_slice
from .scene import Scene
from .schedule import RunSchedule, agree
from .steps import plan_step, pretrain_step


@dataclass
class PretrainResult:
    """The pre-trained network's state dict (load it with ``STCLN.load_backbone``) and per-epoch history
    (``epoch``, ``loss``, ``seconds``). ``pretext_state`` holds the mask token and reconstruction head."""

    state_dict: dict[str, torch.Tensor]
    history: list[dict[str, Any]]
    pretext_state: dict[str, torch.Tensor] = field(default_factory=dict)
    schedule: dict[str, Any] = field(default_factory=dict)  # epochs and steps run (RunSchedule.summary)


class MaskedPretrainer(nn.Module):
    """STCLN's temporal features plus a learnable mask token (C values) and a linear D -> C reconstruction head."""

    def __init__(self, model: STCLN, config: STCLNConfig) -> None:
        super().__init__()
        self.model = model
        self.mask_token = nn.Parameter(torch.randn(config.in_channels) * 0.02)
        self.reconstruct = nn.Linear(config.d_model, config.in_channels)

    def forward(self, x: torch.Tensor, positions: torch.Tensor, valid: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Reconstructed bands ``(B, T, C, H, W)`` from inputs whose masked valid entries show the mask token."""
        shown = apply_mask_token(x, mask, valid, self.mask_token)
        features = self.model.temporal_features(shown, positions, valid)  # (B, T, D, H, W)
        return self.reconstruct(features.movedim(2, -1)).movedim(-1, 2)


def pretrain(
    scenes: Sequence[Scene],
    config: STCLNConfig,
    *,
    epochs: int = 10,
    mask_ratio: float = 0.4,
    mask_mode: str = "spatiotemporal",
    crop: int = 32,
    batch_size: int = 8,
    steps_per_epoch: Optional[int] = None,
    lr: float = 1e-4,
    clip: float = 5.0,
    seed: int = 0,
    device: str = "auto",
    precision: str = "auto",
    checkpoint: Optional[str] = None,
    resume: bool = False,
    init_state: Optional[dict[str, torch.Tensor]] = None,
    time_budget_s: Optional[float] = None,
    progress: Optional[ProgressCallback] = None,
    cancelled: Optional[CancelledCallback] = None,
) -> PretrainResult:
    """Masked pre-training (DESIGN.md): a Bernoulli (date, pixel) mask at ``mask_ratio``, masked valid inputs
    replaced by a learnable token, MSE on masked valid observations, Adam, gradient clipping, random crops.

    ``batch_size`` is the global batch: under torchrun every rank draws the same crops from (seed, epoch) and
    trains on its share, so the result matches one process. With ``checkpoint`` the state is written after every
    epoch (rank 0); ``time_budget_s`` runs fewer epochs / steps than asked where they would not fit (measured as
    the run goes; ``PretrainResult.schedule`` says what was chosen); ``resume`` continues from it and ends with
    the weights an uninterrupted run would have.
    """
    if not scenes:
        raise EngineError("Pre-training needs at least one region of imagery.")
    if mask_mode not in MASK_MODES:
        raise EngineError(f"Unknown mask mode '{mask_mode}'. Use one of: {', '.join(MASK_MODES)}.")
    if not 0.0 < mask_ratio < 1.0:
        raise EngineError(f"The mask ratio must be between 0 and 1 (exclusive), not {mask_ratio}.")
    _check_bands(scenes, config)
    rt = setup_runtime(device, precision, batch_size, progress, cancelled)
    reporter = rt.reporter

    torch.manual_seed(seed)
    model = STCLN(config)
    if init_state is not None:
        try:
            model.load_backbone(init_state)
        except RuntimeError as exc:
            raise EngineError(f"The starting model does not fit this configuration: {exc}") from None
    module = MaskedPretrainer(model, config)
    # The classification head and STA are not used by the pretext task.
    train_module = wrap_for_training(module, rt, find_unused=True)
    optimiser = torch.optim.Adam(module.parameters(), lr=lr)

    history: list[dict[str, Any]] = []
    start = 0
    state = resume_training(checkpoint if resume else None, "pretrain", config.to_dict(), module, optimiser,
                            rt.precision.scaler)
    if state is not None:
        history = list(state["history"])
        start = int(state["epoch"])
        log.info("Resuming pre-training after epoch %d of %d", start, epochs)

    sampler = CropSampler(scenes, crop)
    steps = steps_per_epoch or default_steps(scenes, crop, batch_size)
    share = rank_slice(batch_size, rt.dist.rank, rt.dist.world_size)
    schedule = RunSchedule(epochs, steps, time_budget_s, start)
    with training_allocator():  # keeps the step's buffers for re-use; handed back when training ends
        for epoch in range(start, epochs):
            if schedule.finished(epoch):
                break
            schedule.epoch_begins()
            began = time.perf_counter()
            rng = np.random.default_rng(derive_seed(seed, epoch))  # the same global batch on every rank
            torch.manual_seed(derive_seed(seed, epoch, rt.dist.rank, 1))  # dropout, per rank
            train_module.train()
            total = torch.zeros((), device=rt.device)
            count = torch.zeros((), device=rt.device)
            step = 0
            while step < schedule.steps:
                reporter.report((epoch + step / schedule.steps) / schedule.epochs,
                                f"Pre-training: epoch {epoch + 1}/{schedule.epochs}{schedule.left(epoch, step)}")
                crops = sampler.sample(rng, batch_size)
                dates = batch_dates(scenes, crops)
                size = crop_size(scenes, crops, crop)
                mask = make_pretraining_mask((batch_size, dates, *size), mask_ratio, mask_mode, rng)[share]
                batch = make_batch(scenes, crops[share], size, dates=dates).to(rt.device)
                plan = plan_step(config, dates, size[0] * size[1], batch.x.shape[0],
                                 divisible=not rt.dist.distributed)
                model.recompute_chunk = plan.recompute_chunk
                sse, n_global = pretrain_step(train_module, module, batch, mask.to(rt.device), optimiser, clip,
                                              rt.precision, rt.dist.world_size, plan.micro_batch)
                total += sse
                count += n_global
                step += 1
                schedule.step_done()
                if step == 1:
                    agree(schedule)
            epoch_loss = float(all_reduce_sum(total) / count.clamp(min=1.0))
            check_finite(epoch_loss, "pre-training")
            history.append({"epoch": epoch + 1, "loss": epoch_loss, "seconds": round(time.perf_counter() - began, 3)})
            schedule.epoch_done()
            agree(schedule)
            if rt.dist.is_main:
                log.info("pretrain epoch %d/%d loss %.5f (%.1f s)", epoch + 1, epochs, epoch_loss,
                         history[-1]["seconds"])
                if checkpoint:
                    save_training(checkpoint, "pretrain", config.to_dict(), epoch + 1, history, module, optimiser,
                                  rt.precision.scaler)
            barrier()
    if time_budget_s and rt.dist.is_main:
        log.info(schedule.summary()["note"])
    reporter.report(1.0, "Pre-training finished")
    return PretrainResult(
        state_dict={k: v.detach().cpu().clone() for k, v in module.model.state_dict().items()},
        history=history,
        pretext_state={
            k: v.detach().cpu().clone() for k, v in module.state_dict().items() if not k.startswith("model.")
        },
        schedule=schedule.summary(),
    )


def _check_bands(scenes: Sequence[Scene], config: STCLNConfig) -> None:
    for scene in scenes:
        if scene.shape[1] != config.in_channels:
            raise EngineError(
                f"A region has {scene.shape[1]} bands but the model expects {config.in_channels}. "
                "Use the same bands for every image of the series."
            )
