"""Baselines for the accuracy study: a pixel-wise Random Forest and a per-pixel temporal Transformer.

The Random Forest sees what dzetsaka and the Semi-Automatic Classification Plugin give it: each pixel's time series
as a feature vector (here the normalised values, invalid steps 0 as the engine fills them, plus the valid mask).
The per-pixel Transformer is STCLN without the spatial branch: a 1x1 (per-pixel) embedding instead of the 3x3
convolutions, no STA, the same temporal encoder, max-pool and head, trained by the same ``finetune`` loop.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from engine.bundle import ModelBundle
from engine.evaluation import confusion_matrix
from engine.model import STCLN, STCLNConfig

# A small grid chosen on the validation fields (the same care as the networks' best-epoch choice).
RF_GRID: dict[str, Sequence[Any]] = {"max_features": ("sqrt", 0.3), "min_samples_leaf": (1, 5)}
RF_TREES = 200


def pixel_features(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per-pixel features ``(H*W, T*C + T)`` float32 from a normalised series ``x (T, C, H, W)`` (invalid = 0)
    and ``valid (T, H, W)``: the values of every date and band, then the valid flag of every date."""
    t, c, h, w = x.shape
    values = np.where(valid[:, None], x, 0.0).reshape(t * c, h * w).T
    flags = valid.reshape(t, h * w).T.astype(np.float32)
    return np.concatenate([values, flags], axis=1).astype(np.float32)


def miou_of(reference: np.ndarray, predicted: np.ndarray, num_classes: int) -> float:
    """Mean IoU over the classes present in ``reference`` (values 1..K)."""
    cm = confusion_matrix(reference, predicted, num_classes).astype(np.float64)
    present = cm.sum(axis=1) > 0
    union = cm.sum(axis=0) + cm.sum(axis=1) - np.diag(cm)
    iou = np.divide(np.diag(cm), union, out=np.zeros(num_classes), where=union > 0)
    return float(iou[present].mean()) if present.any() else 0.0


@dataclass
class ForestResult:
    model: Any
    params: dict[str, Any]
    val_miou: float
    tried: list[dict[str, Any]]


def fit_random_forest(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    num_classes: int,
    seed: int = 0,
    grid: dict[str, Sequence[Any]] = RF_GRID,
    trees: int = RF_TREES,
    n_jobs: int = 2,
) -> ForestResult:
    """Fits one balanced Random Forest per grid point, keeps the best validation mIoU (ties: the first)."""
    from sklearn.ensemble import RandomForestClassifier

    best: ForestResult | None = None
    tried = []
    names = list(grid)
    for values in itertools.product(*(grid[n] for n in names)):
        params = dict(zip(names, values))
        forest = RandomForestClassifier(
            n_estimators=trees, class_weight="balanced", random_state=seed, n_jobs=n_jobs, **params
        )
        forest.fit(train_x, train_y)
        score = miou_of(val_y, forest.predict(val_x), num_classes) if len(val_y) else 0.0
        tried.append({**params, "val_miou": score})
        if best is None or score > best.val_miou:
            best = ForestResult(forest, params, score, tried)
    assert best is not None
    best.tried = tried
    return best


class PixelTransformer(STCLN):
    """STCLN's temporal encoder on each pixel alone: a per-pixel (1x1) MLP embedding, no spatial context, no STA.

    Same ``forward(x, positions, valid) -> logits (B, K, H, W)``; built from the same config (``use_sta`` ignored).
    """

    def __init__(self, config: STCLNConfig) -> None:
        super().__init__(STCLNConfig.from_dict({**config.to_dict(), "use_sta": False}))
        hidden = self.config.spatial_channels[0]
        self.spatial = nn.Sequential(
            nn.Conv2d(config.in_channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, config.d_model, 1)
        )


def make_pixel_transformer(config: STCLNConfig) -> nn.Module:
    """The ``model_factory`` for ``engine.training.finetune``."""
    return PixelTransformer(config)


class PixelTransformerBundle(ModelBundle):
    """A model bundle whose network is a ``PixelTransformer`` (so ``predict_array`` maps with it)."""

    def build_model(self, device: str | torch.device = "cpu") -> STCLN:
        model = PixelTransformer(self.config)
        model.load_state_dict(self.state_dict)
        return model.eval().to(device)
