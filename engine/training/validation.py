"""Predicting whole scenes in overlapping tiles and scoring them against their labels during fine-tuning."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from .metrics_light import confusion
from .precision import Precision
from .sampling import make_batch, tile_starts
from .scene import Scene


@torch.no_grad()
def predict_scene(
    model: nn.Module,
    scene: Scene,
    tile: int,
    device: torch.device,
    precision: Precision,
    batch_size: int = 8,
    only_labelled: bool = False,
) -> np.ndarray:
    """Class map ``(H, W)`` (1..K; 0 where not predicted) from softmax averaged over tiles overlapping by a quarter.

    Tiles are at most the scene's size, so nothing is padded. ``only_labelled`` skips tiles without labels.
    """
    _, _, h, w = scene.shape
    th, tw = min(tile, h), min(tile, w)
    overlap = tile // 4
    crops = [(0, y, x) for y in tile_starts(h, th, overlap) for x in tile_starts(w, tw, overlap)]
    if only_labelled and scene.labels is not None:
        crops = [c for c in crops if (scene.labels[c[1] : c[1] + th, c[2] : c[2] + tw] > 0).any()]
    probabilities: np.ndarray | None = None
    hits = np.zeros((h, w), np.float32)
    model.eval()
    for start in range(0, len(crops), batch_size):
        part = crops[start : start + batch_size]
        batch = make_batch([scene], part, (th, tw)).to(device)
        with precision.autocast():
            logits = model(batch.x, batch.positions, batch.valid)
        probs = torch.softmax(logits.float(), dim=1).cpu().numpy()
        if probabilities is None:
            probabilities = np.zeros((probs.shape[1], h, w), np.float32)
        for (_, y, x), p in zip(part, probs):
            probabilities[:, y : y + th, x : x + tw] += p
            hits[y : y + th, x : x + tw] += 1
    classes = np.zeros((h, w), np.int64)
    if probabilities is not None:
        covered = hits > 0
        classes[covered] = probabilities.argmax(0)[covered] + 1
    return classes


def scene_confusion(
    model: nn.Module,
    scenes: Sequence[Scene],
    num_classes: int,
    tile: int,
    device: torch.device,
    precision: Precision,
    batch_size: int = 8,
) -> np.ndarray:
    """Summed ``(K, K)`` confusion matrix of ``model`` over the labelled pixels of ``scenes``."""
    cm = np.zeros((num_classes, num_classes), np.int64)
    for scene in scenes:
        if scene.labels is None or not (scene.labels > 0).any():
            continue
        predicted = predict_scene(model, scene, tile, device, precision, batch_size, only_labelled=True)
        labelled = scene.labels > 0
        cm += confusion(scene.labels[labelled], predicted[labelled], num_classes)
    return cm
