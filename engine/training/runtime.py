"""What pre-training and fine-tuning share: device, process group, precision, model wrapping, optimiser step."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from ..device import resolve_device
from ..errors import EngineError
from ..progress import CancelledCallback, ProgressCallback, Reporter
from .distributed import DistInfo, all_reduce_sum, init_distributed, launched_distributed, synchronise_batchnorm
from .precision import Precision, resolve_precision

log = logging.getLogger("engine.training")


@dataclass
class Runtime:
    """The device, this process's place in a torchrun job, the precision, and a reporter (rank 0 reports)."""

    device: torch.device
    dist: DistInfo
    precision: Precision
    reporter: Reporter


def setup_runtime(
    device: str,
    precision: str,
    batch_size: int,
    progress: Optional[ProgressCallback],
    cancelled: Optional[CancelledCallback],
) -> Runtime:
    """Resolves the device and precision and joins the torchrun group when launched by torchrun."""
    dev = resolve_device(device)
    info = DistInfo()
    if launched_distributed():
        info = init_distributed("nccl" if dev.type == "cuda" else "gloo")
        if dev.type == "cuda":
            dev = torch.device("cuda", info.local_rank)
    if batch_size < info.world_size:
        raise EngineError(
            f"The batch size ({batch_size}) is smaller than the number of processes ({info.world_size}). "
            "The batch size is the global batch shared by all processes: raise it or start fewer processes."
        )
    reporter = Reporter(progress if info.is_main else None, cancelled)
    return Runtime(dev, info, resolve_precision(precision, dev), reporter)


def wrap_for_training(module: nn.Module, rt: Runtime, find_unused: bool = False) -> nn.Module:
    """Moves ``module`` to the device; under torchrun, global-batch BatchNorm and DDP. Returns the module to call.

    Call before building the optimiser: synchronising BatchNorm replaces those layers' parameters.
    """
    if rt.dist.distributed:
        synchronise_batchnorm(module, rt.device)
    module.to(rt.device)
    if not rt.dist.distributed:
        return module
    ids = [rt.device.index] if rt.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused)


def global_normalised(local_sum: torch.Tensor, local_count: torch.Tensor, world_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss to back-propagate on this rank, and the global count.

    Each rank divides its own sum by the GLOBAL count and multiplies by the world size; DDP's gradient average then
    equals the gradient of (sum over all ranks) / (global count), exactly what one process computes on the batch.
    """
    count = all_reduce_sum(local_count)
    return local_sum / count.clamp(min=1.0) * world_size, count


def optimiser_step(loss: torch.Tensor, optimiser: torch.optim.Optimizer, module: nn.Module, clip: float, precision: Precision) -> None:
    """Backward, unscale (fp16), clip the gradient norm at ``clip``, step."""
    optimiser.zero_grad(set_to_none=True)
    scaler = precision.scaler
    scaler.scale(loss).backward()
    scaler.unscale_(optimiser)
    if clip and clip > 0:
        torch.nn.utils.clip_grad_norm_([p for p in module.parameters() if p.grad is not None], clip)
    scaler.step(optimiser)
    scaler.update()


def check_finite(value: float, what: str) -> None:
    """Stops a run whose loss became NaN or infinite, with advice instead of a silently broken model."""
    if value != value or value in (float("inf"), float("-inf")):
        raise EngineError(
            f"The {what} loss became {value}. Lower the learning rate, or use precision 'fp32', and try again."
        )
