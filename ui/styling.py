"""Styles for the results: the class map (paletted, names and colours from the model's class table), the confidence
layer (a pseudocolour ramp over 1/K..1) and the field-level vector (categorised by the predicted class)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsColorRampLegendNodeSettings,
    QgsColorRampShader,
    QgsFillSymbol,
    QgsPalettedRasterRenderer,
    QgsRasterBandStats,
    QgsRasterLayer,
    QgsRasterShader,
    QgsRendererCategory,
    QgsSingleBandPseudoColorRenderer,
    QgsVectorLayer,
)
from qgis.PyQt.QtGui import QColor

from ..engine.classes import ClassTable



def class_renderer(layer: QgsRasterLayer, classes: ClassTable, band: int = 1) -> QgsPalettedRasterRenderer:
    """A paletted renderer with one entry per class (value, colour, name); 0 (no data) stays transparent."""
    entries = [QgsPalettedRasterRenderer.Class(c.value, QColor(*c.color), c.name) for c in classes]
    return QgsPalettedRasterRenderer(layer.dataProvider(), band, entries)


def style_class_map(layer: QgsRasterLayer, classes: ClassTable) -> None:
    """Applies the class palette to ``layer`` and makes value 0 transparent."""
    layer.setRenderer(class_renderer(layer, classes))
    layer.dataProvider().setNoDataValue(1, 0)
    layer.triggerRepaint()


def style_uncertainty(layer: QgsRasterLayer) -> None:
    """A continuous ramp over 0 (sure) .. 1 (all classes equally likely), as the engine's .qml sidecar."""
    from ..engine.inference.styles import UNCERTAINTY_STOPS

    style_ramp(layer, UNCERTAINTY_STOPS)


def style_confidence(layer: QgsRasterLayer, n_classes: Optional[int] = None) -> None:
    """A pseudocolour ramp, red (unsure) to green (sure), stretched from 1/K (a guess among the K classes, the least
    a winning probability can be) to 1, with a legend that says so; over the layer's own range when K is unknown."""
    from ..engine.inference.styles import confidence_stops  # the engine's .qml sidecar uses the same stops

    stops = confidence_stops(n_classes)
    if not n_classes:
        statistics = layer.dataProvider().bandStatistics(1, QgsRasterBandStats.Min | QgsRasterBandStats.Max)
        low, high = statistics.minimumValue, statistics.maximumValue
        if high > low:
            stops = [(low + (high - low) * i / (len(stops) - 1), color, f"{low + (high - low) * i / (len(stops) - 1):.2f}")
                     for i, (_v, color, _l) in enumerate(stops)]
    style_ramp(layer, stops)


def style_ramp(layer: QgsRasterLayer, stops: list[tuple[float, str, str]]) -> None:
    """An interpolated pseudocolour ramp through ``(value, colour, label)`` stops, its legend labelled at the ends."""
    items = [QgsColorRampShader.ColorRampItem(value, QColor(color), label) for value, color, label in stops]
    minimum, maximum = stops[0][0], stops[-1][0]
    shader_function = QgsColorRampShader(minimum, maximum)
    shader_function.setColorRampType(QgsColorRampShader.Interpolated)
    shader_function.setColorRampItemList(items)
    legend = QgsColorRampLegendNodeSettings()  # the layer tree shows a continuous ramp labelled at its two ends
    legend.setMinimumLabel(stops[0][2])
    legend.setMaximumLabel(stops[-1][2])
    shader_function.setLegendSettings(legend)
    shader = QgsRasterShader(minimum, maximum)
    shader.setRasterShaderFunction(shader_function)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader)
    renderer.setClassificationMin(minimum)
    renderer.setClassificationMax(maximum)
    layer.setRenderer(renderer)
    layer.triggerRepaint()


def class_field_of(layer: QgsVectorLayer, candidates=("crop_class", "class_name", "predicted")) -> Optional[str]:
    """The field of the field-level vector that holds the predicted class name."""
    names = [f.name() for f in layer.fields()]
    for wanted in candidates:
        for name in names:
            if name.lower() == wanted:
                return name
    return None


def style_fields(layer: QgsVectorLayer, classes: ClassTable, field: Optional[str] = None,
                 outlines: bool = False) -> bool:
    """Categorises the field-level polygons by their predicted class name; False when no such field exists.

    ``outlines``: no fill, a thick outline in the class colour, so the layer can lie above the crop map."""
    field = field or class_field_of(layer)
    if field is None:
        return False
    categories = []
    for info in classes:
        color = "{},{},{},255".format(*info.color)
        if outlines:
            properties = {"color": "0,0,0,0", "style": "no", "outline_color": color, "outline_width": "0.6"}
        else:
            properties = {"color": color, "outline_color": "35,35,35,255", "outline_width": "0.2"}
        categories.append(QgsRendererCategory(info.name, QgsFillSymbol.createSimple(properties), info.name))
    layer.setRenderer(QgsCategorizedSymbolRenderer(field, categories))
    layer.triggerRepaint()
    return True


SUGGESTION_RAMP = ("#d7301f", "#fdcc8a")  # rank 1 (label first) dark red .. last rank pale orange


def style_suggestions(layer: QgsVectorLayer, field: str = "rank") -> bool:
    """Colours the suggested fields by rank (1 = label first, darkest), labelled with the rank; False without it."""
    from qgis.core import (QgsGradientColorRamp, QgsGraduatedSymbolRenderer, QgsPalLayerSettings, QgsRendererRange,
                           QgsVectorLayerSimpleLabeling)

    index = layer.fields().indexOf(field)
    if index < 0:
        return False
    ranks = sorted({int(v) for v in layer.uniqueValues(index) if v is not None and not (hasattr(v, "isNull") and v.isNull())})
    if not ranks:
        return False
    ramp = QgsGradientColorRamp(QColor(SUGGESTION_RAMP[0]), QColor(SUGGESTION_RAMP[1]))
    ranges = []
    for n, rank in enumerate(ranks):
        color = ramp.color(n / max(len(ranks) - 1, 1))
        symbol = QgsFillSymbol.createSimple({"color": f"{color.red()},{color.green()},{color.blue()},255",
                                             "outline_color": "20,20,20,255", "outline_width": "0.4"})
        ranges.append(QgsRendererRange(rank - 0.5, rank + 0.5, symbol, str(rank)))
    layer.setRenderer(QgsGraduatedSymbolRenderer(field, ranges))
    labels = QgsPalLayerSettings()
    labels.fieldName = field
    layer.setLabeling(QgsVectorLayerSimpleLabeling(labels))
    layer.setLabelsEnabled(True)
    layer.triggerRepaint()
    return True


def write_class_style(map_path: str, classes: ClassTable) -> Optional[str]:
    """Saves the class palette as ``<map>.qml`` beside the map, so that QGIS styles it whenever it is loaded."""
    layer = QgsRasterLayer(map_path, Path(map_path).stem, "gdal")
    if not layer.isValid():
        return None
    style_class_map(layer, classes)
    _message, ok = layer.saveDefaultStyle()
    return str(Path(map_path).with_suffix(".qml")) if ok else None


def write_confidence_style(path: str, n_classes: Optional[int] = None) -> Optional[str]:
    """Saves the confidence ramp as ``<confidence>.qml``."""
    layer = QgsRasterLayer(path, Path(path).stem, "gdal")
    if not layer.isValid():
        return None
    style_confidence(layer, n_classes)
    _message, ok = layer.saveDefaultStyle()
    return str(Path(path).with_suffix(".qml")) if ok else None


def palette_of(layer: QgsRasterLayer) -> list[tuple[int, str, tuple[int, int, int]]]:
    """(value, label, rgb) of a paletted layer, for tests and the results panel."""
    renderer = layer.renderer()
    if not isinstance(renderer, QgsPalettedRasterRenderer):
        return []
    return [(c.value, c.label, (c.color.red(), c.color.green(), c.color.blue())) for c in renderer.classes()]
