"""Layer <-> file plumbing: paths of project layers for the engine, class colours from a categorised renderer,
and loading the results into the project in one group."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Optional

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsCsException,
    QgsFields,
    QgsLayerTreeGroup,
    QgsMapLayer,
    QgsProject,
    QgsProviderRegistry,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorFileWriter,
    QgsVectorLayer,
)

from qgis.PyQt.QtCore import QVariant

from ..engine.classes import ClassTable
from . import styling

Color = tuple[int, int, int]


class LayerError(ValueError):
    """A layer the engine cannot read (with a message for the user)."""


def raster_path(layer: QgsRasterLayer) -> str:
    """The file behind a GDAL raster layer."""
    if layer.providerType() != "gdal":
        raise LayerError(f"Layer '{layer.name()}' is not a raster file (provider {layer.providerType()}).")
    parts = QgsProviderRegistry.instance().decodeUri("gdal", layer.source())
    return parts.get("path") or layer.source()


def vector_path(layer: QgsVectorLayer, export_dir: Optional[str] = None,
                field: Optional[str] = None) -> tuple[str, Optional[str]]:
    """(file, layer name) of a vector layer; a layer that is not a plain OGR file (memory, subset, web), or whose
    ``field`` exists only in QGIS (a virtual, joined or unsaved field), is exported to a GeoPackage in ``export_dir``
    first, so the engine reads what QGIS shows."""
    if layer.providerType() == "ogr" and not layer.subsetString() and not _qgis_only_field(layer, field):
        parts = QgsProviderRegistry.instance().decodeUri("ogr", layer.source())
        path = parts.get("path")
        if path and Path(path).is_file():
            return path, parts.get("layerName") or None
    folder = Path(export_dir or tempfile.mkdtemp(prefix="cropmapper_"))
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{_safe(layer.name())}.gpkg"
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.layerName = _safe(layer.name())
    error, message, _path, _layer = QgsVectorFileWriter.writeAsVectorFormatV3(
        layer, str(target), QgsProject.instance().transformContext(), options
    )
    if error != QgsVectorFileWriter.NoError:
        raise LayerError(f"Cannot export layer '{layer.name()}' for the engine: {message}")
    return str(target), options.layerName


def _qgis_only_field(layer: QgsVectorLayer, field: Optional[str]) -> bool:
    index = layer.fields().indexOf(field) if field else -1
    return index >= 0 and layer.fields().fieldOrigin(index) in (QgsFields.OriginExpression, QgsFields.OriginJoin,
                                                                  QgsFields.OriginEdit)


def categorized_colors(layer: QgsVectorLayer, field: str) -> dict[str, Color]:
    """Class name -> RGB from the layer's categorised renderer when it classifies ``field``; empty otherwise."""
    renderer = layer.renderer()
    if not isinstance(renderer, QgsCategorizedSymbolRenderer) or renderer.classAttribute() != field:
        return {}
    colors: dict[str, Color] = {}
    for category in renderer.categories():
        value = category.value()
        if value is None or str(value) == "" or category.symbol() is None:
            continue
        color = category.symbol().color()
        colors[str(value)] = (color.red(), color.green(), color.blue())
    return colors


def class_counts(layer: QgsVectorLayer, field: str) -> dict[str, int]:
    """Number of polygons per non-empty class value of ``field``."""
    index = layer.fields().indexOf(field)
    if index < 0:
        return {}
    counts: dict[str, int] = {}
    for feature in layer.getFeatures():
        value = feature.attribute(index)
        if value is None or str(value).strip() == "" or (hasattr(value, "isNull") and value.isNull()):
            continue
        counts[str(value)] = counts.get(str(value), 0) + 1
    return counts


CLASS_FIELD_HINTS = ("crop", "class", "culture", "lulc", "landuse", "land_use", "type", "label", "name", "code")


def guess_class_field(layer: Optional[QgsVectorLayer], sample: int = 5000) -> str:
    """The field most likely to hold the crop class; empty when none looks like one (the user then chooses).

    The field the layer's categorised style classifies, else a text field whose values repeat (ids and single parcel
    names do not) and are not numbers or dates, preferring names such as ``crop`` or ``class``.
    """
    if layer is None:
        return ""
    renderer = layer.renderer()
    if isinstance(renderer, QgsCategorizedSymbolRenderer) and layer.fields().indexOf(renderer.classAttribute()) >= 0:
        return renderer.classAttribute()
    candidates = [f.name() for f in layer.fields() if f.type() == QVariant.String and _looks_like_classes(
        layer, f.name(), sample)]
    for name in candidates:
        if any(hint in name.lower() for hint in CLASS_FIELD_HINTS):
            return name
    return candidates[0] if candidates else ""


def _looks_like_classes(layer: QgsVectorLayer, field: str, sample: int) -> bool:
    values = []
    for n, feature in enumerate(layer.getFeatures()):
        if n >= sample:
            break
        value = feature.attribute(field)
        if value is not None and not (hasattr(value, "isNull") and value.isNull()) and str(value).strip():
            values.append(str(value).strip())
    if len(values) < 2 or len(set(values)) == len(values):
        return False
    return not all(_is_number_or_date(v) for v in set(values))


def _is_number_or_date(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        pass
    try:
        dt.date.fromisoformat(text[:10])
        return True
    except ValueError:
        return False


def is_one_class_per_polygon(counts: dict[str, int]) -> bool:
    """True when every polygon has its own class (an id field, not a crop class), for three or more polygons."""
    return len(counts) >= 3 and all(count == 1 for count in counts.values())


def extent_in(layer: QgsMapLayer, crs: QgsCoordinateReferenceSystem) -> Optional[QgsRectangle]:
    """The layer's extent in ``crs``; None when it cannot be transformed there (far outside that CRS's area)."""
    if layer.crs() == crs:
        return layer.extent()
    transform = QgsCoordinateTransform(layer.crs(), crs, QgsProject.instance())
    try:
        return transform.transformBoundingBox(layer.extent())
    except QgsCsException:
        return None


RESULT_NAMES = {"map": "Crop map", "confidence": "Confidence", "fields": "Fields: predicted class",
                "probabilities": "Class probabilities", "uncertainty": "Uncertainty",
                "suggestions": "Fields to label next"}


def result_layer_name(kind: str, run_name: str) -> str:
    """``Crop map (run1)``: the run's name tells apart the layers of several runs in the layer lists."""
    return f"{RESULT_NAMES[kind]} ({run_name})"


def add_results(
    group_name: str,
    classes: ClassTable,
    map_path: str,
    confidence_path: Optional[str] = None,
    fields_path: Optional[str] = None,
    project: Optional[QgsProject] = None,
    probabilities_path: Optional[str] = None,
    uncertainty_path: Optional[str] = None,
    suggestions_path: Optional[str] = None,
) -> tuple[QgsLayerTreeGroup, list[QgsMapLayer]]:
    """Adds the styled results to the top of the layer tree in one group named after the run; returns the group and
    its layers (top to bottom: field outlines coloured by predicted class, crop map, confidence switched off)."""
    project = project or QgsProject.instance()
    root = project.layerTreeRoot()
    group = root.insertGroup(0, group_name)
    layers: list[QgsMapLayer] = []
    if suggestions_path:
        suggested = QgsVectorLayer(f"{suggestions_path}|layername=suggested_fields",
                                   result_layer_name("suggestions", group_name), "ogr")
        if suggested.isValid():
            styling.style_suggestions(suggested)
            layers.append(suggested)
    if fields_path:
        fields = QgsVectorLayer(fields_path, result_layer_name("fields", group_name), "ogr")
        if fields.isValid():
            styling.style_fields(fields, classes, outlines=True)  # filled polygons would hide the crop map
            layers.append(fields)
    class_map = QgsRasterLayer(map_path, result_layer_name("map", group_name), "gdal")
    if not class_map.isValid():
        raise LayerError(f"QGIS cannot open the crop map '{map_path}'.")
    styling.style_class_map(class_map, classes)
    layers.append(class_map)
    confidence = None
    if confidence_path:
        confidence = QgsRasterLayer(confidence_path, result_layer_name("confidence", group_name), "gdal")
        if confidence.isValid():
            styling.style_confidence(confidence, len(classes))
            confidence.setOpacity(1.0)
            layers.append(confidence)
    uncertainty = None
    if uncertainty_path:
        uncertainty = QgsRasterLayer(uncertainty_path, result_layer_name("uncertainty", group_name), "gdal")
        if uncertainty.isValid():
            styling.style_uncertainty(uncertainty)
            layers.append(uncertainty)
    probabilities = None
    if probabilities_path:
        probabilities = QgsRasterLayer(probabilities_path, result_layer_name("probabilities", group_name), "gdal")
        if probabilities.isValid():
            layers.append(probabilities)
    for layer in layers:
        project.addMapLayer(layer, False)
        node = group.addLayer(layer)
        if layer in (confidence, uncertainty, probabilities):
            node.setItemVisibilityChecked(False)  # the class map is what the user wants to see first
    return group, layers


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name) or "layer"
