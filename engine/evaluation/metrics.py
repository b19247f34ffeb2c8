"""Accuracy metrics from a confusion matrix: OA, Cohen's kappa, mIoU, per-class precision / recall / F1 / IoU, areas.

Conventions: class values are 1..K (0 = unlabelled reference or nodata in the map, never counted). The confusion
matrix has reference classes in rows and mapped classes in columns. Per-class scores whose denominator is zero are
``None``; macro means (``miou``, ``macro_f1``) average over the classes that occur in the reference or in the map
(row + column > 0), so a class absent from both does not pull the means down.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..classes import ClassTable


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) int64 counts, rows = reference class, columns = mapped class; pixels with 0 in either are skipped."""
    y_true = np.asarray(y_true).ravel().astype(np.int64)
    y_pred = np.asarray(y_pred).ravel().astype(np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"reference and map differ in size: {y_true.size} and {y_pred.size} pixels")
    keep = (y_true > 0) & (y_true <= num_classes) & (y_pred > 0) & (y_pred <= num_classes)
    index = (y_true[keep] - 1) * num_classes + (y_pred[keep] - 1)
    return np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes).astype(np.int64)


def _ratio(num: float, den: float) -> Optional[float]:
    return float(num / den) if den > 0 else None


def metrics_from_confusion(
    cm: np.ndarray,
    classes: ClassTable,
    pixel_area_m2: float,
    mapped_counts: Optional[np.ndarray] = None,
) -> dict:
    """All report metrics from a confusion matrix.

    ``mapped_counts`` (K,) are the pixels of each class in the whole map, for ``mapped_area_ha``; without it the
    mapped area counts only the evaluated pixels (column sums of ``cm``).
    """
    cm = np.asarray(cm, dtype=np.int64)
    k = len(classes)
    if cm.shape != (k, k):
        raise ValueError(f"confusion matrix is {cm.shape}, expected ({k}, {k}) for {k} classes")
    total = int(cm.sum())
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)  # reference pixels per class
    predicted = cm.sum(axis=0).astype(np.float64)  # mapped pixels per class (within the evaluated pixels)
    mapped = predicted if mapped_counts is None else np.asarray(mapped_counts, dtype=np.float64)
    if mapped.shape != (k,):
        raise ValueError(f"mapped_counts has shape {mapped.shape}, expected ({k},)")

    overall = _ratio(tp.sum(), total)
    expected = float((support * predicted).sum()) / total**2 if total else 0.0
    kappa = _ratio(overall - expected, 1.0 - expected) if overall is not None else None
    if overall is not None and expected >= 1.0:
        kappa = 1.0 if overall == 1.0 else 0.0  # one class only: agreement is all there is

    per_class = []
    present = support + predicted > 0
    for i, info in enumerate(classes):
        union = support[i] + predicted[i] - tp[i]
        per_class.append(
            {
                "value": info.value,
                "name": info.name,
                "color": list(info.color),
                "precision": _ratio(tp[i], predicted[i]),
                "recall": _ratio(tp[i], support[i]),
                "f1": _ratio(2 * tp[i], support[i] + predicted[i]),
                "iou": _ratio(tp[i], union),
                "support": int(support[i]),
                "mapped_area_ha": float(mapped[i] * pixel_area_m2 / 10_000.0),
            }
        )
    ious = [c["iou"] for c, p in zip(per_class, present) if p]
    f1s = [c["f1"] for c, p in zip(per_class, present) if p]
    return {
        "overall_accuracy": overall,
        "kappa": kappa,
        "miou": float(np.mean(ious)) if ious else None,
        "macro_f1": float(np.mean(f1s)) if f1s else None,
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "class_names": classes.names,
        "pixels": total,
        "pixel_area_m2": float(pixel_area_m2),
    }


def evaluate_arrays(
    pred: np.ndarray,
    labels: np.ndarray,
    mask: Optional[np.ndarray],
    classes: ClassTable,
    pixel_area_m2: float,
) -> dict:
    """Metrics of a class map ``pred`` against reference ``labels`` (both 0..K) where ``mask`` is True.

    The mapped area per class is taken from the whole ``pred`` array; ``unmapped_reference_pixels`` counts reference
    pixels the map left at nodata (they are not in the confusion matrix).
    """
    pred = np.asarray(pred)
    labels = np.asarray(labels)
    if pred.shape != labels.shape:
        raise ValueError(f"map {pred.shape} and reference {labels.shape} differ in shape")
    k = len(classes)
    where = labels > 0 if mask is None else (np.asarray(mask, dtype=bool) & (labels > 0))
    cm = confusion_matrix(labels[where], pred[where], k)
    mapped_counts = np.bincount(pred.ravel().astype(np.int64), minlength=k + 1)[1 : k + 1]
    metrics = metrics_from_confusion(cm, classes, pixel_area_m2, mapped_counts=mapped_counts)
    metrics["unmapped_reference_pixels"] = int(((pred[where] <= 0) | (pred[where] > k)).sum())
    return metrics
