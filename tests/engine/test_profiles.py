"""Class time-series profiles (median and quartiles per class and date) and their SVG chart in the report."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from engine.classes import ClassTable
from engine.data.labels import FieldRasters
from engine.evaluation.profiles import class_profiles, profile_band
from engine.evaluation.report import PROFILES_SVG_NAME, profiles_svg, write_reports

DATES = [dt.date(2021, 3, 1), dt.date(2021, 5, 1), dt.date(2021, 7, 1)]


class FakeSeries:
    """An in-memory series with red and NIR bands: class 1 greens up in May, class 2 in July; one cloudy date."""

    band_names = ["B04", "B08"]
    dates = DATES

    def __init__(self):
        h, w = 6, 8
        self.x = np.zeros((3, 2, h, w), np.float32)
        self.x[:, 0] = 1000.0
        nir = {1: [1500, 5000, 2000], 2: [1500, 1500, 5000]}
        for t in range(3):
            self.x[t, 1, :, :4] = nir[1][t]
            self.x[t, 1, :, 4:] = nir[2][t]
        self.valid = np.ones((3, h, w), bool)
        self.valid[1, :, 4:] = False  # class 2 is under clouds in May

    def read(self, x0, y0, w, h):
        return self.x[:, :, y0 : y0 + h, x0 : x0 + w].copy(), self.valid[:, y0 : y0 + h, x0 : x0 + w].copy()


def fields() -> FieldRasters:
    labels = np.zeros((6, 8), np.int64)
    labels[:, :4], labels[:, 4:] = 1, 2
    ids = np.where(labels == 1, 1, 2).astype(np.int32)
    ids[:3, :4] = 3  # a second field of class 1
    return FieldRasters(labels, ids, (0, 0, 8, 6), ClassTable.from_names(["early", "late <crop>"]), {1: 1, 2: 2, 3: 1},
                        0, {1: 24, 2: 24})


def test_profiles_follow_the_classes_and_skip_clouds():
    profiles = class_profiles(FakeSeries(), fields())
    assert profiles["band"] == "NDVI" and profiles["dates"] == [d.isoformat() for d in DATES]
    early, late = profiles["classes"]
    assert early["median"] == pytest.approx([0.2, 4000 / 6000, 1000 / 3000])
    assert late["median"][1] is None and late["median"][2] == pytest.approx(4000 / 6000)
    assert early["pixels"] == 24
    only = class_profiles(FakeSeries(), fields(), keep_ids=[3])  # the training fields only
    assert [c["name"] for c in only["classes"]] == ["early"] and only["classes"][0]["pixels"] == 12
    assert profile_band(["B02", "B03"]) == "B02" and profile_band(["NDVI"]) == "NDVI"


def test_profiles_chart_in_the_report(tmp_path):
    profiles = class_profiles(FakeSeries(), fields())
    svg = profiles_svg(profiles)
    ET.fromstring(svg)  # well-formed
    assert svg.count("<polyline") == 2 and "late &lt;crop&gt;" in svg
    metrics = {"overall_accuracy": 1.0, "kappa": 1.0, "miou": 1.0, "macro_f1": 1.0, "pixels": 4,
               "per_class": [{"value": 1, "name": "early", "color": [1, 2, 3], "precision": 1.0, "recall": 1.0,
                              "f1": 1.0, "iou": 1.0, "support": 4, "mapped_area_ha": 1.0}],
               "confusion_matrix": [[4]], "class_names": ["early"], "class_profiles": profiles}
    _json, _csv, html_path = write_reports(metrics, tmp_path)
    text = open(html_path, encoding="utf-8").read()
    assert "Class time series (NDVI)" in text and text.count("<svg") == 2
    assert (tmp_path / PROFILES_SVG_NAME).read_text().startswith("<svg")
