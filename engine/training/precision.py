"""Mixed precision for training: autocast dtype and gradient scaler from ``precision`` and the device."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import ContextManager

import torch

from ..errors import EngineError
from ..model.fast import cpu_has_bf16

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class Precision:
    """The resolved precision: ``name`` (fp32, bf16, fp16), autocast dtype (None = off) and a grad scaler."""

    name: str
    dtype: torch.dtype | None
    scaler: torch.amp.GradScaler
    device_type: str

    def autocast(self) -> ContextManager:
        """The autocast context for forward passes (a no-op for fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)


def resolve_precision(precision: str, device: torch.device) -> Precision:
    """``auto``: bf16 on a CUDA GPU that supports it, else fp16 with a gradient scaler on CUDA; bf16 on a CPU that
    computes it natively (AVX-512 BF16 or AMX: about twice its fp32 rate), fp32 elsewhere (emulated bf16 is
    several times slower). Weights and optimiser state stay fp32 (autocast)."""
    name = (precision or "auto").lower()
    if name not in PRECISIONS:
        raise EngineError(f"Unknown precision '{precision}'. Use one of: {', '.join(PRECISIONS)}.")
    if name == "auto":
        if device.type == "cuda":
            name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        elif device.type == "cpu" and cpu_has_bf16():
            name = "bf16"
        else:
            name = "fp32"
    if name == "fp16" and device.type != "cuda":
        raise EngineError("fp16 training needs a CUDA GPU. Use 'bf16' or 'fp32' on this device.")
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]
    scaler = torch.amp.GradScaler(device.type if device.type == "cuda" else "cpu", enabled=name == "fp16")
    return Precision(name, dtype, scaler, device.type)
