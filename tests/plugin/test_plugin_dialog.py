"""The Map crops dialog on the real Slovenia slice: checks, a full run with styled results, cancel, settings."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsPalettedRasterRenderer,
    QgsProject,
    QgsRasterLayer,
    QgsRendererCategory,
    QgsSettings,
    QgsSingleBandPseudoColorRenderer,
    QgsSymbol,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QColor

from cropmapper.ui.dialog import MapCropsDialog
from cropmapper.ui.tasks import Status

CLASSES = {"forest", "grassland", "schrubland", "artificial surface", "cultivated land"}  # sic, as in the data


@pytest.fixture
def polygons(slovenia, qgis_new_project) -> QgsVectorLayer:  # noqa: ARG001 - a fresh project per test
    layer = QgsVectorLayer(slovenia["polygons"], "fields", "ogr")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    return layer


@pytest.fixture
def dialog(qgis_iface, polygons, slovenia, tmp_path, wait_for):
    QgsSettings().remove("cropmapper/dialog")  # remembered settings of earlier runs must not leak in
    dlg = MapCropsDialog(qgis_iface)
    dlg.add_series_files(list(reversed(slovenia["images"])))  # sorted by the dialog
    dlg.add_mask_files(slovenia["masks"])
    dlg.mask_combo.setCurrentIndex(dlg.mask_combo.findData("cloud"))
    dlg.set_polygons(polygons, slovenia["field"])
    dlg.pretrain_box.setChecked(False)
    dlg.epochs_spin.setValue(1)
    dlg.preset_combo.setCurrentIndex(dlg.preset_combo.findData("lite"))
    dlg.test_fraction_spin.setValue(0.3)
    dlg.device_combo.setCurrentIndex(dlg.device_combo.findData("cpu"))
    dlg.output_folder.setFilePath(str(tmp_path / "out"))
    dlg.run_name.setText("run1")
    yield dlg
    if dlg.task is not None:
        dlg.cancel()
        wait_for(lambda: dlg.task is None)
    dlg.close()


def test_series_rows_show_sorted_parsed_dates(dialog, slovenia):
    dates = [dialog.row_date(r) for r in range(dialog.series_table.rowCount())]
    assert len(dates) == 4 and all(dates) and dates == sorted(dates)
    assert dialog.series_paths() == slovenia["images"]  # file names sort like their dates
    masks = [dialog.series_table.item(r, 3).text() for r in range(4)]
    assert [m.split("_")[1] for m in masks] == [Path(p).name.split("_")[1] for p in slovenia["images"]]
    series = dialog.series_input()
    assert series.dates is None and series.cloud_masks == slovenia["masks"]
    dialog.set_row_date(0, dt.date(2000, 1, 2))  # an edited date goes to the engine and re-sorts
    assert dialog.row_date(0) == dt.date(2000, 1, 2)
    assert dialog.series_input().dates[0] == dt.date(2000, 1, 2)


def test_checks_explain_what_is_missing(qgis_iface, polygons, tmp_path):
    QgsSettings().remove("cropmapper/dialog")
    dlg = MapCropsDialog(qgis_iface)
    dlg.output_folder.setFilePath("")
    dlg.train_radio.setChecked(True)
    problems = dlg.check()
    assert any("Add the time series" in p for p in problems)
    assert any("output folder" in p for p in problems)
    assert any("polygon layer" in p for p in problems)
    assert dlg.start() is None and "Cannot run yet" in dlg.status.text()

    empty = QgsVectorLayer("Polygon?crs=EPSG:32633&field=crop:string", "empty", "memory")
    QgsProject.instance().addMapLayer(empty)
    dlg.set_polygons(empty, "crop")
    assert any("is empty" in p for p in dlg.check())

    far = QgsVectorLayer("Polygon?crs=EPSG:4326&field=crop:string", "far", "memory")
    from qgis.core import QgsFeature, QgsGeometry

    for name, x in (("a", 100.0), ("b", 101.0)):
        feature = QgsFeature(far.fields())
        feature.setAttributes([name])
        feature.setGeometry(QgsGeometry.fromWkt(f"POLYGON(({x} 0,{x + 0.5} 0,{x + 0.5} 0.5,{x} 0.5,{x} 0))"))
        far.dataProvider().addFeature(feature)
    far.updateExtents()
    QgsProject.instance().addMapLayer(far)
    dlg.add_series_files([str(Path(polygons.source().split("|")[0]).parent / "lulc_labels.tif")])
    dlg.set_polygons(far, "crop")
    assert any("lie outside the images" in p for p in dlg.check())
    dlg.close()


def test_class_colours_come_from_a_categorised_renderer(dialog, polygons):
    categories = []
    for name, color in (("forest", "#0a5a14"), ("grassland", "#aadd55")):
        symbol = QgsSymbol.defaultSymbol(polygons.geometryType())
        symbol.setColor(QColor(color))
        categories.append(QgsRendererCategory(name, symbol, name))
    polygons.setRenderer(QgsCategorizedSymbolRenderer("LULC_NAME", categories))
    dialog.set_polygons(polygons, "LULC_NAME")
    labels = dialog.label_input()
    assert labels.colors == {"forest": (10, 90, 20), "grassland": (170, 221, 85)}
    assert "categorised style" in dialog.class_preview.text()


def test_settings_are_remembered(dialog, qgis_iface):
    dialog.epochs_spin.setValue(7)
    dialog.mask_ratio_spin.setValue(0.55)
    dialog.save_settings()
    again = MapCropsDialog(qgis_iface)
    assert again.epochs_spin.value() == 7
    assert again.mask_ratio_spin.value() == pytest.approx(0.55)
    assert again.mask_combo.currentData() == "cloud"
    again.close()
    QgsSettings().remove("cropmapper/dialog")


@pytest.mark.slow
def test_run_adds_styled_results(dialog, tmp_path, wait_for):
    assert not dialog.output_checks["probabilities"].isChecked()  # K bands: asked for, not imposed
    dialog.output_checks["probabilities"].setChecked(True)
    task = dialog.start()
    assert task is not None, dialog.status.text()
    wait_for(lambda: dialog.last_result is not None)
    result = dialog.last_result
    assert result.status is Status.SUCCESS, result.message + result.details
    final = tmp_path / "out" / "run1"
    assert (final / "crop_map.tif").is_file() and (final / "model.cropmodel").is_file()
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no staging left

    group = QgsProject.instance().layerTreeRoot().findGroup("run1")
    assert group is not None
    ordered = [node.layer().name() for node in group.findLayers()]
    # Named after the run; the field outlines lie above the crop map, which they no longer hide.
    assert ordered == ["Fields: predicted class (run1)", "Crop map (run1)", "Confidence (run1)",
                       "Class probabilities (run1)"]
    assert (final / "probabilities.tif").is_file()
    layers = {node.layer().name().split(" (")[0]: node.layer() for node in group.findLayers()}
    class_map = layers["Crop map"]
    assert isinstance(class_map.renderer(), QgsPalettedRasterRenderer)
    names = {c.label for c in class_map.renderer().classes()}
    assert names == CLASSES
    confidence = layers["Confidence"].renderer()
    assert isinstance(confidence, QgsSingleBandPseudoColorRenderer)
    assert confidence.classificationMin() == pytest.approx(1 / len(CLASSES))  # stretched from a guess among K
    fields_layer = layers["Fields: predicted class"]
    fields_renderer = fields_layer.renderer()
    assert isinstance(fields_renderer, QgsCategorizedSymbolRenderer)
    categories = fields_renderer.categories()
    assert {c.value() for c in categories} == CLASSES
    assert all(c.symbol().symbolLayer(0).brushStyle() == Qt.NoBrush for c in categories)  # outlines only
    # Which fields went to training, validation and test.
    splits = {f["crop_split"] for f in fields_layer.getFeatures()}
    assert {"train", "val", "test"} <= splits

    html = dialog.results_view.toHtml()
    for word in ("overall accuracy", "mIoU", "kappa", "forest", "Open the full HTML report", "Test fields",
                 "crop_split", "Trust in these scores", "test pixels"):
        assert word in html, word
    assert (final / "report").is_dir()
    assert dialog.progress.value() == 100
    # The report and the model name the final files, not the hidden staging folder removed after the run.
    import json

    metrics = json.loads((final / "report" / "metrics.json").read_text())
    assert metrics["map"] == str(final / "crop_map.tif") and Path(metrics["map"]).is_file()
    assert ".partial" not in (final / "report" / "report.html").read_text()


@pytest.mark.slow
def test_cancel_mid_run_leaves_no_files(dialog, tmp_path, wait_for):
    dialog.epochs_spin.setValue(50)
    task = dialog.start()
    assert task is not None, dialog.status.text()
    wait_for(lambda: dialog.progress.value() >= 5 or dialog.last_result is not None)
    dialog.cancel()
    wait_for(lambda: dialog.last_result is not None)
    assert dialog.last_result.status is Status.CANCELLED
    out = tmp_path / "out"
    leftovers = [str(p) for p in out.rglob("*")] if out.exists() else []
    assert leftovers == []
    assert QgsProject.instance().layerTreeRoot().findGroup("run1") is None
    assert "cancelled" in dialog.results_view.toPlainText()  # not the results of an earlier run


def test_project_raster_layers_are_added_by_their_files(qgis_iface, slovenia, qgis_new_project):  # noqa: ARG001
    dlg = MapCropsDialog(qgis_iface)
    layers = [QgsRasterLayer(p, Path(p).stem, "gdal") for p in slovenia["images"][:2]]
    memory = QgsVectorLayer("Point?crs=EPSG:4326", "not a raster", "memory")
    dlg.add_series_layers(layers)
    assert dlg.series_paths() == slovenia["images"][:2]
    from cropmapper.ui import layers as layer_tools

    with pytest.raises(layer_tools.LayerError, match="not a raster file"):
        layer_tools.raster_path(memory)
    dlg.close()


def test_memory_polygons_are_exported_for_the_engine(tmp_path, qgis_new_project):  # noqa: ARG001
    from qgis.core import QgsFeature, QgsGeometry

    from cropmapper.ui import layers as layer_tools

    memory = QgsVectorLayer("Polygon?crs=EPSG:32633&field=crop:string", "my fields", "memory")
    feature = QgsFeature(memory.fields())
    feature.setAttributes(["maize"])
    feature.setGeometry(QgsGeometry.fromWkt("POLYGON((0 0,10 0,10 10,0 10,0 0))"))
    memory.dataProvider().addFeature(feature)
    path, name = layer_tools.vector_path(memory, export_dir=str(tmp_path))
    exported = QgsVectorLayer(f"{path}|layername={name}", "x", "ogr")
    assert exported.isValid() and exported.featureCount() == 1
    assert [f["crop"] for f in exported.getFeatures()] == ["maize"]


def test_engine_error_reaches_the_dialog_and_message_bar(dialog, qgis_iface, tmp_path, wait_for):
    from qgis.core import Qgis

    broken = tmp_path / "broken.cropmodel"
    broken.write_bytes(b"this is not a model")
    dialog.existing_radio.setChecked(True)
    dialog.existing_model.setFilePath(str(broken))
    dialog.set_polygons(None)
    qgis_iface.messageBar().clear_messages()
    assert dialog.start() is not None, dialog.status.text()
    wait_for(lambda: dialog.last_result is not None)
    result = dialog.last_result
    assert result.status is Status.FAILURE
    assert "Traceback" not in result.message and "broken.cropmodel" in result.message
    assert "Failed" in dialog.status.text()
    assert any("broken.cropmodel" in m for m in qgis_iface.messageBar().get_messages(Qgis.Critical))
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
