"""A printable crop map: a QGIS print layout (map, parcels, legend with class areas, title, dates, scale bar, north
arrow, CRS, accuracy) saved in the project, exported to PDF and PNG.

The layout is built from layers already styled in the project and from ``engine.map_summary`` (class areas from the
map, accuracy and error-adjusted areas from the report, the series' dates from the model). It replaces any layout of
the same name in the project, so exporting again keeps one editable layout per result.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Optional

from qgis.core import (
    QgsLayoutExporter,
    QgsLayoutItemLabel,
    QgsLayoutItemLegend,
    QgsLayoutItemMap,
    QgsLayoutItemPicture,
    QgsLayoutItemScaleBar,
    QgsLayoutPoint,
    QgsLayoutSize,
    QgsMapLayerLegendUtils,
    QgsPrintLayout,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsSymbolLayerUtils,
    QgsUnitTypes,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QRectF, Qt
from qgis.PyQt.QtGui import QFont

from ..engine.atomic import atomic_output
from ..engine.errors import EngineError

DEFAULT_LAYOUT_NAME = "CropMapper map"
PNG_DPI = 150
_MM = QgsUnitTypes.LayoutMillimeters
# A4 landscape: map on the left, the legend and the facts in a column on the right.
PAGE_W, PAGE_H, MARGIN, COLUMN = 297.0, 210.0, 10.0, 85.0


def build_layout(class_map: QgsRasterLayer, summary: dict, title: str, fields: Optional[QgsVectorLayer] = None,
                 project: Optional[QgsProject] = None, name: str = DEFAULT_LAYOUT_NAME) -> QgsPrintLayout:
    """The one-page layout, added to ``project``'s layout manager (replacing a layout named ``name``)."""
    project = project or QgsProject.instance()
    layout = QgsPrintLayout(project)
    layout.initializeDefaults()  # one A4 landscape page
    layout.setName(name)
    map_w = PAGE_W - 3 * MARGIN - COLUMN
    map_top = MARGIN + 14
    map_item = QgsLayoutItemMap(layout)
    map_item.setId("map")
    layout.addLayoutItem(map_item)
    map_item.attemptMove(QgsLayoutPoint(MARGIN, map_top, _MM))
    map_item.setCrs(class_map.crs())
    layers = [layer for layer in (fields, class_map) if layer is not None]  # drawn top first
    map_item.setLayers(layers)
    map_item.setKeepLayerSet(True)
    frame_h = PAGE_H - map_top - MARGIN - 14
    map_item.attemptResize(QgsLayoutSize(map_w, frame_h, _MM))
    # setExtent fits the frame to the extent's shape, so the extent is first widened to the frame's shape.
    map_item.setExtent(_fit(class_map.extent(), map_w / frame_h))
    map_item.setFrameEnabled(True)

    _label(layout, title, MARGIN, MARGIN, PAGE_W - 2 * MARGIN, 11, size=18, bold=True, item_id="title")
    column_x = PAGE_W - MARGIN - COLUMN
    legend = _legend(layout, map_item, class_map, summary, column_x, map_top)
    legend.setId("legend")

    facts = _facts(summary, class_map)
    _label(layout, facts, column_x, PAGE_H - MARGIN - 62, COLUMN, 60, size=8, item_id="facts")

    bar = QgsLayoutItemScaleBar(layout)
    bar.setStyle("Single Box")
    bar.setLinkedMap(map_item)
    bar.applyDefaultSize()
    bar.attemptMove(QgsLayoutPoint(MARGIN, PAGE_H - MARGIN - 11, _MM))
    bar.setId("scalebar")
    layout.addLayoutItem(bar)

    arrow_path = QgsSymbolLayerUtils.svgSymbolNameToPath("arrows/NorthArrow_02.svg", project.pathResolver())
    if arrow_path and Path(arrow_path).exists():
        arrow = QgsLayoutItemPicture(layout)
        arrow.setPicturePath(arrow_path)
        arrow.setLinkedMap(map_item)  # rotates with the map
        arrow.attemptMove(QgsLayoutPoint(MARGIN + map_w - 14, map_top + 2, _MM))
        arrow.attemptResize(QgsLayoutSize(12, 12, _MM))
        arrow.setId("north_arrow")
        layout.addLayoutItem(arrow)

    manager = project.layoutManager()
    old = manager.layoutByName(name)
    if old is not None:
        manager.removeLayout(old)
    if not manager.addLayout(layout):
        raise EngineError(f"QGIS could not add the print layout '{name}' to the project.")
    return layout


def _fit(extent: QgsRectangle, aspect: float) -> QgsRectangle:
    """``extent`` grown about its centre to the width / height ratio ``aspect``, with a 3 % margin."""
    w, h = extent.width() * 1.03, extent.height() * 1.03
    if w / max(h, 1e-12) < aspect:
        w = h * aspect
    else:
        h = w / aspect
    c = extent.center()
    return QgsRectangle(c.x() - w / 2, c.y() - h / 2, c.x() + w / 2, c.y() + h / 2)


def _label(layout, text: str, x: float, y: float, w: float, h: float, size: float = 9, bold: bool = False,
           item_id: str = "") -> QgsLayoutItemLabel:
    label = QgsLayoutItemLabel(layout)
    label.setText(text)
    font = QFont()
    font.setPointSizeF(size)
    font.setBold(bold)
    label.setFont(font)
    label.attemptMove(QgsLayoutPoint(x, y, _MM))
    label.attemptResize(QgsLayoutSize(w, h, _MM))
    label.setId(item_id)
    layout.addLayoutItem(label)
    return label


def _area_text(row: dict) -> str:
    if row.get("adjusted_area_ha") is not None:
        return f"{row['mapped_area_ha']:.1f} ha mapped, {row['adjusted_area_ha']:.1f} ± {row['ci95_ha']:.1f} ha adjusted"
    return f"{row['mapped_area_ha']:.1f} ha"


def _legend(layout, map_item, class_map: QgsRasterLayer, summary: dict, x: float, y: float) -> QgsLayoutItemLegend:
    """A legend of the class map alone, one entry per class: colour, name and area."""
    legend = QgsLayoutItemLegend(layout)
    legend.setTitle("Crop classes")
    legend.setLinkedMap(map_item)
    legend.setAutoUpdateModel(False)
    root = legend.model().rootGroup()
    root.removeAllChildren()
    node = root.addLayer(class_map)
    node.setUseLayerName(False)
    node.setName("")
    by_name = {row["name"]: row for row in summary["classes"]}
    # A raster's legend starts with a node that is no class (the band name): keep only the classes, by label.
    keep = []
    for index, legend_node in enumerate(legend.model().layerLegendNodes(node)):
        row = by_name.get(str(legend_node.data(Qt.DisplayRole)))
        if row is not None:
            keep.append(index)
            QgsMapLayerLegendUtils.setLegendNodeUserLabel(node, index, f"{row['name']}: {_area_text(row)}")
    QgsMapLayerLegendUtils.setLegendNodeOrder(node, keep)
    legend.model().refreshLayerLegend(node)
    legend.setSymbolWidth(6)
    legend.setSymbolHeight(4)
    legend.attemptMove(QgsLayoutPoint(x, y, _MM))
    legend.setResizeToContents(True)
    layout.addLayoutItem(legend)
    legend.adjustBoxSize()
    return legend


def _facts(summary: dict, class_map: QgsRasterLayer) -> str:
    lines = []
    if summary.get("first_date"):
        lines.append(f"Time series: {summary['first_date']} to {summary['last_date']}")
    crs = class_map.crs()
    lines.append(f"CRS: {crs.authid() or 'custom'} {crs.description()}".strip())
    lines.append(f"Mapped area: {summary['total_mapped_area_ha']:.1f} ha")
    accuracy = summary.get("accuracy")
    if accuracy:
        def f(value):
            return "–" if value is None else f"{value:.3f}"
        lines.append(f"Accuracy on the {accuracy.get('split') or 'test'} fields ({accuracy.get('pixels') or 0} px): "
                     f"OA {f(accuracy.get('overall_accuracy'))}, mIoU {f(accuracy.get('miou'))}, "
                     f"kappa {f(accuracy.get('kappa'))}")
        if any(row.get("adjusted_area_ha") is not None for row in summary["classes"]):
            lines.append("Adjusted areas: Olofsson et al. 2014, 95 % intervals; valid for a probability sample of "
                         "reference pixels.")
    else:
        lines.append("No accuracy report.")
    lines.append(f"Made with CropMapper on {dt.date.today().isoformat()}")
    return "\n".join(lines)


def export_layout(layout: QgsPrintLayout, pdf_path: Optional[str], png_path: Optional[str],
                  dpi: int = PNG_DPI) -> tuple[Optional[str], Optional[str]]:
    """Writes the layout as a PDF and / or a PNG (each complete or not at all); returns their paths."""
    exporter = QgsLayoutExporter(layout)
    written: list[Optional[str]] = []
    for path, kind in ((pdf_path, "pdf"), (png_path, "png")):
        if not path:
            written.append(None)
            continue
        with atomic_output(path) as tmp:
            if kind == "pdf":
                settings = QgsLayoutExporter.PdfExportSettings()
                settings.rasterizeWholeImage = False
                result = exporter.exportToPdf(str(tmp), settings)
            else:
                settings = QgsLayoutExporter.ImageExportSettings()
                settings.dpi = dpi
                result = exporter.exportToImage(str(tmp), settings)
            if result != QgsLayoutExporter.Success:
                raise EngineError(f"QGIS could not write '{path}' ({exporter.errorMessage() or result}). "
                                  "Check the folder and the free disk space.")
        written.append(str(path))
    return written[0], written[1]


def item_rect_px(layout: QgsPrintLayout, item_id: str, dpi: int = PNG_DPI) -> QRectF:
    """Where a layout item lies in a PNG exported at ``dpi`` (pixels), e.g. to check the legend's colours."""
    item = layout.itemById(item_id)
    rect = item.sceneBoundingRect()  # layout units are millimetres
    scale = dpi / 25.4
    return QRectF(rect.x() * scale, rect.y() * scale, rect.width() * scale, rect.height() * scale)


def export_results(pdf_path: str, class_map: QgsRasterLayer, title: str, fields: Optional[QgsVectorLayer] = None,
                   report_json: Optional[str] = None, model_path: Optional[str] = None,
                   project: Optional[QgsProject] = None) -> tuple[str, str]:
    """The Results' *Export map...*: the layout of a result, in the project, as ``pdf_path`` and the PNG beside it."""
    from ..engine.map_summary import map_summary
    from .layers import raster_path

    summary = map_summary(raster_path(class_map), report_json, model_path)
    layout = build_layout(class_map, summary, title, fields, project)
    pdf = str(Path(pdf_path).with_suffix(".pdf"))
    written = export_layout(layout, pdf, str(Path(pdf).with_suffix(".png")))
    return written[0], written[1]


def ask_and_export(parent, state: dict) -> Optional[tuple[str, str]]:
    """Asks where to write the PDF (the PNG goes beside it) and exports; None when the user cancels."""
    from qgis.PyQt.QtWidgets import QFileDialog

    start = str(Path(state["folder"]) / "crop_map.pdf")
    path, _ = QFileDialog.getSaveFileName(parent, "Export map", start, "PDF (*.pdf)")
    if not path:
        return None
    return export_results(path, state["class_map"], state["title"], state.get("fields"), state.get("report_json"),
                          state.get("model"))
