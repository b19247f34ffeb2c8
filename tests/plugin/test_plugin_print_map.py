"""The printable map in real QGIS (offscreen): a one-page PDF, a PNG whose legend holds the class colours, and the
layout saved in the project."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from osgeo import gdal, osr
from qgis.core import QgsProject, QgsRasterLayer
from qgis.PyQt.QtGui import QColor, QImage

from cropmapper.engine.classes import ClassTable
from cropmapper.engine.inference.styles import write_class_style
from cropmapper.engine.map_summary import map_summary
from cropmapper.ui import export_map, styling

CLASSES = ClassTable.from_names(["winter wheat", "maize", "vineyards"])


def write_map(path) -> str:
    data = np.zeros((60, 90), np.uint8)
    data[:, :30], data[:, 30:60], data[:, 60:] = 1, 2, 3
    data[:5, :5] = 0
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32631)
    ds = gdal.GetDriverByName("GTiff").Create(str(path), 90, 60, 1, gdal.GDT_Byte)
    ds.SetGeoTransform((500000, 10, 0, 4800000, 0, -10))
    ds.SetProjection(srs.ExportToWkt())
    ds.GetRasterBand(1).WriteArray(data)
    ds.GetRasterBand(1).SetNoDataValue(0)
    ds = None
    write_class_style(path, CLASSES)
    return str(path)


def test_export_map_pdf_png_and_layout(qgis_iface, tmp_path):  # noqa: ARG001 - a running QGIS
    map_path = write_map(tmp_path / "crop_map.tif")
    report = tmp_path / "metrics.json"
    report.write_text(json.dumps({"overall_accuracy": 0.91, "miou": 0.8, "kappa": 0.85, "split": "test", "pixels": 500,
                                  "area_estimates": {"per_class": [
                                      {"name": "maize", "adjusted_area_ha": 19.5, "ci95_ha": 1.25}]}}))
    summary = map_summary(map_path, str(report), dates=["2021-04-01", "2021-09-30", "2021-06-01"])
    assert [r["mapped_area_ha"] for r in summary["classes"]] == pytest.approx([17.75, 18.0, 18.0])
    assert summary["first_date"] == "2021-04-01" and summary["last_date"] == "2021-09-30"
    layer = QgsRasterLayer(map_path, "Crop map", "gdal")
    styling.style_class_map(layer, CLASSES)
    QgsProject.instance().addMapLayer(layer)
    layout = export_map.build_layout(layer, summary, "Crops 2021")
    again = export_map.build_layout(layer, summary, "Crops 2021")  # replaces the first, keeps one
    assert QgsProject.instance().layoutManager().layoutByName(export_map.DEFAULT_LAYOUT_NAME) is again
    assert len([x for x in QgsProject.instance().layoutManager().layouts()
                if x.name() == export_map.DEFAULT_LAYOUT_NAME]) == 1
    layout = again
    for item_id in ("map", "legend", "scalebar", "north_arrow", "title", "facts"):
        assert layout.itemById(item_id) is not None, item_id
    legend = layout.itemById("legend")
    nodes = legend.model().layerLegendNodes(legend.model().rootGroup().children()[0])
    assert [n.data(0) for n in nodes] == ["winter wheat: 17.8 ha", "maize: 18.0 ha mapped, 19.5 ± 1.2 ha adjusted",
                                          "vineyards: 18.0 ha"]
    map_item = layout.itemById("map")
    assert map_item.extent().contains(layer.extent()) and map_item.crs().authid() == "EPSG:32631"
    facts = layout.itemById("facts").text()
    assert "2021-04-01 to 2021-09-30" in facts and "EPSG:32631" in facts and "OA 0.910" in facts

    pdf, png = export_map.export_layout(layout, str(tmp_path / "map.pdf"), str(tmp_path / "map.png"))
    with open(pdf, "rb") as handle:
        content = handle.read()
    # QGIS appends the georeferencing as an incremental update, so the page tree can be written twice: every
    # version counts one page, and GDAL (which lists further pages as subdatasets) sees one.
    counts = re.findall(rb"/Type\s*/Pages\b[^>]*?/Count\s*(\d+)|/Count\s*(\d+)[^>]*?/Type\s*/Pages\b", content)
    assert content.startswith(b"%PDF") and counts and all(int(a or b) == 1 for a, b in counts)
    assert not gdal.Open(pdf).GetMetadata("SUBDATASETS")
    image = QImage(png)
    assert not image.isNull() and abs(image.width() - 297 / 25.4 * export_map.PNG_DPI) <= 1
    box = export_map.item_rect_px(layout, "legend").toRect().intersected(image.rect())
    found = set()
    for y in range(box.top(), box.bottom(), 2):
        for x in range(box.left(), box.right(), 2):
            c = QColor(image.pixel(x, y))
            found.add((c.red(), c.green(), c.blue()))
    for info in CLASSES:
        assert tuple(info.color) in found, info.name
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_exportmap_algorithm(provider, tmp_path):  # noqa: ARG001
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    map_path = write_map(tmp_path / "crop_map.tif")
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    result = processing.run("cropmapper:exportmap", {
        "MAP": map_path, "TITLE": "Herault 2018", "OUTPUT_PDF": str(tmp_path / "out.pdf"),
        "OUTPUT_PNG": str(tmp_path / "out.png"),
    }, context=context, feedback=QgsProcessingFeedback())
    with open(result["OUTPUT_PDF"], "rb") as handle:
        assert handle.read(4) == b"%PDF"
    assert QImage(result["OUTPUT_PNG"]).width() > 1000
    layout = QgsProject.instance().layoutManager().layoutByName(export_map.DEFAULT_LAYOUT_NAME)
    assert layout is not None and layout.itemById("title").text() == "Herault 2018"
