"""Fine-tuning STCLN for crop classes: from a pre-trained backbone (STCLN_wp) or from scratch."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import EngineError
from ..model import STCLN, STCLNConfig
from ..progress import CancelledCallback, ProgressCallback
from .checkpoint import resume_training, save_training
from .distributed import all_reduce_sum, barrier
from .metrics_light import summarize
from .allocator import training_allocator
from .runtime import Runtime, check_finite, log, setup_runtime, wrap_for_training
from .sampling import (Batch, CropSampler, batch_dates, crop_size, default_finetune_steps, derive_seed, make_batch,
                       rank_slice)
from .scene import Scene
from .schedule import RunSchedule, agree
from .steps import StepPlan, finetune_step, plan_step
from .validation import ValidationSet


@dataclass
class FinetuneResult:
    """The kept state dict (best validation mIoU, or the last epoch without validation labels), the per-epoch
    history (``epoch``, ``loss``, ``val_oa``, ``val_miou``, ``seconds``), the kept epoch and its validation metrics."""

    state_dict: dict[str, torch.Tensor]
    history: list[dict[str, Any]]
    best_epoch: int
    val_metrics: dict[str, Any]
    class_weights: Optional[list[float]] = None
    schedule: dict[str, Any] = field(default_factory=dict)  # epochs and steps run (RunSchedule.summary)


# Real labels are very unequal (the Slovenia sample: 7601 forest pixels, 11 cultivated): uncapped inverse frequency
# would weigh a pixel of the rarest class 700 times one of the commonest, and short schedules then collapse onto it.
MAX_WEIGHT_RATIO = 20.0


def class_weights_for(scenes: Sequence[Scene], num_classes: int) -> np.ndarray:
    """Inverse-frequency weights of the labelled training pixels, ``total / (classes present * count)``; absent: 0.

    No weight exceeds ``MAX_WEIGHT_RATIO`` times the smallest one.
    """
    counts = np.zeros(num_classes, np.float64)
    for s in scenes:
        if s.labels is not None:
            counts += np.bincount(s.labels.ravel(), minlength=num_classes + 1)[1 : num_classes + 1]
    present = counts > 0
    weights = np.zeros(num_classes, np.float64)
    weights[present] = counts[present].sum() / (present.sum() * counts[present])
    weights[present] = np.minimum(weights[present], weights[present].min() * MAX_WEIGHT_RATIO)
    return weights.astype(np.float32)


def finetune(
    train_scenes: Sequence[Scene],
    val_scenes: Sequence[Scene],
    config: STCLNConfig,
    *,
    init_state: Optional[dict[str, torch.Tensor]] = None,
    epochs: int = 30,
    crop: int = 32,
    batch_size: int = 8,
    steps_per_epoch: Optional[int] = None,
    lr: float = 1e-3,
    clip: float = 5.0,
    class_weights: bool = True,
    patience: Optional[int] = None,
    seed: int = 0,
    device: str = "auto",
    precision: str = "auto",
    checkpoint: Optional[str] = None,
    resume: bool = False,
    time_budget_s: Optional[float] = None,
    progress: Optional[ProgressCallback] = None,
    cancelled: Optional[CancelledCallback] = None,
    model_factory: Optional[Callable[[STCLNConfig], nn.Module]] = None,
) -> FinetuneResult:
    """Trains the classifier with cross-entropy on labelled pixels (label 0 ignored) of crops drawn around them.

    ``init_state``: a pre-trained backbone (its head is not loaded), or None to start from scratch. After every
    epoch the val scenes are predicted in tiles and scored (OA, mIoU); the state with the best mIoU is kept, and
    ``patience`` stops after that many epochs without improvement. ``batch_size`` is the global batch (torchrun).
    ``time_budget_s``: fewer epochs (and steps per epoch) than asked where they would not fit in that many
    seconds, measured as the run goes (``FinetuneResult.schedule`` says what was chosen).
    ``model_factory`` builds another network from ``config`` (default ``STCLN``), e.g. a baseline for a study; it
    must have ``forward(x, positions, valid) -> logits (B, K, H, W)`` (and ``load_backbone`` if ``init_state``).
    """
    k = config.num_classes
    _check_scenes(train_scenes, val_scenes, config)
    rt = setup_runtime(device, precision, batch_size, progress, cancelled)
    reporter = rt.reporter

    torch.manual_seed(seed)
    model = (model_factory or STCLN)(config)
    if init_state is not None:
        try:
            model.load_backbone(init_state)
        except RuntimeError as exc:
            raise EngineError(
                f"The pre-trained model does not fit this configuration (preset or bands differ): {exc}"
            ) from None
    train_module = wrap_for_training(model, rt)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    weights = class_weights_for(train_scenes, k) if class_weights else np.ones(k, np.float32)
    weight_t = torch.from_numpy(weights).to(rt.device)

    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"state": None, "epoch": 0, "miou": -1.0, "metrics": {}, "stale": 0}
    start = 0
    state = resume_training(checkpoint if resume else None, "finetune", config.to_dict(), model, optimiser,
                            rt.precision.scaler)
    if state is not None:
        history, best, start = list(state["history"]), dict(state["best"]), int(state["epoch"])
        log.info("Resuming fine-tuning after epoch %d of %d", start, epochs)

    has_val = any(s.labelled_pixels for s in val_scenes)
    validation = ValidationSet(list(val_scenes)[rt.dist.rank :: rt.dist.world_size], crop, batch_size, seed=seed)
    sampler = CropSampler(train_scenes, crop, labelled=True)
    steps = steps_per_epoch or default_finetune_steps(train_scenes, crop, batch_size)
    share = rank_slice(batch_size, rt.dist.rank, rt.dist.world_size)
    schedule = RunSchedule(epochs, steps, time_budget_s, start)
    with training_allocator():  # keeps the step's buffers for re-use; handed back when training ends
        for epoch in range(start, epochs):
            if schedule.finished(epoch):
                break
            schedule.epoch_begins()
            if patience is not None and has_val and best["stale"] >= patience:
                break
            began = time.perf_counter()
            rng = np.random.default_rng(derive_seed(seed, epoch))
            torch.manual_seed(derive_seed(seed, epoch, rt.dist.rank, 1))
            train_module.train()
            total = torch.zeros((), device=rt.device)
            count = torch.zeros((), device=rt.device)
            step = 0
            while step < schedule.steps:
                reporter.report((epoch + step / schedule.steps) / schedule.epochs,
                                f"Training: epoch {epoch + 1}/{schedule.epochs}{schedule.left(epoch, step)}")
                crops = sampler.sample(rng, batch_size)
                size = crop_size(train_scenes, crops, crop)
                batch = make_batch(
                    train_scenes, crops[share], size, with_labels=True, dates=batch_dates(train_scenes, crops)
                ).to(rt.device)
                plan = _apply_plan(model, config, batch, rt)
                loss_sum, n_global = finetune_step(train_module, model, batch, weight_t, optimiser, clip,
                                                   rt.precision, rt.dist.world_size, plan.micro_batch)
                total += loss_sum
                count += n_global
                step += 1
                schedule.step_done()
                if step == 1:
                    agree(schedule)
            epoch_loss = float(all_reduce_sum(total) / count.clamp(min=1e-12))
            check_finite(epoch_loss, "training")

            record: dict[str, Any] = {"epoch": epoch + 1, "loss": epoch_loss, "val_oa": None, "val_miou": None}
            if has_val:
                reporter.report((epoch + 1) / schedule.epochs, f"Validating: epoch {epoch + 1}/{schedule.epochs}")
                cm = validation.confusion(model, k, rt.device, rt.precision)
                metrics = summarize(all_reduce_sum(torch.from_numpy(cm).to(rt.device)).cpu().numpy())
                record["val_oa"], record["val_miou"] = metrics["overall_accuracy"], metrics["miou"]
                improved = metrics["miou"] > best["miou"]
            else:
                metrics, improved = {}, True
            if improved:
                best = {
                    "state": {n: v.detach().cpu().clone() for n, v in model.state_dict().items()},
                    "epoch": epoch + 1,
                    "miou": metrics.get("miou", -1.0),
                    "metrics": metrics,
                    "stale": 0,
                }
            else:
                best["stale"] += 1
            record["seconds"] = round(time.perf_counter() - began, 3)
            history.append(record)
            schedule.epoch_done()
            agree(schedule)
            if rt.dist.is_main:
                log.info(
                    "train epoch %d/%d loss %.4f val OA %s mIoU %s (%.1f s)",
                    epoch + 1, epochs, epoch_loss, record["val_oa"], record["val_miou"], record["seconds"],
                )
                if checkpoint:
                    save_training(checkpoint, "finetune", config.to_dict(), epoch + 1, history, model, optimiser,
                                  rt.precision.scaler, best=best)
            barrier()
    if time_budget_s and rt.dist.is_main:
        log.info(schedule.summary()["note"])
    reporter.report(1.0, "Training finished")
    state = best["state"] or {n: v.detach().cpu().clone() for n, v in model.state_dict().items()}
    return FinetuneResult(
        state_dict=state,
        history=history,
        best_epoch=int(best["epoch"]),
        val_metrics=dict(best["metrics"]),
        class_weights=[float(w) for w in weights] if class_weights else None,
        schedule=schedule.summary(),
    )


def _apply_plan(model: nn.Module, config: STCLNConfig, batch: Batch, rt: Runtime) -> StepPlan:
    """Sizes this step's micro-batches (and recomputation) to the memory budget for the batch's dates."""
    b, t, _, h, w = batch.x.shape
    plan = plan_step(config, t, h * w, b, divisible=not rt.dist.distributed)
    if hasattr(model, "recompute_chunk"):
        model.recompute_chunk = plan.recompute_chunk
    return plan


def _check_scenes(train_scenes: Sequence[Scene], val_scenes: Sequence[Scene], config: STCLNConfig) -> None:
    if not any(s.labelled_pixels for s in train_scenes):
        raise EngineError(
            "No labelled training pixels: no field polygon of the training split covers the imagery. "
            "Check that the fields overlap the images and that the class field is filled."
        )
    for s in list(train_scenes) + list(val_scenes):
        if s.shape[1] != config.in_channels:
            raise EngineError(
                f"A region has {s.shape[1]} bands but the model expects {config.in_channels}. "
                "Use the same bands for every image of the series."
            )
        if s.labels is not None and s.labels.max(initial=0) > config.num_classes:
            raise EngineError(
                f"A label value ({int(s.labels.max())}) is above the number of classes ({config.num_classes})."
            )
