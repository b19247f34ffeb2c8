"""Overall accuracy and mIoU from a confusion matrix, for model selection during fine-tuning."""

from __future__ import annotations

import numpy as np


def confusion(reference: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """``(K, K)`` int64 counts, rows = reference class 1..K, columns = predicted; label 0 is skipped."""
    ref = np.asarray(reference).ravel()
    pred = np.asarray(predicted).ravel()
    keep = ref > 0
    index = (ref[keep] - 1) * num_classes + (pred[keep] - 1)
    return np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes).astype(np.int64)


def summarize(cm: np.ndarray) -> dict:
    """OA, mIoU (mean over classes present in the reference or the prediction) and per-class IoU."""
    cm = np.asarray(cm, dtype=np.float64)
    total = cm.sum()
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    iou = np.divide(tp, union, out=np.zeros_like(tp), where=union > 0)
    present = union > 0
    return {
        "overall_accuracy": float(tp.sum() / total) if total else 0.0,
        "miou": float(iou[present].mean()) if present.any() else 0.0,
        "iou_per_class": [float(v) if p else None for v, p in zip(iou, present)],
        "pixels": int(total),
        "confusion_matrix": cm.astype(np.int64).tolist(),
    }
