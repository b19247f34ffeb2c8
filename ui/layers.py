"""Layer <-> file plumbing: paths of project layers for the engine, class colours from a categorised renderer,
and loading the results into the project in one group."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsCsException,
    QgsLayerTreeGroup,
    QgsMapLayer,
    QgsProject,
    QgsProviderRegistry,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorFileWriter,
    QgsVectorLayer,
)

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


def vector_path(layer: QgsVectorLayer, export_dir: Optional[str] = None) -> tuple[str, Optional[str]]:
    """(file, layer name) of a vector layer; a layer that is not a plain OGR file (memory, subset, web) is exported to
    a GeoPackage in ``export_dir`` first."""
    if layer.providerType() == "ogr" and not layer.subsetString():
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


def extent_in(layer: QgsMapLayer, crs: QgsCoordinateReferenceSystem) -> Optional[QgsRectangle]:
    """The layer's extent in ``crs``; None when it cannot be transformed there (far outside that CRS's area)."""
    if layer.crs() == crs:
        return layer.extent()
    transform = QgsCoordinateTransform(layer.crs(), crs, QgsProject.instance())
    try:
        return transform.transformBoundingBox(layer.extent())
    except QgsCsException:
        return None


def add_results(
    group_name: str,
    classes: ClassTable,
    map_path: str,
    confidence_path: Optional[str] = None,
    fields_path: Optional[str] = None,
    project: Optional[QgsProject] = None,
    uncertainty_path: Optional[str] = None,
    suggestions_path: Optional[str] = None,
) -> tuple[QgsLayerTreeGroup, list[QgsMapLayer]]:
    """Adds the styled results to the top of the layer tree in one group; returns the group and its layers."""
    project = project or QgsProject.instance()
    root = project.layerTreeRoot()
    group = root.insertGroup(0, group_name)
    layers: list[QgsMapLayer] = []
    if suggestions_path:
        suggested = QgsVectorLayer(f"{suggestions_path}|layername=suggested_fields", "Fields to label next", "ogr")
        if suggested.isValid():
            styling.style_suggestions(suggested)
            layers.append(suggested)
    if fields_path:
        fields = QgsVectorLayer(fields_path, "Fields (predicted class)", "ogr")
        if fields.isValid():
            styling.style_fields(fields, classes)
            layers.append(fields)
    class_map = QgsRasterLayer(map_path, "Crop map", "gdal")
    if not class_map.isValid():
        raise LayerError(f"QGIS cannot open the crop map '{map_path}'.")
    styling.style_class_map(class_map, classes)
    layers.append(class_map)
    if confidence_path:
        confidence = QgsRasterLayer(confidence_path, "Confidence", "gdal")
        if confidence.isValid():
            styling.style_confidence(confidence)
            confidence.setOpacity(1.0)
            layers.append(confidence)
    if uncertainty_path:
        uncertainty = QgsRasterLayer(uncertainty_path, "Uncertainty", "gdal")
        if uncertainty.isValid():
            styling.style_uncertainty(uncertainty)
            layers.append(uncertainty)
    for layer in layers:
        project.addMapLayer(layer, False)
        node = group.addLayer(layer)
        if layer.name() in ("Confidence", "Uncertainty"):
            node.setItemVisibilityChecked(False)  # the class map is what the user wants to see first
    return group, layers


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name) or "layer"
