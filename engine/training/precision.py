"""Mixed precision for training: autocast dtype and gradient scaler from ``precision`` and the device."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import ContextManager

import torch

from ..errors import EngineError

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
    """``auto``: bf16 on a CUDA GPU that supports it, else fp16 with a gradient scaler on CUDA, fp32 elsewhere."""
    name = (precision or "auto").lower()
    if name not in PRECISIONS:
        raise EngineError(f"Unknown precision '{precision}'. Use one of: {', '.join(PRECISIONS)}.")
    if name == "auto":
        if device.type == "cuda":
            name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            name = "fp32"
    if name == "fp16" and device.type != "cuda":
        raise EngineError("fp16 training needs a CUDA GPU. Use 'bf16' or 'fp32' on this device.")
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]
    scaler = torch.amp.GradScaler(device.type if device.type == "cuda" else "cpu", enabled=name == "fp16")
    return Precision(name, dtype, scaler, device.type)
