"""Every CropMapper algorithm through processing.run, and mapcrops headless through qgis_process.bin."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from qgis.core import QgsProcessingException, QgsProcessingFeedback, QgsRasterLayer

from cropmapper.ui import styling

REPO = Path(__file__).resolve().parents[2]
CLASSES = {"forest", "grassland", "schrubland", "artificial surface", "cultivated land"}  # sic, as in the data
pytestmark = pytest.mark.slow


def _series(slovenia) -> dict:
    return {"SERIES": slovenia["images"], "CLOUD_MASKS": slovenia["masks"], "DEVICE": "cpu"}


def test_provider_lists_its_algorithms(provider):
    assert {a.name() for a in provider.algorithms()} == {"pretrain", "train", "classify", "evaluate", "mapcrops",
                                                         "search", "suggest", "exportmap"}


def test_pretrain(provider, slovenia, tmp_path):  # noqa: ARG001
    import processing

    out = tmp_path / "pre.cropmodel"
    result = processing.run("cropmapper:pretrain", {
        **_series(slovenia), "PRETRAIN_EPOCHS": 1, "STEPS_PER_EPOCH": 2, "MASK_RATIO": 0.4, "OUTPUT_MODEL": str(out),
    })
    assert result["OUTPUT_MODEL"] == str(out) and out.is_file()
    assert result["FINAL_LOSS"] is not None and result["FINAL_LOSS"] > 0


def test_train(trained):
    result = trained["result"]
    assert Path(result["OUTPUT_MODEL"]).is_file()
    assert 0.0 <= result["VAL_OA"] <= 1.0
    assert result["VAL_MIOU"] is not None


def test_classify_styles_the_map(provider, trained, slovenia, tmp_path):  # noqa: ARG001
    import processing

    result = processing.run("cropmapper:classify", {
        **_series(slovenia), "MODEL": trained["model"], "FIELDS": slovenia["polygons"],
        "OUTPUT": str(tmp_path / "map.tif"), "OUTPUT_CONFIDENCE": str(tmp_path / "conf.tif"),
        "OUTPUT_FIELDS": str(tmp_path / "fields.gpkg"),
    })
    assert result["OUTPUT"] == str(tmp_path / "map.tif")
    layer = QgsRasterLayer(result["OUTPUT"], "map", "gdal")  # styled by its .qml when loaded
    assert {label for _v, label, _c in styling.palette_of(layer)} == CLASSES
    assert Path(result["OUTPUT_CONFIDENCE"]).is_file() and Path(result["OUTPUT_FIELDS"]).is_file()


def test_evaluate(provider, trained, slovenia, tmp_path):  # noqa: ARG001
    import processing

    mapped = processing.run("cropmapper:classify", {
        **_series(slovenia), "MODEL": trained["model"], "OUTPUT": str(tmp_path / "map.tif"),
        "OUTPUT_CONFIDENCE": None, "OUTPUT_FIELDS": None,
    })
    result = processing.run("cropmapper:evaluate", {
        "MAP": mapped["OUTPUT"], "POLYGONS": slovenia["polygons"], "CLASS_FIELD": slovenia["field"],
        "MODEL": trained["model"], "SPLIT": 3, "OUTPUT_FOLDER": str(tmp_path / "report"),
    })
    assert 0.0 <= result["OVERALL_ACCURACY"] <= 1.0 and result["KAPPA"] is not None
    assert Path(result["HTML"]).is_file() and Path(result["JSON"]).is_file()
    metrics = json.loads(Path(result["JSON"]).read_text())
    assert metrics["overall_accuracy"] == pytest.approx(result["OVERALL_ACCURACY"])


def test_mapcrops_with_existing_model(provider, trained, slovenia, tmp_path):  # noqa: ARG001
    import processing

    folder = tmp_path / "mapped"
    result = processing.run("cropmapper:mapcrops", {
        **_series(slovenia), "POLYGONS": slovenia["polygons"], "CLASS_FIELD": slovenia["field"],
        "EXISTING_MODEL": trained["model"], "OUTPUT_FOLDER": str(folder),
    })
    assert Path(result["MAP"]) == folder / "crop_map.tif" and Path(result["MAP"]).is_file()
    assert Path(result["REPORT"]).is_file() and Path(result["FIELDS"]).is_file()
    assert 0.0 <= result["OVERALL_ACCURACY"] <= 1.0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_cancel_through_feedback_leaves_no_files(provider, slovenia, tmp_path):  # noqa: ARG001
    import processing

    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda value: feedback.cancel() if value > 2 else None)
    folder = tmp_path / "cancelled"
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        processing.run("cropmapper:mapcrops", {
            **_series(slovenia), "POLYGONS": slovenia["polygons"], "CLASS_FIELD": slovenia["field"],
            "PRETRAIN": False, "EPOCHS": 50, "OUTPUT_FOLDER": str(folder),
        }, feedback=feedback)
    assert list(tmp_path.iterdir()) == []


def test_user_errors_become_plain_messages(provider, slovenia, tmp_path):  # noqa: ARG001
    import processing

    with pytest.raises(QgsProcessingException, match="fractions"):
        processing.run("cropmapper:train", {
            **_series(slovenia), "POLYGONS": slovenia["polygons"], "CLASS_FIELD": slovenia["field"],
            "VAL_FRACTION": 0.5, "TEST_FRACTION": 0.5, "OUTPUT_MODEL": str(tmp_path / "m.cropmodel"),
        })
    with pytest.raises(QgsProcessingException, match="without crop classes|pre-trained"):
        pre = tmp_path / "pre.cropmodel"
        processing.run("cropmapper:pretrain", {**_series(slovenia), "PRETRAIN_EPOCHS": 1, "STEPS_PER_EPOCH": 1,
                                               "OUTPUT_MODEL": str(pre)})
        processing.run("cropmapper:classify", {**_series(slovenia), "MODEL": str(pre),
                                               "OUTPUT": str(tmp_path / "x.tif")})
    assert not (tmp_path / "x.tif").exists()


def test_mapcrops_through_qgis_process(trained, slovenia, tmp_path):
    """Headless, as on a server: scripts/qgis_process.sh enables the plugin and runs qgis_process.bin."""
    folder = tmp_path / "headless"
    args = [str(REPO / "scripts" / "qgis_process.sh"), "--json", "run", "cropmapper:mapcrops", "--"]
    args += [f"SERIES={p}" for p in slovenia["images"]] + [f"CLOUD_MASKS={p}" for p in slovenia["masks"]]
    args += [f"POLYGONS={slovenia['polygons']}", f"CLASS_FIELD={slovenia['field']}", "PRETRAIN=false",
             "EPOCHS=1", "DEVICE=cpu", "TEST_FRACTION=0.3", f"OUTPUT_FOLDER={folder}"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    result = json.loads(out.stdout[out.stdout.index("{"):])["results"]
    assert Path(result["MAP"]).is_file() and Path(result["MODEL"]).is_file()
    assert (folder / "crop_map.qml").is_file()
    assert 0.0 <= result["OVERALL_ACCURACY"] <= 1.0


def test_qgis_process_lists_the_algorithms():
    out = subprocess.run([str(REPO / "scripts" / "qgis_process.sh"), "list"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    for name in ("pretrain", "train", "classify", "evaluate", "mapcrops", "search"):
        assert f"cropmapper:{name}" in out.stdout


def test_classify_only_inside_the_area(provider, trained, slovenia, tmp_path):  # noqa: ARG001
    import processing
    from osgeo import gdal
    from qgis.core import QgsFeature, QgsGeometry, QgsVectorLayer

    extent = QgsRasterLayer(slovenia["images"][0], "img", "gdal").extent()
    area = QgsVectorLayer("Polygon?crs=EPSG:32633", "area", "memory")
    feature = QgsFeature()
    half = extent.xMinimum() + extent.width() / 2
    feature.setGeometry(QgsGeometry.fromWkt(
        f"POLYGON(({extent.xMinimum()} {extent.yMinimum()},{half} {extent.yMinimum()},{half} {extent.yMaximum()},"
        f"{extent.xMinimum()} {extent.yMaximum()},{extent.xMinimum()} {extent.yMinimum()}))"))
    area.dataProvider().addFeature(feature)
    result = processing.run("cropmapper:classify", {
        **_series(slovenia), "MODEL": trained["model"], "AREA": area, "OUTPUT": str(tmp_path / "map.tif"),
        "OUTPUT_CONFIDENCE": None, "OUTPUT_FIELDS": None,
    })
    values = gdal.Open(result["OUTPUT"]).ReadAsArray()
    width = values.shape[1]
    assert (values[:, : width // 2 - 1] > 0).mean() > 0.5
    assert (values[:, width // 2 + 1 :] == 0).all()
