"""What a printed crop map says besides the pixels: classes with colours and areas, accuracy, the series' dates.

Gathered from the class map (its class table and histogram), and optionally the accuracy report's ``metrics.json``
and the model file (class table, acquisition dates of the training series), for the print layout of the plugin.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from .errors import EngineError


def map_summary(map_path: str, report_json: Optional[str] = None, model_path: Optional[str] = None,
                dates: Optional[list[str]] = None) -> dict:
    """``classes`` [{value, name, color, mapped_area_ha, adjusted_area_ha?, ci95_ha?}], ``accuracy`` (or None),
    ``first_date`` / ``last_date`` (ISO, or None), ``total_mapped_area_ha``."""
    from .bundle import ModelBundle
    from .mapfile import class_table_from_map, map_histogram, open_map

    dataset, grid = open_map(map_path)
    bundle = ModelBundle.load(model_path) if model_path else None
    classes = bundle.classes if bundle is not None and bundle.classes is not None else class_table_from_map(dataset)
    counts = map_histogram(dataset, len(classes))
    dataset = None
    hectares = grid.pixel_area_m2 / 10_000.0
    rows = [{"value": c.value, "name": c.name, "color": list(c.color), "mapped_area_ha": float(counts[c.value] * hectares)}
            for c in classes]
    accuracy = None
    if report_json:
        metrics = _read_report(report_json)
        adjusted = {r["name"]: r for r in (metrics.get("area_estimates") or {}).get("per_class", [])}
        for row in rows:
            if row["name"] in adjusted:
                row["adjusted_area_ha"] = adjusted[row["name"]]["adjusted_area_ha"]
                row["ci95_ha"] = adjusted[row["name"]]["ci95_ha"]
        accuracy = {key: metrics.get(key) for key in ("overall_accuracy", "miou", "kappa", "macro_f1", "split", "pixels")}
    if dates is None and bundle is not None:
        dates = (bundle.provenance.get("inputs") or {}).get("dates")
    dates = sorted(str(d) for d in dates) if dates else None
    return {
        "classes": rows,
        "total_mapped_area_ha": float(counts[1:].sum() * hectares),
        "accuracy": accuracy,
        "first_date": dates[0] if dates else None,
        "last_date": dates[-1] if dates else None,
        "crs_wkt": grid.crs_wkt,
    }


def _read_report(path: str) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise EngineError(f"Cannot read the accuracy report '{path}': {exc.strerror}.") from None
    except json.JSONDecodeError:
        raise EngineError(f"'{path}' is not an accuracy report (metrics.json) of CropMapper.") from None
