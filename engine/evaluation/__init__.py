"""Accuracy assessment: confusion matrix, OA, kappa, mIoU, per-class scores and areas, and reports."""

from .metrics import confusion_matrix, evaluate_arrays, metrics_from_confusion
from .report import reliability_warnings, write_reports

__all__ = ["confusion_matrix", "evaluate_arrays", "metrics_from_confusion", "reliability_warnings",
           "write_reports"]
