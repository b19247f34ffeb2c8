"""Accuracy reports: JSON (everything), CSV (the per-class table) and one self-contained HTML page.

The HTML page draws the confusion matrix as inline SVG, so it needs no plotting library and no external file.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import json
import os
from pathlib import Path
from typing import Optional

from ..atomic import StagedOutputs
from ..errors import EngineError

JSON_NAME = "metrics.json"
CSV_NAME = "per_class.csv"
HTML_NAME = "report.html"
PROFILES_SVG_NAME = "class_profiles.svg"

_CSV_COLUMNS = ["value", "name", "color", "precision", "recall", "f1", "iou", "support", "mapped_area_ha",
                "adjusted_area_ha", "adjusted_area_ci95_ha"]


MIN_TEST_PIXELS = 30  # below this a class's precision / recall move by several points with a handful of pixels


def reliability_warnings(metrics: dict, min_pixels: int = MIN_TEST_PIXELS) -> list[str]:
    """Plain-language reasons not to trust some scores: classes with few test pixels or a single test field, and
    classes the model never mapped."""
    warnings = []
    for c in metrics.get("per_class", []):
        name, support, n_fields = c["name"], int(c.get("support", 0)), c.get("fields")
        if support == 0:
            warnings.append(f"'{name}' has no test pixel: its scores are not measured. Label more fields of it.")
        elif support < min_pixels:
            warnings.append(f"'{name}' has only {support} test pixels: its scores are not reliable. Label more "
                            "fields of it.")
        elif n_fields == 1:
            warnings.append(f"'{name}' has a single test field: its scores describe that field, not the class.")
        if not c.get("mapped_area_ha"):
            warnings.append(f"'{name}' was learnt but never mapped: no pixel of the map has this class.")
    return warnings


def write_reports(
    metrics: dict,
    out_dir: str | os.PathLike,
    title: str = "CropMapper accuracy report",
    extra: Optional[dict] = None,
) -> tuple[str, str, str]:
    """Writes ``metrics.json``, ``per_class.csv`` and ``report.html`` into ``out_dir``; returns their paths.

    ``extra`` (JSON-able: model, map, split, ...) is stored under ``"extra"`` in the JSON and listed in the HTML.
    """
    folder = Path(out_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EngineError(f"Cannot create the report folder '{folder}': {exc.strerror}. Choose another folder.") from None
    payload = dict(metrics)
    payload["title"] = title
    payload["created"] = dt.datetime.now().isoformat(timespec="seconds")
    if extra:
        payload["extra"] = extra

    json_path, csv_path, html_path = folder / JSON_NAME, folder / CSV_NAME, folder / HTML_NAME
    # They appear together or not at all (a full disk at the second leaves none).
    with StagedOutputs() as staged:
        staged.stage(json_path).write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
        _write_csv(metrics, staged.stage(csv_path))
        staged.stage(html_path).write_text(render_html(metrics, title, extra), encoding="utf-8")
        if (metrics.get("class_profiles") or {}).get("classes"):
            # The chart on its own too, for viewers that show SVG images but not inline SVG (the plugin's Results).
            staged.stage(folder / PROFILES_SVG_NAME).write_text(profiles_svg(metrics["class_profiles"]),
                                                                encoding="utf-8")
    return str(json_path), str(csv_path), str(html_path)


def _write_csv(metrics: dict, path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(_CSV_COLUMNS)
        for row in metrics["per_class"]:
            values = []
            for key in _CSV_COLUMNS:
                value = row.get(key)
                if key == "color":
                    value = _hex(value)
                elif value is None:
                    value = ""
                elif isinstance(value, float):
                    value = f"{value:.6g}"
                values.append(value)
            writer.writerow(values)


def _hex(color) -> str:
    r, g, b = (int(c) for c in color)
    return f"#{r:02x}{g:02x}{b:02x}"


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


# HTML text under the picture, not SVG text: it wraps in any viewer instead of being cut at the picture's edge.
CONFUSION_CAPTION = "Columns: mapped class &#183; rows: reference class &#183; shade: share of the row."


def confusion_svg(cm: list[list[int]], names: list[str], colors: list) -> str:
    """The confusion matrix as an SVG heat map: shade = share of the reference row, text = pixel count."""
    k = len(names)
    cell = 44 if k <= 12 else max(18, 520 // max(k, 1))
    label_w = 28 + 8 * max((len(n) for n in names), default=4)
    top = label_w  # column labels are written rotated, so they need the same room
    width, height = label_w + k * cell + 20, top + k * cell + 20
    font = max(8, min(12, cell // 3))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="Confusion matrix" font-family="sans-serif">'
    ]
    for i in range(k):
        row_total = sum(cm[i]) or 1
        y = top + i * cell
        name = html.escape(names[i])
        parts.append(
            f'<rect x="{label_w - 14}" y="{y + cell / 2 - 5}" width="10" height="10" fill="{_hex(colors[i])}" stroke="#444"/>'
            f'<text x="{label_w - 18}" y="{y + cell / 2 + 4}" font-size="{font}" text-anchor="end">{name}</text>'
        )
        x_label = label_w + i * cell + cell / 2
        parts.append(
            f'<rect x="{x_label - 5}" y="{top - 14}" width="10" height="10" fill="{_hex(colors[i])}" stroke="#444"/>'
            f'<text transform="translate({x_label + 4},{top - 18}) rotate(-90)" font-size="{font}">{name}</text>'
        )
        for j in range(k):
            count = cm[i][j]
            share = count / row_total
            x = label_w + j * cell
            shade = f"rgb({int(255 - 200 * share)},{int(255 - 130 * share)},{int(255 - 40 * share)})"
            ink = "#fff" if share > 0.6 else "#000"
            border = "#222" if i == j else "#ccc"
            parts.append(
                f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{shade}" stroke="{border}">'
                f"<title>reference {name}, mapped {html.escape(names[j])}: {count} px ({share:.1%} of row)</title></rect>"
            )
            if cell >= 28:
                parts.append(
                    f'<text x="{x + cell / 2}" y="{y + cell / 2 + 4}" font-size="{font - 1}" '
                    f'text-anchor="middle" fill="{ink}">{count}</text>'
                )
    parts.append("</svg>")
    return "".join(parts)


def profiles_svg(profiles: dict, width: int = 760, height: int = 340) -> str:
    """Class time series as an SVG line chart: per class the median over the dates, the band between the quartiles."""
    dates = [dt.date.fromisoformat(d) for d in profiles["dates"]]
    classes = profiles["classes"]
    left, right, top, bottom = 56, 220, 16, 64
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for c in classes for key in ("q25", "q75", "median") for v in c[key] if v is not None]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    pad = 0.05 * (high - low)
    low, high = low - pad, high + pad
    first, last = dates[0].toordinal(), max(dates[-1].toordinal(), dates[0].toordinal() + 1)

    def px(date: dt.date) -> float:
        return left + plot_w * (date.toordinal() - first) / (last - first)

    def py(value: float) -> float:
        return top + plot_h * (high - value) / (high - low)

    band = html.escape(profiles.get("band", "value"))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="Class time series of {band}" font-family="sans-serif" font-size="11">',
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#999"/>']
    for i in range(5):
        value = low + (high - low) * i / 4
        y = py(value)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#e4e4e4"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{value:.2f}</text>')
    for date in dates:
        x = px(date)
        parts.append(f'<line x1="{x:.1f}" y1="{top + plot_h}" x2="{x:.1f}" y2="{top + plot_h + 4}" stroke="#666"/>'
                     f'<text transform="translate({x + 4:.1f},{top + plot_h + 8}) rotate(60)">{date:%Y-%m-%d}</text>')
    parts.append(f'<text transform="translate(14,{top + plot_h / 2}) rotate(-90)" text-anchor="middle">{band}</text>')
    for n, c in enumerate(classes):
        color = _hex(c["color"])
        points = [(px(d), c["median"][i], c["q25"][i], c["q75"][i]) for i, d in enumerate(dates)]
        spread = [(x, q25, q75) for x, _m, q25, q75 in points if q25 is not None and q75 is not None]
        name = html.escape(c["name"])
        if len(spread) > 1:
            outline = [f"{x:.1f},{py(q75):.1f}" for x, _q25, q75 in spread]
            outline += [f"{x:.1f},{py(q25):.1f}" for x, q25, _q75 in reversed(spread)]
            parts.append(f'<polygon points="{" ".join(outline)}" fill="{color}" fill-opacity="0.15" stroke="none"/>')
        line = [f"{x:.1f},{py(m):.1f}" for x, m, _a, _b in points if m is not None]
        if line:
            parts.append(f'<polyline points="{" ".join(line)}" fill="none" stroke="{color}" stroke-width="2">'
                         f"<title>{name}: median {band}, band = quartiles ({c['pixels']} px)</title></polyline>")
            parts.extend(f'<circle cx="{p.split(",")[0]}" cy="{p.split(",")[1]}" r="2.5" fill="{color}"/>' for p in line)
        y = top + 8 + 16 * n
        parts.append(f'<rect x="{left + plot_w + 14}" y="{y - 8}" width="12" height="10" fill="{color}" stroke="#444"/>'
                     f'<text x="{left + plot_w + 32}" y="{y + 1}">{name}</text>')
    parts.append("</svg>")
    return "".join(parts)


def profiles_html(metrics: dict) -> str:
    """The class time-series section (``metrics["class_profiles"]``); empty without profiles."""
    profiles = metrics.get("class_profiles")
    if not profiles or not profiles.get("classes"):
        return ""
    return (f"<h2>Class time series ({html.escape(profiles['band'])})</h2>"
            f"<p>Median (line) and quartiles (band) of {html.escape(profiles['band'])} per class and date over the "
            f"{html.escape(profiles.get('fields', 'labelled fields'))}; clouds and no data left out. Classes whose "
            "lines run together are hard to tell apart.</p>" + profiles_svg(profiles))


def area_html(metrics: dict) -> str:
    """The error-adjusted area table (``metrics["area_estimates"]``) with its caveat; empty without estimates."""
    table = metrics.get("area_estimates")
    if not table:
        return ""
    colors = {c["name"]: c.get("color", (200, 200, 200)) for c in metrics.get("per_class", [])}
    rows = "".join(
        "<tr>"
        f'<td><span class="swatch" style="background:{_hex(colors.get(r["name"], (200, 200, 200)))}"></span></td>'
        f'<td>{html.escape(r["name"])}</td><td>{_fmt(r["mapped_area_ha"], 2)}</td>'
        f'<td>{_fmt(r["adjusted_area_ha"], 2)}</td><td>&plusmn; {_fmt(r["ci95_ha"], 2)}</td>'
        f'<td>{_fmt(r["ci95_low_ha"], 2)} &ndash; {_fmt(r["ci95_high_ha"], 2)}</td>'
        f'<td>{_fmt(r["users_accuracy"])}</td><td>{_fmt(r["producers_accuracy"])}</td>'
        "</tr>"
        for r in table["per_class"]
    )
    unsampled = table["per_class"][0]["unsampled_map_share"] if table["per_class"] else 0.0
    note = (f"<p>{unsampled:.1%} of the mapped area belongs to classes without any test pixel: the estimates leave "
            "it out.</p>" if unsampled > 0 else "")
    return (
        "<h2>Area estimates</h2>"
        '<table class="areas"><tr><th></th><th>Class</th><th>Mapped area (ha)</th><th>Error-adjusted area (ha)</th>'
        "<th>95 % interval</th><th>95 % range (ha)</th><th>User's accuracy</th><th>Producer's accuracy (area)</th></tr>"
        f"{rows}</table>"
        f'<p class="caveat">{html.escape(table["caveat"])}</p>{note}'
    )


def render_html(metrics: dict, title: str, extra: Optional[dict] = None) -> str:
    """One self-contained HTML page: summary, class table with colours, confusion matrix picture, extra facts."""
    per_class = metrics["per_class"]
    summary = [
        ("Overall accuracy", metrics.get("overall_accuracy")),
        ("Cohen's kappa", metrics.get("kappa")),
        ("Mean IoU", metrics.get("miou")),
        ("Macro F1", metrics.get("macro_f1")),
        ("Evaluated pixels", metrics.get("pixels")),
    ]
    rows = []
    for c in per_class:
        rows.append(
            "<tr>"
            f'<td><span class="swatch" style="background:{_hex(c["color"])}"></span></td>'
            f'<td>{c["value"]}</td><td>{html.escape(c["name"])}</td>'
            f'<td>{_fmt(c["precision"])}</td><td>{_fmt(c["recall"])}</td><td>{_fmt(c["f1"])}</td>'
            f'<td>{_fmt(c["iou"])}</td><td>{c["support"]}</td><td>{_fmt(c["mapped_area_ha"], 2)}</td>'
            "</tr>"
        )
    svg = confusion_svg(metrics["confusion_matrix"], [c["name"] for c in per_class], [c["color"] for c in per_class])
    known = {"overall_accuracy", "kappa", "miou", "macro_f1", "pixels", "per_class", "confusion_matrix", "class_names",
             "area_estimates", "class_profiles"}
    facts = {k: v for k, v in metrics.items() if k not in known and isinstance(v, (str, int, float))}
    facts.update(extra or {})
    extra_html = ""
    if facts:
        items = "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(json.dumps(v, default=str) if not isinstance(v, str) else v)}</td></tr>"
            for k, v in facts.items()
        )
        extra_html = f"<h2>Details</h2><table class=\"facts\">{items}</table>"
    warnings = reliability_warnings(metrics)
    warnings_html = ""
    if warnings:
        warnings_html = "<h2>Warnings</h2><ul class=\"warnings\">" + "".join(
            f"<li>{html.escape(w)}</li>" for w in warnings) + "</ul>"
    summary_html = "".join(f"<tr><th>{name}</th><td>{_fmt(value)}</td></tr>" for name, value in summary)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
th {{ background: #f3f3f3; }} td:nth-child(3), .facts td, .facts th {{ text-align: left; }}
.areas td:nth-child(2) {{ text-align: left; }} .caveat {{ max-width: 60em; color: #444; }}
.swatch {{ display: inline-block; width: 14px; height: 14px; border: 1px solid #444; vertical-align: middle; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<table class="summary">{summary_html}</table>
<h2>Classes</h2>
<table class="classes"><tr><th></th><th>Value</th><th>Class</th><th>Precision</th><th>Recall</th><th>F1</th><th>IoU</th>
<th>Reference pixels</th><th>Mapped area (ha)</th></tr>
{''.join(rows)}
</table>
{warnings_html}
{area_html(metrics)}
<h2>Confusion matrix</h2>
{svg}
<p class="caption">{CONFUSION_CAPTION}</p>
{profiles_html(metrics)}
{extra_html}
</body></html>
"""
