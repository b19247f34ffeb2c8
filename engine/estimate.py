"""How long a Map crops run will take on this device, before it starts: a few timed training and prediction steps
of the chosen model on random data of the run's shape, times the number of steps the run will make.

Rough by nature (validation, reading the images and writing the outputs are not timed, and a busy machine is
slower), but it tells minutes from hours, which is what a user deciding on the options needs.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Optional

from .regions import BLOCK, PRETRAIN_BUDGET

PROBE_BATCHES = (2, 4)  # crops / tiles per timed probe step; the run's batch sizes are extrapolated from these


@dataclass
class RunEstimate:
    """Expected seconds per step of a run (0 for steps it does not make), and the steps they come from."""

    pretrain: float
    train: float
    predict: float
    train_step: float  # seconds of one training step (one batch of crops)
    predict_batch: float  # seconds of one batch of prediction tiles
    device: str

    @property
    def total(self) -> float:
        return self.pretrain + self.train + self.predict


def steps_per_epoch(area_pixels: float, crop: int, batch_size: int, minimum: int = 4) -> int:
    """As the engine's default (``training.sampling.default_steps``): an epoch sees about every pixel once."""
    return max(minimum, math.ceil(area_pixels / (crop * crop * batch_size)))


def pretrain_area(width: int, height: int, values_per_pixel: int) -> int:
    """The pixels pre-training samples from: the whole raster within the memory budget (``regions``)."""
    if width * height * values_per_pixel <= PRETRAIN_BUDGET:
        return width * height
    return max(1, PRETRAIN_BUDGET // (BLOCK * BLOCK * values_per_pixel)) * BLOCK * BLOCK


def estimate_run(
    bands: int,
    dates: int,
    width: int,
    height: int,
    labelled_area: int,
    classes: int,
    pretrain_epochs: Optional[int],
    train_epochs: int,
    preset: str = "lite",
    crop: int = 32,
    batch_size: int = 8,
    tile: int = 32,
    overlap: int = 8,
    predict_batch: int = 16,
    device: str = "auto",
) -> RunEstimate:
    """Times a few training steps and prediction batches of the ``preset`` model on ``device``.

    ``labelled_area``: pixels of the labelled fields' extent (training crops are drawn there); ``pretrain_epochs``
    None when there is no pre-training. Takes a few seconds on a CPU.
    """
    import torch

    from .device import resolve_device
    from .model import STCLN, make_config
    from .model.fast import inference_context, prepare_for_inference

    target = resolve_device(device)
    model = STCLN(make_config(preset, bands, max(2, classes))).to(target)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)

    def batch(size: int, side: int):
        x = torch.randn(size, dates, bands, side, side, device=target)
        positions = torch.arange(dates, dtype=torch.float32, device=target).repeat(size, 1) * 10.0
        valid = torch.ones(size, dates, side, side, dtype=torch.bool, device=target)
        return x, positions, valid

    def train_step(size: int) -> None:
        x, positions, valid = batch(size, crop)
        loss = model(x, positions, valid).float().square().mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    model.train()
    train_seconds = _extrapolated(train_step, batch_size, target)
    # Prediction runs the model as predict_raster does (folded, channels-last, bf16 where the CPU has it).
    fast = prepare_for_inference(model, target)

    def predict_step(size: int) -> None:
        with torch.inference_mode(), inference_context(target):
            fast(*batch(size, tile))

    predict_seconds = _extrapolated(predict_step, predict_batch, target)

    step = max(1, tile - overlap)  # as inference.weights.tile_step
    tiles = math.ceil(width / step) * math.ceil(height / step)
    pretrain = 0.0
    if pretrain_epochs:
        pretrain = pretrain_epochs * steps_per_epoch(pretrain_area(width, height, dates * bands), crop, batch_size)
        pretrain *= train_seconds
    train = train_epochs * steps_per_epoch(labelled_area, crop, batch_size) * train_seconds
    predict = math.ceil(tiles / predict_batch) * predict_seconds
    return RunEstimate(pretrain, train, predict, train_seconds, predict_seconds, str(target))


def _extrapolated(step, batch_size: int, device) -> float:
    """Seconds of ``step(batch_size)``, from timed steps of the ``PROBE_BATCHES`` sizes after a warm-up: a fixed
    cost per step plus a cost per crop, fitted through the two (never less than the larger probe's share)."""
    import torch

    def timed(size: int) -> float:
        began = time.perf_counter()
        step(size)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - began

    small, large = PROBE_BATCHES
    timed(small)  # warm-up: first calls allocate and pick kernels
    t_small, t_large = timed(small), timed(large)
    per_item = max((t_large - t_small) / (large - small), 0.0)
    fitted = t_small + per_item * (batch_size - small)
    return max(fitted, t_large * batch_size / large * 0.5, 1e-6)
