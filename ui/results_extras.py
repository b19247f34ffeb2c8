"""What the Results tab shows beyond the accuracy table: the fields to label next and the class time-series chart."""

from __future__ import annotations

import html
from pathlib import Path


def suggestions_hint(suggestions) -> str:
    """The Results' one line about the fields to label next (empty without suggestions)."""
    if not suggestions or not suggestions.suggestions:
        return ""
    return (f"<p><b>Label these next:</b> {len(suggestions.suggestions)} of your {suggestions.candidates} unlabelled "
            "fields, where the model is least sure (layer <i>Fields to label next</i>, rank 1 first). Give them a "
            "class and run again.</p>")


def profiles_image(report, final_path=lambda p: p) -> str:
    """The class time-series chart of the report (an SVG file beside it), or nothing."""
    from ..engine.evaluation.report import PROFILES_SVG_NAME

    if report is None:
        return ""
    chart = Path(final_path(report.html_path)).with_name(PROFILES_SVG_NAME)
    if not chart.exists():
        return ""
    band = html.escape(str((report.metrics.get("class_profiles") or {}).get("band", "")))
    return (f"<p><b>Class time series ({band})</b>: median and quartiles per date over the training fields; "
            f"crops whose lines run together are the ones the map confuses.</p><img src='{chart.as_uri()}'>")
