"""Error-adjusted class areas with 95 % confidence intervals (Olofsson et al. 2014, map classes as strata).

Olofsson, P., Foody, G. M., Herold, M., Stehman, S. V., Woodcock, C. E., Wulder, M. A. (2014): Good practices for
estimating area and assessing accuracy of land change. Remote Sensing of Environment 148, 42-57 (equations 9-10).

With map class ``i`` covering a share ``W_i`` of the mapped area and ``n_ij`` reference samples of class ``j`` among
the ``n_i`` samples mapped as ``i``, the estimated share of reference class ``j`` is ``p_.j = sum_i W_i n_ij / n_i``,
its standard error ``sqrt(sum_i W_i^2 (n_ij / n_i)(1 - n_ij / n_i) / (n_i - 1))``, and the area ``A * p_.j`` with
``A * 1.96 SE`` as the half-width of the 95 % interval. This holds when the reference sample is a probability sample
of the map (e.g. a stratified random sample of pixels); test fields picked by hand, or the many correlated pixels of
a few fields, make the interval narrower than it really is.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

Z_95 = 1.959964

CAVEAT = (
    "The error-adjusted areas and their 95 % intervals follow Olofsson et al. (2014) with the map classes as strata. "
    "They are valid when the reference pixels are a probability sample of the map (for instance a stratified random "
    "sample). Test fields chosen by hand, or pixels that come in whole fields and so resemble their neighbours, make "
    "the intervals narrower than they really are: read them as a lower bound of the uncertainty."
)


def error_adjusted_areas(cm: np.ndarray, mapped_counts: np.ndarray, pixel_area_m2: float) -> list[dict]:
    """Per class: mapped area, error-adjusted area and its 95 % interval (hectares), from a confusion matrix.

    ``cm``: (K, K) reference pixels in rows, mapped classes in columns (``metrics.confusion_matrix``).
    ``mapped_counts``: (K,) pixels of each class in the whole map (the strata sizes).
    A map class without a reference sample contributes nothing to the estimate, and its area makes the estimate
    incomplete: ``unsampled_map_share`` of each row says how much of the map that is.
    """
    cm = np.asarray(cm, dtype=np.float64)
    k = cm.shape[0]
    counts = np.asarray(mapped_counts, dtype=np.float64)
    if cm.shape != (k, k) or counts.shape != (k,):
        raise ValueError(f"confusion matrix {cm.shape} and mapped counts {counts.shape} do not match")
    hectares = pixel_area_m2 / 10_000.0
    total = counts.sum()
    by_map = cm.T  # rows: map class i (strata), columns: reference class j
    n_i = by_map.sum(axis=1)
    weights = counts / total if total > 0 else np.zeros(k)
    sampled = n_i > 0
    share = np.zeros((k, k))
    share[sampled] = by_map[sampled] / n_i[sampled, None]  # n_ij / n_i
    p_j = (weights[:, None] * share).sum(axis=0)
    variance_terms = np.zeros((k, k))
    several = n_i > 1
    variance_terms[several] = (weights[several, None] ** 2 * share[several] * (1 - share[several])
                               / (n_i[several, None] - 1))
    se = np.sqrt(variance_terms.sum(axis=0))
    unsampled = float(weights[~sampled].sum())
    rows = []
    for j in range(k):
        area = float(total * p_j[j] * hectares)
        half = float(Z_95 * se[j] * total * hectares)
        rows.append({
            "mapped_area_ha": float(counts[j] * hectares),
            "adjusted_area_ha": area,
            "ci95_ha": half,
            "ci95_low_ha": max(0.0, area - half),
            "ci95_high_ha": area + half,
            "users_accuracy": float(share[j, j]) if sampled[j] else None,
            "producers_accuracy": _producers(weights, share, p_j, j),
            "unsampled_map_share": unsampled,
        })
    return rows


def _producers(weights: np.ndarray, share: np.ndarray, p_j: np.ndarray, j: int) -> Optional[float]:
    """Area-weighted producer's accuracy of reference class ``j`` (Olofsson et al. 2014, equation 3)."""
    return float(weights[j] * share[j, j] / p_j[j]) if p_j[j] > 0 else None


def area_table(cm, mapped_counts, pixel_area_m2: float, names: list[str]) -> dict:
    """The report's ``area_estimates``: per-class rows with names, the total mapped area, and the caveat."""
    rows = error_adjusted_areas(cm, mapped_counts, pixel_area_m2)
    for row, name in zip(rows, names):
        row["name"] = name
    return {
        "method": "Olofsson et al. 2014, stratified estimator, map classes as strata, 95 % intervals",
        "total_mapped_area_ha": float(np.asarray(mapped_counts, np.float64).sum() * pixel_area_m2 / 10_000.0),
        "per_class": rows,
        "caveat": CAVEAT,
    }


def add_area_estimates(metrics: dict, cm, mapped_counts, pixel_area_m2: float) -> dict:
    """Adds ``area_estimates`` to report ``metrics`` and the adjusted area and interval to each per-class row."""
    table = area_table(cm, mapped_counts, pixel_area_m2, [row["name"] for row in metrics["per_class"]])
    metrics["area_estimates"] = table
    for row, estimate in zip(metrics["per_class"], table["per_class"]):
        row["adjusted_area_ha"] = estimate["adjusted_area_ha"]
        row["adjusted_area_ci95_ha"] = estimate["ci95_ha"]
    return metrics
