"""Accuracy metrics against scikit-learn, and the three report files."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from sklearn import metrics as skm

from engine.classes import ClassTable
from engine.errors import EngineError
from engine.evaluation import confusion_matrix, evaluate_arrays, metrics_from_confusion, write_reports

K = 5


@pytest.fixture()
def classes() -> ClassTable:
    return ClassTable.from_names(["wheat", "maize", "sugar beet", "forest", "Strange <&> crop"])


@pytest.fixture()
def random_pairs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(42)
    truth = rng.integers(1, K + 1, 4000)
    # A map right about 60 % of the time, with a bias so the classes differ in their scores.
    pred = np.where(rng.random(4000) < 0.6, truth, rng.integers(1, K + 1, 4000))
    pred[(truth == 2) & (rng.random(4000) < 0.3)] = 3
    return truth, pred


def test_confusion_matrix_matches_sklearn_and_skips_zero(random_pairs):
    truth, pred = random_pairs
    expected = skm.confusion_matrix(truth, pred, labels=list(range(1, K + 1)))
    truth0, pred0 = truth.copy(), pred.copy()
    truth0[:100] = 0  # unlabelled reference
    pred0[100:150] = 0  # nodata in the map
    cm = confusion_matrix(truth0, pred0, K)
    keep = np.arange(truth.size) >= 150
    assert np.array_equal(confusion_matrix(truth, pred, K), expected)
    assert np.array_equal(cm, skm.confusion_matrix(truth[keep], pred[keep], labels=list(range(1, K + 1))))


def test_metrics_match_sklearn(random_pairs, classes):
    truth, pred = random_pairs
    labels = list(range(1, K + 1))
    m = metrics_from_confusion(confusion_matrix(truth, pred, K), classes, pixel_area_m2=100.0)
    assert m["overall_accuracy"] == pytest.approx(skm.accuracy_score(truth, pred))
    assert m["kappa"] == pytest.approx(skm.cohen_kappa_score(truth, pred))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(truth, pred, labels=labels, average="macro"))
    assert m["miou"] == pytest.approx(skm.jaccard_score(truth, pred, labels=labels, average="macro"))
    per = m["per_class"]
    for name, fn in [("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score),
                     ("iou", skm.jaccard_score)]:
        np.testing.assert_allclose([c[name] for c in per], fn(truth, pred, labels=labels, average=None))
    assert [c["support"] for c in per] == np.bincount(truth, minlength=K + 1)[1:].tolist()
    # Mapped area: pixels mapped to each class x 100 m2, in hectares.
    np.testing.assert_allclose([c["mapped_area_ha"] for c in per], np.bincount(pred, minlength=K + 1)[1:] * 0.01)
    assert m["pixels"] == truth.size and m["class_names"] == classes.names


def test_absent_class_is_left_out_of_the_means(classes):
    truth = np.array([1, 1, 2, 2, 3, 3])
    pred = np.array([1, 2, 2, 2, 3, 1])  # classes 4 and 5 appear nowhere
    m = metrics_from_confusion(confusion_matrix(truth, pred, K), classes, 100.0)
    assert m["per_class"][3]["iou"] is None and m["per_class"][3]["precision"] is None
    present = [1, 2, 3]
    assert m["miou"] == pytest.approx(skm.jaccard_score(truth, pred, labels=present, average="macro"))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(truth, pred, labels=present, average="macro"))


def test_evaluate_arrays_counts_whole_map_area_and_unmapped(classes):
    rng = np.random.default_rng(1)
    pred = rng.integers(0, K + 1, (40, 50))
    labels = rng.integers(0, K + 1, (40, 50))
    mask = np.zeros((40, 50), bool)
    mask[:, :25] = True
    m = evaluate_arrays(pred, labels, mask, classes, pixel_area_m2=100.0)
    sel = mask & (labels > 0) & (pred > 0)
    assert m["pixels"] == int(sel.sum())
    assert m["unmapped_reference_pixels"] == int((mask & (labels > 0) & (pred == 0)).sum())
    np.testing.assert_allclose([c["mapped_area_ha"] for c in m["per_class"]],
                               np.bincount(pred.ravel(), minlength=K + 1)[1:] * 0.01)


def test_reports_are_written_and_self_contained(tmp_path, random_pairs, classes):
    truth, pred = random_pairs
    m = metrics_from_confusion(confusion_matrix(truth, pred, K), classes, 100.0)
    json_path, csv_path, html_path = write_reports(m, tmp_path / "report", title="Test report",
                                                   extra={"model": "m.cropmodel", "split": "test"})
    data = json.loads(open(json_path, encoding="utf-8").read())
    assert data["kappa"] == pytest.approx(m["kappa"]) and data["extra"]["split"] == "test"
    rows = list(csv.DictReader(open(csv_path, encoding="utf-8")))
    assert [r["name"] for r in rows] == classes.names
    assert rows[0]["color"] == "#{:02x}{:02x}{:02x}".format(*classes[0].color)
    assert float(rows[1]["f1"]) == pytest.approx(m["per_class"][1]["f1"], rel=1e-5)
    page = open(html_path, encoding="utf-8").read()
    assert "m.cropmodel" in page and "Strange &lt;&amp;&gt; crop" in page and "<script" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    svg = page[page.index("<svg"): page.index("</svg>") + 6]
    root = ET.fromstring(svg)  # well-formed picture
    cells = [r for r in root.iter("{http://www.w3.org/2000/svg}rect") if r.find("{http://www.w3.org/2000/svg}title") is not None]
    assert len(cells) == K * K
    # Each class's colour appears as a swatch in the table.
    for c in classes:
        assert "#{:02x}{:02x}{:02x}".format(*c.color) in page
    assert not [p for p in (tmp_path / "report").iterdir() if ".partial" in p.name]


def test_report_folder_not_writable(tmp_path, random_pairs, classes):
    truth, pred = random_pairs
    m = metrics_from_confusion(confusion_matrix(truth, pred, K), classes, 100.0)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(EngineError, match="report folder"):
        write_reports(m, blocker / "sub")


def test_reliability_warnings_and_caption_outside_the_picture(tmp_path):
    from engine.evaluation import reliability_warnings

    classes = ClassTable.from_names(["maize", "wheat", "rye", "oats"])
    cm = np.array([[200, 10, 0, 0], [5, 12, 0, 0], [40, 0, 0, 0], [0, 0, 0, 100]])
    m = metrics_from_confusion(cm, classes, 100.0, mapped_counts=np.array([300, 40, 0, 90]))
    for row, fields in zip(m["per_class"], (9, 3, 2, 1)):
        row["fields"] = fields
    warnings = reliability_warnings(m)
    assert any("'wheat' has only 17 test pixels" in w for w in warnings)
    assert any("'oats' has a single test field" in w for w in warnings)
    assert any("'rye' was learnt but never mapped" in w for w in warnings)
    assert not any("'maize'" in w for w in warnings)
    _json, _csv, html_path = write_reports(m, tmp_path)
    page = open(html_path, encoding="utf-8").read()
    assert "<h2>Warnings</h2>" in page and "single test field" in page
    svg = page[page.index("<svg"):page.index("</svg>")]
    assert "Columns: mapped class" not in svg and "Columns: mapped class" in page  # HTML text wraps, SVG text is cut
