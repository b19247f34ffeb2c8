"""The model file (``.cropmodel``): weights plus everything needed to use them again.

A torch checkpoint holding ``{"cropmapper": HEADER_JSON, "state_dict": {...}}``. The header is a JSON string (format
version, architecture config, band names, normalisation statistics, date encoding, class table, kind, provenance,
split), so the file loads with ``torch.load(..., weights_only=True)`` and loading never executes code from it.
"""

from __future__ import annotations

import datetime as dt
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from .atomic import atomic_output
from .classes import ClassTable
from .errors import EngineError
from .model import STCLN, STCLNConfig, date_positions

FORMAT_VERSION = 1
MAGIC = "cropmapper"
KINDS = ("pretrained", "classifier")


@dataclass
class ModelBundle:
    """A trained (``classifier``) or pre-trained-only (``pretrained``, no classes) STCLN and its metadata."""

    config: STCLNConfig
    state_dict: dict[str, torch.Tensor]
    band_names: list[str]
    mean: list[float]
    std: list[float]
    date_encoding: dict[str, Any] = field(default_factory=lambda: {"mode": "date", "season_start": [1, 1]})
    classes: Optional[ClassTable] = None
    kind: str = "classifier"
    provenance: dict[str, Any] = field(default_factory=dict)
    split: Optional[dict[str, Any]] = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {self.kind!r}")
        n = self.config.in_channels
        if not (len(self.band_names) == len(self.mean) == len(self.std) == n):
            raise ValueError(
                f"{n} input bands but {len(self.band_names)} names, {len(self.mean)} means, {len(self.std)} stds"
            )
        if self.kind == "classifier" and (self.classes is None or len(self.classes) != self.config.num_classes):
            raise ValueError("a classifier needs a class table with config.num_classes classes")

    # -- header --------------------------------------------------------------------------------------------------------
    def header(self) -> dict[str, Any]:
        """The JSON-able header stored beside the weights (numpy values in provenance become plain numbers)."""
        header = {
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "config": self.config.to_dict(),
            "band_names": list(self.band_names),
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
            "date_encoding": {
                "mode": str(self.date_encoding.get("mode", "date")),
                "season_start": [int(v) for v in self.date_encoding.get("season_start", [1, 1])],
            },
            "classes": self.classes.to_list() if self.classes is not None else None,
            "provenance": self.provenance,
            "split": self.split,
        }
        return json.loads(json.dumps(header, default=_json_default))

    @property
    def num_classes(self) -> int:
        return 0 if self.classes is None else len(self.classes)

    # -- file ----------------------------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Writes the model file atomically (temporary name, renamed when complete)."""
        payload = {
            MAGIC: json.dumps(self.header()),
            "state_dict": {k: v.detach().cpu().contiguous() for k, v in self.state_dict.items()},
        }
        with atomic_output(path) as tmp:
            torch.save(payload, tmp)
        return Path(path)

    @staticmethod
    def load(path: str | Path) -> "ModelBundle":
        """Reads a model file with ``weights_only=True``; ``EngineError`` for anything that is not a usable one."""
        path = Path(path)
        if not path.exists():
            raise EngineError(f"The model file '{path}' does not exist. Check the path.")
        if not path.is_file():
            raise EngineError(f"'{path}' is a folder, not a CropMapper model file (.cropmodel).")
        if not zipfile.is_zipfile(path):
            raise EngineError(
                f"'{path}' is not a CropMapper model file, or it is damaged or incomplete (for example a copy that "
                "did not finish). Copy or train the model again."
            )
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # zip, pickle and storage errors all mean a damaged file
            raise EngineError(
                f"The model file '{path}' is damaged or incomplete ({type(exc).__name__}). "
                "Copy or train the model again."
            ) from None
        if not isinstance(payload, dict) or not isinstance(payload.get(MAGIC), str):
            raise EngineError(f"'{path}' is a PyTorch file but not a CropMapper model. Choose a .cropmodel file.")
        try:
            header = json.loads(payload[MAGIC])
        except ValueError:
            raise EngineError(f"The header of the model file '{path}' is damaged. Copy or train the model again.") from None
        version = header.get("format_version")
        if version != FORMAT_VERSION:
            advice = (
                "It was written by a newer CropMapper: update the plugin to read it."
                if isinstance(version, int) and version > FORMAT_VERSION
                else "Train the model again with this version of CropMapper."
            )
            raise EngineError(
                f"The model file '{path}' has format version {version}; this CropMapper reads version "
                f"{FORMAT_VERSION}. {advice}"
            )
        try:
            classes = ClassTable.from_list(header["classes"]) if header.get("classes") else None
            return ModelBundle(
                config=STCLNConfig.from_dict(header["config"]),
                state_dict=dict(payload["state_dict"]),
                band_names=list(header["band_names"]),
                mean=list(header["mean"]),
                std=list(header["std"]),
                date_encoding=dict(header["date_encoding"]),
                classes=classes,
                kind=header["kind"],
                provenance=dict(header.get("provenance") or {}),
                split=header.get("split"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise EngineError(
                f"The model file '{path}' is incomplete or inconsistent ({exc}). Copy or train the model again."
            ) from None

    # -- use -----------------------------------------------------------------------------------------------------------
    def check_bands(self, band_names: Sequence[str]) -> None:
        """``EngineError`` unless ``band_names`` are the model's bands, in its order (names compared ignoring case)."""
        found = [str(b) for b in band_names]
        expected = list(self.band_names)
        if len(found) != len(expected):
            raise EngineError(
                f"The model expects {len(expected)} bands ({', '.join(expected)}) but the images have "
                f"{len(found)} ({', '.join(found)}). Use images with the bands the model was trained on."
            )
        if [b.strip().lower() for b in found] != [b.strip().lower() for b in expected]:
            raise EngineError(
                f"The model expects the bands {', '.join(expected)} in this order, but the images have "
                f"{', '.join(found)}. Use images with the same bands in the same order, or set the band names."
            )

    def build_model(self, device: str | torch.device = "cpu") -> STCLN:
        """The network with these weights, in eval mode, on ``device``."""
        model = STCLN(self.config)
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as exc:
            raise EngineError(f"The weights in the model file do not fit its architecture: {exc}") from None
        return model.eval().to(device)

    def positions_for(self, dates: Sequence[dt.date]) -> np.ndarray:
        """Date positions ``(T,)`` float32 with the model's date encoding and season start."""
        enc = self.date_encoding
        return date_positions(dates, tuple(enc.get("season_start", (1, 1))), mode=enc.get("mode", "date"))

    def normalisation(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` as float32 arrays (C,)."""
        return np.asarray(self.mean, np.float32), np.asarray(self.std, np.float32)

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary for ``info``: kind, preset, bands, classes, parameters, training summary."""
        params = sum(int(v.numel()) for k, v in self.state_dict.items() if "running_" not in k and "num_batches" not in k)
        prov = self.provenance
        return {
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "preset": self.config.preset,
            "parameters": params,
            "bands": list(self.band_names),
            "classes": self.classes.names if self.classes is not None else [],
            "date_encoding": self.date_encoding,
            "epochs": len(prov.get("history", []) or []),
            "validation": {k: prov.get("validation", {}).get(k) for k in ("overall_accuracy", "miou")}
            if prov.get("validation")
            else None,
        }


def _json_default(value: Any) -> Any:
    """JSON for numpy scalars/arrays, dates and paths that may appear in provenance."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, (Path, tuple, set)):
        return str(value) if isinstance(value, Path) else list(value)
    raise TypeError(f"cannot store {type(value).__name__} in a model file header")
