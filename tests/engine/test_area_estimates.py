"""Error-adjusted areas with 95 % intervals: the worked example of Olofsson et al. (2014), and the report."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from engine.classes import ClassTable
from engine.evaluation import metrics_from_confusion, write_reports
from engine.evaluation.area import add_area_estimates, error_adjusted_areas

# Olofsson et al. 2014, section 5 (Table 8): sample counts with map classes in rows (deforestation, forest gain,
# stable forest, stable non-forest), mapped pixels of 30 m; their published estimates in hectares.
SAMPLES_BY_MAP = np.array([[66, 0, 5, 4], [0, 55, 8, 12], [1, 0, 153, 11], [2, 1, 9, 313]])
MAPPED_PIXELS = np.array([200_000, 150_000, 3_200_000, 6_450_000])
PUBLISHED = [(21_158, 6_158), (11_686, 3_756), (285_770, 15_510), (581_386, 16_281)]


def test_olofsson_worked_example():
    rows = error_adjusted_areas(SAMPLES_BY_MAP.T, MAPPED_PIXELS, 900.0)  # the engine's rows are the reference
    for row, (area, half) in zip(rows, PUBLISHED):
        assert row["adjusted_area_ha"] == pytest.approx(area, abs=1)
        assert row["ci95_ha"] == pytest.approx(half, abs=1)
        assert row["ci95_low_ha"] == pytest.approx(area - half, abs=1)
    assert rows[0]["users_accuracy"] == pytest.approx(0.88)
    assert rows[0]["producers_accuracy"] == pytest.approx(0.75, abs=0.005)  # published 0.75
    assert sum(r["adjusted_area_ha"] for r in rows) == pytest.approx(MAPPED_PIXELS.sum() * 0.09)


def test_perfect_map_keeps_its_areas_and_unsampled_classes_are_flagged():
    cm = np.diag([50, 30, 0])  # the third class is mapped but never sampled
    rows = error_adjusted_areas(cm, np.array([500, 300, 200]), 100.0)
    assert [r["adjusted_area_ha"] for r in rows] == pytest.approx([5.0, 3.0, 0.0])
    assert [r["ci95_ha"] for r in rows] == pytest.approx([0.0, 0.0, 0.0])
    assert rows[2]["users_accuracy"] is None and rows[0]["unsampled_map_share"] == pytest.approx(0.2)


def test_report_shows_areas_with_caveat(tmp_path):
    classes = ClassTable.from_names(["wheat", "maize", "vines & <olives>"])
    cm = np.array([[40, 5, 0], [10, 30, 2], [0, 3, 20]])
    counts = np.array([1000, 800, 400])
    metrics = add_area_estimates(metrics_from_confusion(cm, classes, 100.0, mapped_counts=counts), cm, counts, 100.0)
    json_path, csv_path, html_path = write_reports(metrics, tmp_path)
    saved = json.loads(open(json_path).read())["area_estimates"]
    assert saved["total_mapped_area_ha"] == pytest.approx(22.0)
    assert sum(r["adjusted_area_ha"] for r in saved["per_class"]) == pytest.approx(22.0)
    # 10 maize reference pixels are mapped as wheat and 5 wheat ones as maize: the adjusted areas move
    assert saved["per_class"][1]["adjusted_area_ha"] != pytest.approx(8.0)
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert float(rows[0]["adjusted_area_ha"]) == pytest.approx(saved["per_class"][0]["adjusted_area_ha"], rel=1e-5)
    text = open(html_path, encoding="utf-8").read()
    assert "Area estimates" in text and "probability sample" in text and "vines &amp; &lt;olives&gt;" in text
