"""Process-group helpers for torchrun: initialise, barrier, mean all-reduce, batch-norm synchronisation."""

from __future__ import annotations

import atexit
import os
import time
from dataclasses import dataclass
from typing import Optional

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the job; ``world_size == 1`` when not distributed."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_distributed() -> bool:
    """True when started by torchrun (or an equivalent launcher) with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_distributed() -> bool:
    """True when a process group of more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def init_distributed(backend: Optional[str] = None) -> DistInfo:
    """Joins the torchrun process group when ``WORLD_SIZE > 1`` (NCCL with CUDA, else gloo); idempotent.

    Without torchrun it does nothing and returns rank 0 of 1.
    """
    if not launched_distributed():
        return DistInfo()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        if backend is None:
            backend = "nccl" if torch.cuda.is_available() and dist.is_nccl_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
        atexit.register(_destroy_at_exit)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank)


# How long a rank waits at exit for gloo's worker threads to let go of their last collectives.
EXIT_GRACE_SECONDS = 0.25


def _destroy_at_exit() -> None:
    """Leaves the process group while Python still runs, then waits a moment with the GIL released.

    Why: a gloo worker thread releases a finished collective's tensors just after the caller's ``wait`` returns,
    and releasing a tensor that Python has seen takes the GIL. If the interpreter is already finalising by then,
    the thread is killed mid-destructor and the process aborts ("terminate called without an active exception",
    seen in about 1 of 15 two-rank runs on a loaded 2-core machine; pytorch/pytorch#179291 describes it). The sleep
    lets such a thread finish first.
    """
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
        GlobalBatchNorm2d.group = None
        time.sleep(EXIT_GRACE_SECONDS)


def current() -> DistInfo:
    """The ``DistInfo`` of the initialised group, or rank 0 of 1."""
    if not is_distributed():
        return DistInfo()
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def is_main_process() -> bool:
    """True on rank 0 of a torchrun job, or when not distributed: the process that writes files and logs."""
    if is_distributed():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0



def barrier() -> None:
    """Waits for every rank; a no-op when not distributed."""
    if is_distributed():
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum over ranks of ``tensor`` (a new tensor; no gradient)."""
    out = tensor.detach().clone()
    if is_distributed():
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """The mean over ranks of ``tensor`` (a new tensor; no gradient)."""
    out = all_reduce_sum(tensor)
    if is_distributed():
        out /= dist.get_world_size()
    return out


def backend_device(device: torch.device) -> torch.device:
    """The device collectives need for this backend (CUDA tensors for NCCL, CPU for gloo)."""
    if is_distributed() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


class _SumOverRanks(torch.autograd.Function):
    """All-reduce (sum) with a gradient: the gradient of a sum over ranks is the sum of the ranks' gradients."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, group) -> torch.Tensor:  # type: ignore[override]
        ctx.group = group
        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out, op=dist.ReduceOp.SUM, group=group)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return _SumOverRanks.apply(grad, ctx.group), None


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics cover the global batch of all ranks, on CPU (gloo) as well.

    ``torch.nn.SyncBatchNorm`` runs only on GPUs; this one all-reduces the sums with autograd so the gradient is
    that of the global batch, and a data-parallel run computes what one process would on the whole batch.
    """

    group = None  # a dedicated process group, so these collectives never interleave with DDP's buckets

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_distributed()):
            return super().forward(x)
        xf = x.float()
        n_local = torch.tensor([xf.numel() / xf.shape[1]], dtype=torch.float32, device=x.device)
        sums = _SumOverRanks.apply(torch.cat([xf.sum((0, 2, 3)), n_local]), self.group)
        count = sums[-1]
        mean = sums[:-1] / count
        centred = xf - mean.view(1, -1, 1, 1)
        var = _SumOverRanks.apply(centred.square().sum((0, 2, 3)), self.group) / count
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                momentum = 0.1 if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - momentum).add_(mean.detach() * momentum)
                unbiased = var.detach() * count / (count - 1).clamp(min=1)
                self.running_var.mul_(1 - momentum).add_(unbiased * momentum)
                self.num_batches_tracked.add_(1)
        out = centred * torch.rsqrt(var + self.eps).view(1, -1, 1, 1)
        if self.affine:
            out = out * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return out.to(x.dtype)


def synchronise_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Replaces BatchNorm2d layers by global-batch ones: ``SyncBatchNorm`` on CUDA, ``GlobalBatchNorm2d`` on CPU.

    The state dict keys and values are unchanged, so checkpoints and model files do not depend on it.
    """
    if not is_distributed():
        return module
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if GlobalBatchNorm2d.group is None:
        GlobalBatchNorm2d.group = dist.new_group(backend="gloo")
    return _replace_batchnorm(module)


def _replace_batchnorm(module: nn.Module) -> nn.Module:
    if type(module) is nn.BatchNorm2d:
        new = GlobalBatchNorm2d(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats,
            device=module.weight.device if module.affine else None,
        )
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        return new
    for name, child in module.named_children():
        setattr(module, name, _replace_batchnorm(child))
    return module
