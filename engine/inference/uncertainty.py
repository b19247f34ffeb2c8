"""Per-pixel uncertainty of class probabilities: the normalised (Shannon) entropy.

``H(p) / log(K)`` is 0 where one class has all the probability and 1 where every class is equally likely; unlike the
confidence (the highest probability) it also sees how the remaining probability is spread, e.g. a pixel torn between
two crops is more uncertain than one whose runner-up classes share little.
"""

from __future__ import annotations

import numpy as np

UNCERTAINTY_DESCRIPTION = "uncertainty (normalised entropy of the class probabilities, 0 sure .. 1 uniform)"


def normalised_entropy(probs: np.ndarray, axis: int = 0) -> np.ndarray:
    """Entropy of ``probs`` along ``axis`` divided by ``log(K)``, float32 in 0..1.

    Probabilities need not sum exactly to 1 (they are renormalised); where they are all 0 (no data) the result is 0.
    With a single class the uncertainty is 0 everywhere.
    """
    p = np.asarray(probs, dtype=np.float64)
    k = p.shape[axis]
    total = p.sum(axis=axis, keepdims=True)
    if k < 2:
        return np.zeros(np.delete(p.shape, axis), np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(total > 0, p / np.where(total > 0, total, 1.0), 0.0)
        terms = np.where(q > 0, -q * np.log(np.where(q > 0, q, 1.0)), 0.0)
    entropy = terms.sum(axis=axis) / np.log(k)
    return np.clip(entropy, 0.0, 1.0).astype(np.float32)
