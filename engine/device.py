"""Choosing the torch device from a user string: auto, cpu, cuda, cuda:N, mps."""

from __future__ import annotations

import torch

from .errors import EngineError


def resolve_device(name: str = "auto") -> torch.device:
    """Returns the device named by ``name``; ``auto`` picks CUDA, then MPS, then CPU."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            # With an index: torch.cuda.set_device and memory queries refuse a bare "cuda".
            return torch.device("cuda", torch.cuda.current_device())
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
            raise EngineError("Device 'mps' was requested but Apple Metal is not available here. Use 'auto' or 'cpu'.")
        return torch.device("mps")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise EngineError(
                f"Device '{name}' was requested but no CUDA GPU is available to PyTorch. Use 'auto' or 'cpu', "
                "or install a CUDA build of PyTorch."
            )
        index = torch.cuda.current_device() if name == "cuda" else _cuda_index(name)
        if index >= torch.cuda.device_count():
            raise EngineError(
                f"Device '{name}' does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)."
            )
        return torch.device("cuda", index)
    raise EngineError(f"Unknown device '{name}'. Use one of: auto, cpu, cuda, cuda:N, mps.")


def _cuda_index(name: str) -> int:
    try:
        return int(name.split(":", 1)[1])
    except ValueError:
        raise EngineError(f"Unknown device '{name}'. Write a CUDA device as cuda:0, cuda:1, ...") from None


def describe_devices() -> str:
    """A one-line description of the devices PyTorch can use, for the dialog and ``info``."""
    parts = ["CPU"]
    if torch.cuda.is_available():
        parts += [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        parts.append("mps")
    return ", ".join(parts)
