"""Styles of the results: the class palette from a class table, the confidence ramp, the field categories."""

from __future__ import annotations

import numpy as np
from osgeo import gdal, osr
from qgis.core import QgsCategorizedSymbolRenderer, QgsRasterLayer, QgsSingleBandPseudoColorRenderer, QgsVectorLayer

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


def test_confidence_ramp(tmp_path):
    path = _raster(tmp_path / "conf.tif", np.array([[0.2, 0.9]], np.float32), gdal.GDT_Float32)
    layer = QgsRasterLayer(path, "conf", "gdal")
    styling.style_confidence(layer)
    renderer = layer.renderer()
    assert isinstance(renderer, QgsSingleBandPseudoColorRenderer)
    assert (renderer.classificationMin(), renderer.classificationMax()) == (0.0, 1.0)


def test_fields_are_categorised_by_predicted_class():
    layer = QgsVectorLayer("Polygon?crs=EPSG:32633&field=crop_class:string&field=crop_prob:double", "f", "memory")
    assert styling.style_fields(layer, CLASSES)
    renderer = layer.renderer()
    assert isinstance(renderer, QgsCategorizedSymbolRenderer) and renderer.classAttribute() == "crop_class"
    colours = {c.value(): c.symbol().color().getRgb()[:3] for c in renderer.categories()}
    assert colours["my odd crop"] == (1, 2, 3)
    plain = QgsVectorLayer("Polygon?crs=EPSG:32633&field=other:string", "g", "memory")
    assert styling.style_fields(plain, CLASSES) is False
