"""The fast inference path: reduced precision where the hardware has it, channels-last convolutions, chunking."""

from __future__ import annotations

import contextlib
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, ContextManager

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# Temporal-encoder chunk on CPUs, in elements of its widest activation (the feed-forward hidden layer) at T=24:
# small enough that a chunk's activations stay in cache, large enough for efficient GEMMs (paper: 128 pixels;
# 96 to 256 measure alike).
CPU_CHUNK_ELEMENTS = 128 * 24 * 1024


def cpu_pixel_chunk(d_model: int, d_ff: int) -> int:
    """Pixels per temporal-encoder chunk on CPUs for a model of this width."""
    return max(16, CPU_CHUNK_ELEMENTS // (24 * max(d_ff, 3 * d_model)))


@functools.lru_cache(maxsize=None)
def cpu_has_bf16() -> bool:
    """True when this CPU computes bf16 natively (AVX-512 BF16 or AMX), so bf16 autocast is a speed-up.

    Read from /proc/cpuinfo (torch's own mkldnn probe also answers True for emulated bf16); elsewhere False.
    """
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
        return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        return False


def resolve_precision(device: torch.device | str, precision: str = "auto") -> torch.dtype:
    """The compute dtype for ``precision`` on ``device``; ``auto`` picks bf16 (fp16 on CUDA without bf16) where it
    runs natively, else fp32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    device = torch.device(device)
    if precision == "fp32":
        return torch.float32
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_bf16():
        return torch.bfloat16
    return torch.float32


def inference_context(device: torch.device | str, precision: str = "auto") -> ContextManager:
    """A context manager running the model in ``precision`` on ``device`` (autocast; nothing for fp32)."""
    device = torch.device(device)
    dtype = resolve_precision(device, precision)
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def prepare_for_inference(model: nn.Module, device: torch.device | str, precision: str = "auto") -> nn.Module:
    """Readies ``model`` for fast prediction on ``device`` and returns it (for inference only: do not train or save
    it afterwards).

    Eval mode, BatchNorms folded into the convolutions before them, channels-last convolution weights; on CPUs
    also chunked temporal encoding, the windows of a batch spread over the cores (one thread each, see
    ``split_over_threads``), and, where ``precision`` resolves to bf16, weights converted to bf16 (autocast re-casts
    them on every call under ``inference_mode``; the model casts its input to its own dtype and returns fp32
    logits). Use ``inference_context`` around calls.
    """
    device = torch.device(device)
    model = fold_batch_norms(model.to(device).eval()).to(memory_format=torch.channels_last)
    if device.type == "cpu":
        if hasattr(model, "pixel_chunk"):
            model.pixel_chunk = cpu_pixel_chunk(model.config.d_model, model.config.d_ff)
        if hasattr(model, "cpu_workers"):
            model.cpu_workers = torch.get_num_threads()
        if resolve_precision(device, precision) == torch.bfloat16:
            model = model.to(torch.bfloat16)
        _keep_freed_memory()
    return model


def fold_batch_norms(model: nn.Module) -> nn.Module:
    """Folds every eval-mode ``BatchNorm2d`` that directly follows a ``Conv2d`` in an ``nn.Sequential`` into that
    convolution (which gains a bias) and replaces it by ``nn.Identity``: one pass over the activations less, same
    results up to rounding. Returns ``model`` (changed in place; for inference only)."""
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        for i in range(len(module) - 1):
            conv, norm = module[i], module[i + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d) and not norm.training:
                module[i] = fuse_conv_bn_eval(conv, norm)
                module[i + 1] = nn.Identity()
    return model


@functools.lru_cache(maxsize=None)
def _keep_freed_memory() -> None:
    """Asks glibc to keep freed buffers (up to 32 MiB each) for re-use instead of returning them to the system:
    otherwise every fresh activation buffer is page-faulted in again, which costs CPU inference ~10 %.

    Threads created from now on share one malloc arena. Kept memory is kept per arena, and by default every
    thread gets its own: buffers made in one thread and freed in another (a raster block read in the background,
    activations of the worker threads) then stay in their maker's arena, so the process holds the sum of every
    thread's high-water mark, fragmented further with every block: predict_raster's peak grew by ~25 % from a
    512^2 to a 4096^2 raster. With one arena it stays flat (docs/BENCHMARKS_memory.md), at no measurable cost in
    speed here (small allocations are served by glibc's per-thread cache, without the arena lock).
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 * 1024 * 1024)  # M_MMAP_THRESHOLD: the most glibc allows
        libc.mallopt(-1, 1024 * 1024 * 1024)  # M_TRIM_THRESHOLD
        libc.mallopt(-8, 1)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass  # not glibc (Windows, macOS, musl): nothing to tune


_POOLS: dict[int, ThreadPoolExecutor] = {}


def split_over_threads(fn: Callable[..., torch.Tensor], workers: int, *tensors: torch.Tensor) -> torch.Tensor:
    """``fn(*tensors)`` run one window (batch item) at a time, spread over ``workers`` threads of one torch thread
    each, joined along the batch axis (CPU inference only; no autograd).

    Why: the temporal encoder is hundreds of small operations per window; run with several OpenMP threads each one
    ends in a barrier, which costs ~10-20 % on a quiet machine and several-fold on a busy one. Whole windows per
    thread need no synchronisation at all. One window at a time keeps every activation small: several windows in
    one call made buffers above glibc's mmap threshold (32 MiB), page-faulted in afresh on every call (~100,000
    faults per batch of 8, ~5 % of the time). The caller's autocast and inference-mode state is carried over.
    """
    parts = list(zip(*(t.tensor_split(t.shape[0]) for t in tensors)))
    if len(parts) < 2:
        return fn(*tensors)
    if workers < 2:
        return torch.cat([fn(*part) for part in parts])
    autocast = torch.is_autocast_enabled("cpu")
    dtype = torch.get_autocast_dtype("cpu")
    inference = torch.is_inference_mode_enabled()
    main_threads = torch.get_num_threads()

    def job(args: tuple[torch.Tensor, ...]) -> torch.Tensor:
        torch.set_num_threads(1)
        with torch.inference_mode(inference), torch.no_grad(), torch.autocast("cpu", dtype=dtype, enabled=autocast):
            return fn(*args)

    pool = _POOLS.get(workers)
    if pool is None:
        pool = _POOLS[workers] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="stcln-cpu")
    try:
        outputs = list(pool.map(job, parts))
    finally:
        torch.set_num_threads(main_threads)  # the workers' setting is process-wide for some libraries (MKL)
    return torch.cat(outputs)


@functools.lru_cache(maxsize=None)
def _onednn_linear_works(dtype: torch.dtype = torch.float32) -> bool:
    """Whether torch's oneDNN linear (with fused ReLU) exists in this build and computes what ``F.linear`` does in
    ``dtype``. bf16 is asked separately: oneDNN has no bf16 inner product on CPUs without AVX-512 (AVX2 only)."""
    try:
        op = torch.ops.mkldnn._linear_pointwise
        x, w, b = (t.to(dtype) for t in (torch.randn(5, 8), torch.randn(3, 8), torch.randn(3)))
        # the answer is cached: it must not depend on the caller's autocast (which would make F.linear bf16)
        with torch.autocast("cpu", enabled=False):
            expected = torch.relu(F.linear(x.float(), w.float(), b.float()))
            tolerance = 1e-4 if dtype == torch.float32 else 0.1
            return bool(torch.allclose(op(x, w, b, "relu", [], "").float(), expected, atol=tolerance))
    except (AttributeError, RuntimeError):
        return False


def linear(layer: nn.Linear, x: torch.Tensor, relu: bool = False) -> torch.Tensor:
    """``layer(x)`` (then ReLU if ``relu``); CPU inference in the weights' dtype goes through oneDNN directly.

    Why: for fp32, torch's CPU linear calls MKL, which reaches ~110 GFLOP/s per core on this project's AMD CPU
    against ~245 through oneDNN; for bf16 both are oneDNN, and the fused ReLU saves a pass over the widest
    activation.
    """
    if (x.device.type == "cpu" and not torch.is_grad_enabled() and x.dtype == layer.weight.dtype
            and x.dtype in (torch.float32, torch.bfloat16) and _onednn_linear_works(x.dtype)):
        return torch.ops.mkldnn._linear_pointwise(x, layer.weight, layer.bias, "relu" if relu else "none", [], "")
    y = layer(x)
    return F.relu(y, inplace=True) if relu else y
