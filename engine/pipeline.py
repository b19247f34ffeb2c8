"""The engine's public steps: pretrain, train, predict, evaluate, and map_crops (all of them).

One function per step serves the dialog, Processing, the command line and torchrun; none of them re-implements a
step. Arguments are plain paths, numbers and callbacks. User errors raise ``EngineError``; cancelling raises
``CancelledError`` and leaves no output behind.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Optional

from .progress import CancelledCallback, ProgressCallback

Color = tuple[int, int, int]


@dataclass
class SeriesInput:
    """Where the time series comes from (see ``engine.data.open_time_series``)."""

    images: list[str]
    layout: str = "per-date"  # per-date | per-band | stack
    cloud_masks: Optional[list[str]] = None  # one per date, 1 = cloud (or any non-zero)
    scl: Optional[list[str]] = None  # one Sentinel-2 SCL raster per date
    dates: Optional[list[dt.date]] = None  # overrides dates found in metadata / file names
    band_names: Optional[list[str]] = None
    stack_order: str = "date-major"  # for layout=stack: date-major (d1b1 d1b2 ...) or band-major
    reference: Optional[str] = None  # raster whose grid everything is aligned to (default: the first)


@dataclass
class LabelInput:
    """Digitised field polygons with a crop-class field."""

    path: str
    class_field: str
    layer: Optional[str] = None
    colors: Optional[dict[str, Color]] = None  # class name -> RGB


@dataclass
class PretrainOptions:
    preset: str = "lite"
    epochs: int = 10
    mask_ratio: float = 0.4
    mask_mode: str = "spatiotemporal"  # spatiotemporal | temporal | spatial
    crop: int = 32
    batch_size: int = 8
    steps_per_epoch: Optional[int] = None
    lr: float = 1e-4
    seed: int = 0
    device: str = "auto"
    resume: bool = False


@dataclass
class TrainOptions:
    preset: str = "lite"
    epochs: int = 30
    crop: int = 32
    batch_size: int = 8
    lr: float = 1e-3
    label_fraction: float = 1.0
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    seed: int = 0
    class_weights: bool = True
    patience: Optional[int] = None  # early stopping after this many epochs without a better val mIoU
    device: str = "auto"
    resume: bool = False


@dataclass
class PredictOptions:
    tile: int = 32
    overlap: int = 8
    batch_size: int = 16
    device: str = "auto"


@dataclass
class PretrainOutcome:
    model_path: str
    history: list[dict]
    seconds: float


@dataclass
class TrainOutcome:
    model_path: str
    history: list[dict]  # per epoch: loss, val OA, val mIoU
    validation: dict  # metrics of the kept model on the validation fields
    split: dict  # number of fields and pixels in train / val / test
    warnings: list[str]
    seconds: float


@dataclass
class PredictOutcome:
    map_path: str
    confidence_path: Optional[str]
    probabilities_path: Optional[str]
    fields_path: Optional[str]
    pixels: int
    seconds: float


@dataclass
class EvaluateOutcome:
    metrics: dict  # overall_accuracy, kappa, miou, macro_f1, per_class [...], confusion_matrix, class_names
    json_path: str
    csv_path: str
    html_path: str


@dataclass
class MapCropsOutcome:
    model_path: str
    predict: PredictOutcome
    report: Optional[EvaluateOutcome]
    train: Optional[TrainOutcome]
    warnings: list[str] = field(default_factory=list)
