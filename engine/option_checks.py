"""Checks of the training options before any work: a bad number is a message, never a traceback or a useless model.

The Processing parameters declare the same lower bounds (``processing/params.py``); these checks hold for every
front end, the command line included.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from .errors import EngineError

MIN_CROP = 4  # pixels: the spatial encoder's 3 x 3 convolutions need a few pixels of context


def _integer(name: str, value: Any, minimum: int, hint: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise EngineError(f"The {name} must be a whole number of at least {minimum}, not {value!r}.{hint}")


def _positive_finite(name: str, value: Any) -> None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number <= 0:
        raise EngineError(f"The {name} must be a positive number, not {value!r}.")


def _optional_integer(name: str, value: Optional[int], minimum: int) -> None:
    if value is not None:
        _integer(name, value, minimum, " Leave it empty for the default.")


def check_training_options(options) -> None:
    """Epochs, crop, batch size, steps, learning rate (and mask ratio, patience when present) of a training run."""
    _integer("number of epochs", options.epochs, 1, " An untrained model would be written otherwise.")
    _integer("training crop size (pixels)", options.crop, MIN_CROP)
    _integer("batch size", options.batch_size, 1)
    _optional_integer("number of steps per epoch", options.steps_per_epoch, 1)
    _positive_finite("learning rate", options.lr)
    if hasattr(options, "mask_ratio"):
        ratio = float(options.mask_ratio) if isinstance(options.mask_ratio, (int, float)) else math.nan
        if not 0.0 < ratio < 1.0:
            raise EngineError(f"The mask ratio must be between 0 and 1 (exclusive), not {options.mask_ratio!r}.")
    _optional_integer("patience (epochs)", getattr(options, "patience", None), 1)


def check_classes(field_classes: dict, class_names: list[str]) -> None:
    """Refuses a training set with fewer than two classes: a one-class model would 'validate' at OA 1.000."""
    present = sorted(set(field_classes.values()))
    if len(present) < 2:
        which = f"only the class '{class_names[present[0] - 1]}'" if present else "no class"
        raise EngineError(
            f"The labelled fields over the images hold {which}. A crop map needs at least two classes: add fields of "
            "other crops (or check the class field)."
        )
