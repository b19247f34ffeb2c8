"""Random crops from scenes, the same global batch on every rank, and batching to tensors."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from .scene import Scene

Crop = tuple[int, int, int]  # scene index, y0, x0


def derive_seed(*parts: int) -> int:
    """A 63-bit seed derived from integers (seed, epoch, rank, ...), stable across runs and machines."""
    state = np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 ^ int(state[1])


def rank_slice(batch_size: int, rank: int, world_size: int) -> slice:
    """This rank's contiguous share of a global batch (shares differ by at most one)."""
    base, extra = divmod(batch_size, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


# Default steps per epoch are bounded: a step's cost does not depend on the area, and pre-training samples crops
# at random (it need not see every pixel every epoch), so an epoch of a large scene stays minutes, not hours.
PRETRAIN_MAX_DEFAULT_STEPS = 8
FINETUNE_MAX_DEFAULT_STEPS = 8
MIN_DEFAULT_STEPS = 4


def default_steps(scenes: Sequence[Scene], crop: int, batch_size: int, minimum: int = MIN_DEFAULT_STEPS,
                  maximum: int = PRETRAIN_MAX_DEFAULT_STEPS) -> int:
    """Steps per epoch so that an epoch sees about as many pixels as the scenes hold, within ``minimum..maximum``."""
    area = sum(s.shape[2] * s.shape[3] for s in scenes)
    return min(maximum, max(minimum, math.ceil(area / (crop * crop * batch_size))))


def default_finetune_steps(scenes: Sequence[Scene], crop: int, batch_size: int, minimum: int = MIN_DEFAULT_STEPS,
                           maximum: int = FINETUNE_MAX_DEFAULT_STEPS) -> int:
    """Steps per epoch from the labelled pixels (not the area of the regions that hold them: scattered fields
    would inflate it): about one crop per crop-sized patch of labels, within ``minimum..maximum``."""
    labelled = sum(s.labelled_pixels for s in scenes)
    return min(maximum, max(minimum, math.ceil(labelled / (crop * crop * batch_size))))


class CropSampler:
    """Draws crop positions: anywhere in the scenes (pre-training) or around labelled pixels (fine-tuning)."""

    def __init__(self, scenes: Sequence[Scene], crop: int, labelled: bool = False) -> None:
        if not scenes:
            raise ValueError("no scenes to sample from")
        self.scenes = list(scenes)
        self.crop = int(crop)
        self.labelled = labelled
        if labelled:
            # Flat indices of labelled pixels per scene; a pixel is drawn uniformly, then a crop holding it.
            self._pixels = [
                np.flatnonzero(s.labels > 0) if s.labels is not None else np.zeros(0, np.int64) for s in self.scenes
            ]
            counts = np.array([len(p) for p in self._pixels], dtype=np.float64)
            if counts.sum() == 0:
                raise ValueError("no labelled pixels in the training scenes")
            self._weights = counts / counts.sum()
        else:
            spans = np.array(
                [max(s.shape[2] - crop + 1, 1) * max(s.shape[3] - crop + 1, 1) for s in self.scenes], dtype=np.float64
            )
            self._weights = spans / spans.sum()

    def sample(self, rng: np.random.Generator, n: int) -> list[Crop]:
        """``n`` crop positions ``(scene, y0, x0)``; a scene smaller than the crop gives (0, 0) and is padded."""
        scene_idx = rng.choice(len(self.scenes), size=n, p=self._weights)
        crops: list[Crop] = []
        for i in scene_idx:
            _, _, h, w = self.scenes[i].shape
            if self.labelled:
                pixels = self._pixels[i]
                py, px = divmod(int(pixels[rng.integers(len(pixels))]), w)
                y0 = _clamp(py - int(rng.integers(self.crop)), h - self.crop)
                x0 = _clamp(px - int(rng.integers(self.crop)), w - self.crop)
            else:
                y0 = int(rng.integers(max(h - self.crop + 1, 1)))
                x0 = int(rng.integers(max(w - self.crop + 1, 1)))
            crops.append((int(i), y0, x0))
        return crops


def _clamp(value: int, high: int) -> int:
    return max(0, min(value, max(high, 0)))


@dataclass
class Batch:
    """Tensors of a batch of crops: ``x (B, T, C, S, S)``, ``positions (B, T)``, ``valid (B, T, S, S)``,
    ``labels (B, S, S)`` int64 (0 = unlabelled) or None."""

    x: torch.Tensor
    positions: torch.Tensor
    valid: torch.Tensor
    labels: Optional[torch.Tensor]

    def to(self, device: torch.device) -> "Batch":
        nb = device.type == "cuda"
        return Batch(
            self.x.to(device, non_blocking=nb),
            self.positions.to(device, non_blocking=nb),
            self.valid.to(device, non_blocking=nb),
            None if self.labels is None else self.labels.to(device, non_blocking=nb),
        )


def crop_size(scenes: Sequence[Scene], crops: Sequence[Crop], crop: int) -> tuple[int, int]:
    """``(height, width)`` of a batch's crops: ``crop``, but never more than the largest scene among ``crops``
    (a small scene is not padded up to the crop, which would only add work on invalid pixels)."""
    h = max(scenes[i].shape[2] for i, _, _ in crops)
    w = max(scenes[i].shape[3] for i, _, _ in crops)
    return min(crop, h), min(crop, w)


def batch_dates(scenes: Sequence[Scene], crops: Sequence[Crop]) -> int:
    """The number of dates of a batch: that of the longest series among ``crops``."""
    return max(scenes[i].shape[0] for i, _, _ in crops)


def make_batch(
    scenes: Sequence[Scene],
    crops: Sequence[Crop],
    size: int | tuple[int, int],
    with_labels: bool = False,
    dates: Optional[int] = None,
) -> Batch:
    """Cuts ``crops`` of ``size`` (or ``(height, width)``) out of ``scenes``, with ``dates`` steps (default: the
    longest series among the crops). Padding, where a scene is smaller than the crop or has fewer dates, is marked
    invalid, with x = 0 and label 0."""
    sh, sw = (size, size) if isinstance(size, int) else size
    t_max = dates if dates is not None else batch_dates(scenes, crops)
    c = scenes[crops[0][0]].shape[1]
    b = len(crops)
    x = np.zeros((b, t_max, c, sh, sw), np.float32)
    valid = np.zeros((b, t_max, sh, sw), bool)
    positions = np.zeros((b, t_max), np.float32)
    labels = np.zeros((b, sh, sw), np.int64) if with_labels else None
    for k, (i, y0, x0) in enumerate(crops):
        s = scenes[i]
        t, _, h, w = s.shape
        hh, ww = min(sh, h - y0), min(sw, w - x0)
        x[k, :t, :, :hh, :ww] = s.x[:, :, y0 : y0 + hh, x0 : x0 + ww]
        valid[k, :t, :hh, :ww] = s.valid[:, y0 : y0 + hh, x0 : x0 + ww]
        positions[k, :t] = s.positions
        if labels is not None and s.labels is not None:
            labels[k, :hh, :ww] = s.labels[y0 : y0 + hh, x0 : x0 + ww]
    return Batch(
        torch.from_numpy(x),
        torch.from_numpy(positions),
        torch.from_numpy(valid),
        None if labels is None else torch.from_numpy(labels),
    )


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of ``tile`` covering ``0..length`` with at least ``overlap`` between neighbours."""
    if length <= tile:
        return [0]
    stride = max(tile - overlap, 1)
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts
