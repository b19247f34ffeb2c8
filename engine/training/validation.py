"""Predicting scenes in overlapping tiles and scoring them against their labels during fine-tuning."""

from __future__ import annotations

import copy
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..model.fast import inference_context, prepare_for_inference
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


# Validation tiles kept per run: enough pixels for a stable mIoU (each tile holds up to 1,024 labelled pixels),
# few enough that validating stays a small part of an epoch however many fields a large scene has.
MAX_VALIDATION_TILES = 48


class ValidationSet:
    """The labelled tiles of the validation scenes, cut once and scored after every epoch with the inference path
    (``prepare_for_inference`` on a copy of the model: folded BatchNorms, chunked temporal encoder, batch windows
    spread over the cores).

    Tiles overlap by a quarter and their softmax is averaged, as ``predict_scene``; beyond ``max_tiles`` labelled
    tiles a fixed random subset is kept and only the labelled pixels they cover are scored.
    """

    def __init__(self, scenes: Sequence[Scene], tile: int, batch_size: int = 8,
                 max_tiles: int = MAX_VALIDATION_TILES, seed: int = 0) -> None:
        per_scene = []
        for index, scene in enumerate(scenes):
            if scene.labels is None or not (scene.labels > 0).any():
                continue
            _, _, h, w = scene.shape
            th, tw = min(tile, h), min(tile, w)
            overlap = tile // 4
            crops = [(y, x) for y in tile_starts(h, th, overlap) for x in tile_starts(w, tw, overlap)
                     if (scene.labels[y : y + th, x : x + tw] > 0).any()]
            per_scene.append((index, (th, tw), crops))
        total = sum(len(c) for _, _, c in per_scene)
        if total > max_tiles:
            keep = set(np.random.default_rng(seed).choice(total, max_tiles, replace=False).tolist())
            flat = iter(range(total))
            per_scene = [(i, size, [c for c in crops if next(flat) in keep]) for i, size, crops in per_scene]
        self.scenes = list(scenes)
        self.parts = []  # (scene index, tile size, crops of one batch, the batch)
        for index, size, crops in per_scene:
            for start in range(0, len(crops), batch_size):
                part = crops[start : start + batch_size]
                batch = make_batch([self.scenes[index]], [(0, y, x) for y, x in part], size)
                self.parts.append((index, size, part, batch))

    def __bool__(self) -> bool:
        return bool(self.parts)

    @torch.no_grad()
    def confusion(self, model: nn.Module, num_classes: int, device: torch.device, precision: Precision) -> np.ndarray:
        """Summed ``(K, K)`` confusion matrix of ``model`` (left unchanged) over the covered labelled pixels."""
        fast = prepare_for_inference(copy.deepcopy(model), device, precision.name)
        probabilities: dict[int, np.ndarray] = {}
        for index, (th, tw), part, batch in self.parts:
            batch = batch.to(device)
            with torch.inference_mode(), inference_context(device, precision.name):
                logits = fast(batch.x, batch.positions, batch.valid)
            probs = torch.softmax(logits.float(), dim=1).cpu().numpy()
            _, _, h, w = self.scenes[index].shape
            acc = probabilities.setdefault(index, np.zeros((probs.shape[1], h, w), np.float32))
            for (y, x), p in zip(part, probs):
                acc[:, y : y + th, x : x + tw] += p
        cm = np.zeros((num_classes, num_classes), np.int64)
        for index, acc in probabilities.items():
            labels = self.scenes[index].labels
            scored = (labels > 0) & (acc.sum(0) > 0)
            cm += confusion(labels[scored], acc.argmax(0)[scored] + 1, num_classes)
        return cm
