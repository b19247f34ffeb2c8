"""The class field a newcomer meets: no id chosen by default, every offered field readable, ids refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from qgis.core import QgsFeature, QgsGeometry, QgsProject, QgsSettings, QgsVectorFileWriter, QgsVectorLayer

from cropmapper.engine.data import RasterGrid, rasterize_fields
from cropmapper.engine.errors import EngineError
from cropmapper.ui import layers as layer_tools
from cropmapper.ui.dialog import MapCropsDialog


@pytest.fixture
def new_dialog(qgis_iface, qgis_new_project):  # noqa: ARG001
    QgsSettings().remove("cropmapper/dialog")
    dlg = MapCropsDialog(qgis_iface)
    yield dlg
    dlg.close()


def _shapefile(tmp_path: Path, rows: list[dict]) -> QgsVectorLayer:
    """Squares in EPSG:32633 with the given attributes (strings), written as a shapefile like a user's."""
    names = list(rows[0])
    spec = "&".join(f"field={n}:string" for n in names)
    memory = QgsVectorLayer(f"Polygon?crs=EPSG:32633&{spec}", "mem", "memory")
    for i, row in enumerate(rows):
        feature = QgsFeature(memory.fields())
        feature.setAttributes([row[n] for n in names])
        x = 500000 + 100 * i
        feature.setGeometry(QgsGeometry.fromWkt(f"POLYGON(({x} 5000000,{x + 50} 5000000,{x + 50} 5000050,"
                                                f"{x} 5000050,{x} 5000000))"))
        memory.dataProvider().addFeature(feature)
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "ESRI Shapefile"
    path = str(tmp_path / "fields.shp")
    error, message, _p, _l = QgsVectorFileWriter.writeAsVectorFormatV3(
        memory, path, QgsProject.instance().transformContext(), options)
    assert error == QgsVectorFileWriter.NoError, message
    layer = QgsVectorLayer(path, "fields", "ogr")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    return layer


def test_geopackage_starts_with_the_class_field_not_fid(new_dialog, slovenia):
    layer = QgsVectorLayer(slovenia["polygons"], "LULC", "ogr")
    QgsProject.instance().addMapLayer(layer)
    assert layer.fields().names()[0] == "fid"  # what the combo box used to pick
    new_dialog.set_polygons(layer)
    # index is unique, DATE holds dates: neither is a class; LULC_NAME repeats.
    assert new_dialog.class_field_combo.currentField() == "LULC_NAME"
    assert "5 classes" in new_dialog.class_preview.text()


def test_shapefile_with_only_an_id_starts_empty_and_an_id_is_refused(new_dialog, tmp_path):
    layer = _shapefile(tmp_path, [{"index": str(i), "DATE": "2020-05-0%d" % (1 + i % 2)} for i in range(6)])
    new_dialog.set_polygons(layer)
    assert new_dialog.class_field_combo.currentField() == ""
    assert any("Choose the class field" in p for p in new_dialog.check())
    new_dialog.class_field_combo.setField("index")
    assert "looks like an id" in new_dialog.class_preview.text()
    assert any("has its own value in 'index'" in p for p in new_dialog.check())


def test_shapefile_picks_the_repeating_text_field(new_dialog, tmp_path):
    crops = ["maize", "wheat", "maize", "wheat", "barley", "barley"]
    layer = _shapefile(tmp_path, [{"index": str(i), "kultura": c} for i, c in enumerate(crops)])
    new_dialog.set_polygons(layer)
    assert new_dialog.class_field_combo.currentField() == "kultura"
    assert not any("own value" in p for p in new_dialog.check())


def test_every_field_offered_is_one_the_engine_reads(new_dialog, slovenia):
    """``fid`` of a GeoPackage is offered by QGIS's field box; the engine must read it (it used to say 'no field')."""
    from osgeo import gdal

    layer = QgsVectorLayer(slovenia["polygons"], "LULC", "ogr")
    QgsProject.instance().addMapLayer(layer)
    new_dialog.set_polygons(layer)
    grid = RasterGrid.from_dataset(gdal.Open(slovenia["images"][0]))
    offered = [new_dialog.class_field_combo.model().index(r, 0).data()
               for r in range(new_dialog.class_field_combo.count())]
    assert "fid" in offered
    new_dialog.class_field_combo.setField("fid")
    labels = new_dialog.label_input()
    # Some of the 88 parcels are smaller than a pixel: the engine now names the real problem, not a missing field.
    with pytest.raises(EngineError, match=r"own class in 'fid' \(88 classes for 88 polygons\).*id rather than"):
        rasterize_fields(labels.path, grid, labels.class_field, layer=labels.layer)
    assert len(layer_tools.class_counts(layer, "fid")) == 88


def test_a_virtual_field_is_exported_so_the_engine_reads_it(new_dialog, slovenia, tmp_path):
    from qgis.core import QgsField
    from qgis.PyQt.QtCore import QVariant

    layer = QgsVectorLayer(slovenia["polygons"], "LULC", "ogr")
    QgsProject.instance().addMapLayer(layer)
    layer.addExpressionField("upper(\"LULC_NAME\")", QgsField("CLASS_UPPER", QVariant.String))
    new_dialog.set_polygons(layer, "CLASS_UPPER")
    labels = new_dialog.label_input(export_dir=str(tmp_path))
    assert labels.path != slovenia["polygons"] and labels.path.startswith(str(tmp_path))
    exported = QgsVectorLayer(f"{labels.path}|layername={labels.layer}", "x", "ogr")
    assert "FOREST" in {f["CLASS_UPPER"] for f in exported.getFeatures()}
    new_dialog.class_field_combo.setField("LULC_NAME")
    assert new_dialog.label_input().path == slovenia["polygons"]  # a field of the file: read in place
