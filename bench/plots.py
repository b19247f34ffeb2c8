"""PNG plots of the accuracy study (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LABELS = {
    "rf": "Random Forest (pixel)",
    "pixel_transformer": "Transformer (pixel, no spatial branch)",
    "stcln": "STCLN (from scratch)",
    "stcln_matched": "STCLN (from scratch, as many steps as STCLN_wp)",
    "stcln_wp": "STCLN_wp (pre-trained)",
    "reference": "STCLN_wp (reference)",
    "scratch": "STCLN, no pre-training",
    "mask_temporal": "temporal masking",
    "mask_spatial": "spatial masking",
    "sta_off": "STA off",
    "index_encoding": "index encoding",
    "cloud_ignored": "cloud mask ignored",
}


def metric_vs_fraction(summary: dict[str, Any], metric: str, path: Path) -> Path:
    """One line per method: ``metric`` (mean +- std over seeds) against the training-label fraction."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for method, by_fraction in summary["main"].items():
        points = [(float(f), v[metric]["mean"], v[metric]["std"]) for f, v in by_fraction.items() if v]
        if not points:
            continue
        points.sort()
        xs, ys, es = zip(*points)
        ax.errorbar([x * 100 for x in xs], ys, yerr=es, marker="o", capsize=3, label=LABELS.get(method, method))
    ax.set_xscale("log")
    fractions = [float(f) * 100 for f in summary["setup"]["fractions"]]
    ax.set_xticks(fractions)
    ax.set_xticklabels([f"{f:g} %" for f in fractions])
    ax.set_xlabel("training fields used (label fraction)")
    ax.set_ylabel({"miou": "mIoU", "oa": "overall accuracy", "macro_f1": "macro F1"}.get(metric, metric))
    ax.set_title(f"Test fields, mean +- std over {len(summary['setup']['seeds'])} seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def ablation_bars(summary: dict[str, Any], path: Path) -> Path:
    """Horizontal bars of test mIoU (mean +- std) for STCLN_wp and its ablations."""
    rows = [(name, v["miou"]["mean"], v["miou"]["std"]) for name, v in summary["ablations"].items() if v]
    fig, ax = plt.subplots(figsize=(7.2, 0.45 * len(rows) + 1.4), dpi=120)
    names = [LABELS.get(n, n) for n, _, _ in rows][::-1]
    ax.barh(names, [m for _, m, _ in rows][::-1], xerr=[s for _, _, s in rows][::-1], capsize=3,
            color=["#4c72b0" if n not in ("reference", "scratch") else "#dd8452" for n, _, _ in rows][::-1])
    ax.set_xlabel("test mIoU")
    fraction = summary["setup"]["ablation_fraction"]
    ax.set_title(f"STCLN_wp ablations, {fraction * 100:g} % of the training fields")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
