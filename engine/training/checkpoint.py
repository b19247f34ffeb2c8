"""Training checkpoints: everything needed to continue a run, written atomically, loaded without executing code."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from ..atomic import atomic_output
from ..errors import EngineError

CHECKPOINT_FORMAT = "cropmapper-training-checkpoint"
CHECKPOINT_VERSION = 1


def rng_states() -> dict[str, Any]:
    """Python, numpy and torch RNG states as plain values and tensors (loadable with ``weights_only``)."""
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    states: dict[str, Any] = {
        "python": json.dumps(random.getstate()),
        "numpy": {
            "name": str(np_name),
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    """Inverse of ``rng_states``."""
    py = json.loads(states["python"])
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = states["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(path: str | Path, kind: str, config: dict, state: dict[str, Any]) -> None:
    """Writes ``state`` (model, optimizer, epoch, history, ...) with the run's ``kind`` and model ``config``."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "kind": kind,
        "config": json.dumps(config, sort_keys=True),
        "rng": rng_states(),
        **state,
    }
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path, kind: str, config: dict) -> Optional[dict[str, Any]]:
    """The checkpoint at ``path``, or None when there is none; ``EngineError`` when it belongs to another run."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for damaged files
        raise EngineError(
            f"The training checkpoint '{path}' is damaged or incomplete ({type(exc).__name__}). "
            "Delete it, or start without resume."
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise EngineError(f"'{path}' is not a CropMapper training checkpoint. Choose another checkpoint file.")
    if payload.get("kind") != kind:
        raise EngineError(
            f"The checkpoint '{path}' belongs to a {payload.get('kind')} run, not {kind}. "
            "Choose another checkpoint file, or start without resume."
        )
    if json.loads(payload["config"]) != json.loads(json.dumps(config, sort_keys=True)):
        raise EngineError(
            f"The checkpoint '{path}' was written for another model configuration (preset, bands or classes). "
            "Resume with the same settings, or start without resume."
        )
    return payload


def resume_training(path: Optional[str], kind: str, config: dict, module: torch.nn.Module,
                    optimiser: torch.optim.Optimizer, scaler) -> Optional[dict[str, Any]]:
    """Restores module, optimiser, gradient scaler and RNG states from the checkpoint at ``path``.

    Returns the checkpoint (for the caller's own entries: ``history``, ``epoch``, ...), or None when there is none.
    """
    state = load_checkpoint(path, kind, config) if path else None
    if state is None:
        return None
    module.load_state_dict(state["model"])
    optimiser.load_state_dict(state["optimizer"])
    if state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    restore_rng_states(state["rng"])
    return state


def save_training(path: str, kind: str, config: dict, epoch: int, history: list, module: torch.nn.Module,
                  optimiser: torch.optim.Optimizer, scaler, **extra: Any) -> None:
    """The counterpart of ``resume_training``: module, optimiser, scaler and RNG states after ``epoch`` epochs."""
    save_checkpoint(path, kind, config, {
        "epoch": epoch,
        "history": history,
        "model": module.state_dict(),
        "optimizer": optimiser.state_dict(),
        "scaler": scaler.state_dict() if scaler.is_enabled() else None,
        **extra,
    })
