"""Styles of the results: the class palette from a class table, the confidence ramp, the field categories."""

from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal, osr
from qgis.core import QgsCategorizedSymbolRenderer, QgsRasterLayer, QgsSingleBandPseudoColorRenderer, QgsVectorLayer

from qgis.PyQt.QtCore import Qt

from cropmapper.engine.classes import ClassTable
from cropmapper.ui import styling

CLASSES = ClassTable.from_names(["maize", "winter wheat", "my odd crop"], colors={"my odd crop": (1, 2, 3)})


def _raster(path, values, dtype=gdal.GDT_Byte):
    ds = gdal.GetDriverByName("GTiff").Create(str(path), values.shape[1], values.shape[0], 1, dtype)
    ds.SetGeoTransform((500000, 10, 0, 5100000, 0, -10))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    ds.SetProjection(srs.ExportToWkt())
    ds.GetRasterBand(1).WriteArray(values)
    ds = None
    return str(path)


def test_class_map_palette_and_sidecar(tmp_path):
    path = _raster(tmp_path / "map.tif", np.array([[0, 1], [2, 3]], np.uint8))
    layer = QgsRasterLayer(path, "map", "gdal")
    styling.style_class_map(layer, CLASSES)
    assert styling.palette_of(layer) == [(1, "maize", (255, 215, 0)), (2, "winter wheat", (230, 190, 60)),
                                         (3, "my odd crop", (1, 2, 3))]
    assert styling.write_class_style(path, CLASSES) == str(tmp_path / "map.qml")
    reloaded = QgsRasterLayer(path, "again", "gdal")  # the .qml is the default style
    assert [label for _v, label, _c in styling.palette_of(reloaded)] == ["maize", "winter wheat", "my odd crop"]


def test_confidence_ramp_stretches_from_a_guess_to_certain(tmp_path):
    """Winning probabilities of 5 classes lie in 0.2..1: a 0..1 ramp left 0.40-0.77 one yellow-green."""
    path = _raster(tmp_path / "conf.tif", np.array([[0.4, 0.77]], np.float32), gdal.GDT_Float32)
    layer = QgsRasterLayer(path, "conf", "gdal")
    styling.style_confidence(layer, n_classes=5)
    renderer = layer.renderer()
    assert isinstance(renderer, QgsSingleBandPseudoColorRenderer)
    assert (renderer.classificationMin(), renderer.classificationMax()) == pytest.approx((0.2, 1.0))
    items = renderer.shader().rasterShaderFunction().colorRampItemList()
    assert "guess among 5 classes" in items[0].label and "certain" in items[-1].label
    low, high = (renderer.shader().rasterShaderFunction().shade(v)[1:4] for v in (0.4, 0.77))
    assert low != high  # the two ends of the data now get visibly different colours
    legend = [text for text, _color in renderer.legendSymbologyItems()]
    assert any("guess among 5" in t for t in legend)
    tree_legend = renderer.shader().rasterShaderFunction().legendSettings()  # the layer tree's continuous ramp
    assert "guess among 5" in tree_legend.minimumLabel() and "certain" in tree_legend.maximumLabel()
    # Without K: the layer's own range.
    styling.style_confidence(layer)
    assert (layer.renderer().classificationMin(), layer.renderer().classificationMax()) == pytest.approx((0.4, 0.77))
    # The engine's sidecar (what qgis_process and a reopened file show) has the same stretch.
    from cropmapper.engine.inference.styles import confidence_qml

    (tmp_path / "conf.qml").write_text(confidence_qml(5))
    reopened_layer = QgsRasterLayer(path, "again", "gdal")
    reopened = reopened_layer.renderer()
    assert (reopened.classificationMin(), reopened.classificationMax()) == pytest.approx((0.2, 1.0))
    assert "guess among 5" in reopened.shader().rasterShaderFunction().legendSettings().minimumLabel()


def test_field_outlines_leave_the_crop_map_visible():
    layer = QgsVectorLayer("Polygon?crs=EPSG:32633&field=crop_class:string", "f", "memory")
    assert styling.style_fields(layer, CLASSES, outlines=True)
    categories = layer.renderer().categories()  # kept: the symbols belong to these copies
    fill = categories[2].symbol().symbolLayer(0)
    assert fill.brushStyle() == Qt.NoBrush  # no fill
    assert fill.strokeColor().getRgb()[:3] == (1, 2, 3) and fill.strokeWidth() >= 0.5


def test_fields_are_categorised_by_predicted_class():
    layer = QgsVectorLayer("Polygon?crs=EPSG:32633&field=crop_class:string&field=crop_prob:double", "f", "memory")
    assert styling.style_fields(layer, CLASSES)
    renderer = layer.renderer()
    assert isinstance(renderer, QgsCategorizedSymbolRenderer) and renderer.classAttribute() == "crop_class"
    colours = {c.value(): c.symbol().color().getRgb()[:3] for c in renderer.categories()}
    assert colours["my odd crop"] == (1, 2, 3)
    plain = QgsVectorLayer("Polygon?crs=EPSG:32633&field=other:string", "g", "memory")
    assert styling.style_fields(plain, CLASSES) is False
