"""Train / validation / test splits by field (never by pixel), stratified by class and seeded."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import EngineError


@dataclass
class FieldSplit:
    """Field ids (as in ``FieldRasters.field_ids``) of each split."""

    train: list[int]
    val: list[int]
    test: list[int]
    seed: int = 0
    label_fraction: float = 1.0
    unused: list[int] = field(default_factory=list)  # training fields left out by ``label_fraction``

    def to_dict(self) -> dict:
        return {
            "train": list(self.train),
            "val": list(self.val),
            "test": list(self.test),
            "seed": self.seed,
            "label_fraction": self.label_fraction,
            "unused": list(self.unused),
        }

    @staticmethod
    def from_dict(data: dict) -> "FieldSplit":
        return FieldSplit(
            train=[int(i) for i in data.get("train", [])],
            val=[int(i) for i in data.get("val", [])],
            test=[int(i) for i in data.get("test", [])],
            seed=int(data.get("seed", 0)),
            label_fraction=float(data.get("label_fraction", 1.0)),
            unused=[int(i) for i in data.get("unused", [])],
        )


def _counts(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """How many of a class's ``n`` fields go to validation and test; training keeps at least one."""
    n_val = int(round(n * val_fraction))
    n_test = int(round(n * test_fraction))
    if n >= 3:
        n_val = max(n_val, 1) if val_fraction > 0 else 0
        n_test = max(n_test, 1) if test_fraction > 0 else 0
    elif n == 2:
        # One for training, the other for testing (else validation), so that the class is measured.
        n_test = 1 if test_fraction > 0 else 0
        n_val = 1 if (val_fraction > 0 and not n_test) else 0
    else:
        n_val = n_test = 0
    while n_val + n_test > n - 1:  # keep one training field
        if n_val >= n_test and n_val > 0:
            n_val -= 1
        else:
            n_test -= 1
    return n_val, n_test


def split_fields(
    field_classes: dict[int, int],
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    label_fraction: float = 1.0,
    seed: int = 0,
) -> FieldSplit:
    """Splits fields into train / val / test per class (stratified), reproducibly for one ``seed``.

    Every class with at least 3 fields gets at least one field in each split whose fraction is above 0. Then only
    ``label_fraction`` of each class's training fields are kept (at least one), to study scarce labels; a smaller
    fraction keeps a subset of the fields a larger one keeps.
    """
    for name, value in (("validation", val_fraction), ("test", test_fraction)):
        if not 0 <= value < 1:
            raise EngineError(f"The {name} fraction must be between 0 and 1, got {value}.")
    if val_fraction + test_fraction >= 1:
        raise EngineError("The validation and test fractions together must leave fields for training (sum below 1).")
    if not 0 < label_fraction <= 1:
        raise EngineError(f"The label fraction must be above 0 and at most 1, got {label_fraction}.")
    if not field_classes:
        raise EngineError("There are no labelled fields to split.")
    by_class: dict[int, list[int]] = {}
    for field_id, value in field_classes.items():
        by_class.setdefault(int(value), []).append(int(field_id))
    rng = np.random.default_rng(seed)
    train: list[int] = []
    val: list[int] = []
    test: list[int] = []
    unused: list[int] = []
    for value in sorted(by_class):
        ids = sorted(by_class[value])
        ids = [ids[i] for i in rng.permutation(len(ids))]
        n_val, n_test = _counts(len(ids), val_fraction, test_fraction)
        test += ids[:n_test]
        val += ids[n_test:n_test + n_val]
        class_train = ids[n_test + n_val:]
        keep = max(1, int(round(len(class_train) * label_fraction)))
        train += class_train[:keep]
        unused += class_train[keep:]
    return FieldSplit(sorted(train), sorted(val), sorted(test), seed, label_fraction, sorted(unused))
