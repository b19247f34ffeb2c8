"""Styling the class map (and the confidence layer) that Processing loads when an algorithm finishes."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from qgis.core import QgsProcessingContext, QgsProcessingFeedback, QgsProcessingLayerPostProcessorInterface

from ..engine.classes import ClassTable
from ..ui import styling
from ..ui.layers import RESULT_NAMES, result_layer_name

# Processing keeps only a C++ pointer to a post-processor: Python must hold the objects or they are collected.
_KEEP_ALIVE: list[QgsProcessingLayerPostProcessorInterface] = []


class ClassMapStyler(QgsProcessingLayerPostProcessorInterface):
    """Applies the model's class palette (names and colours) to the loaded class map."""

    def __init__(self, classes: ClassTable) -> None:
        super().__init__()
        self.classes = classes

    def postProcessLayer(self, layer, context, feedback) -> None:  # noqa: N802
        styling.style_class_map(layer, self.classes)


class ConfidenceStyler(QgsProcessingLayerPostProcessorInterface):
    """The confidence ramp over 1/K..1 for the model's K classes."""

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.n_classes = n_classes

    def postProcessLayer(self, layer, context, feedback) -> None:  # noqa: N802
        styling.style_confidence(layer, self.n_classes)


class FieldsStyler(QgsProcessingLayerPostProcessorInterface):
    def __init__(self, classes: ClassTable) -> None:
        super().__init__()
        self.classes = classes

    def postProcessLayer(self, layer, context, feedback) -> None:  # noqa: N802
        styling.style_fields(layer, self.classes)


def style_outputs(
    context: QgsProcessingContext,
    feedback: Optional[QgsProcessingFeedback],
    classes: ClassTable,
    map_path: Optional[str],
    confidence_path: Optional[str] = None,
    fields_path: Optional[str] = None,
    load: bool = False,
    run_name: Optional[str] = None,
) -> None:
    """Writes ``.qml`` sidecars (QGIS applies them whenever the files are opened, qgis_process included) and sets
    post-processors on the layers Processing will load; with ``load``, asks Processing to load them (named after
    ``run_name`` when given, so that the layers of several runs can be told apart)."""
    def name(kind: str) -> str:
        return result_layer_name(kind, run_name) if run_name else RESULT_NAMES[kind]

    pairs = [(map_path, ClassMapStyler(classes), name("map")),
             (confidence_path, ConfidenceStyler(len(classes)), name("confidence")),
             (fields_path, FieldsStyler(classes), name("fields"))]
    # The engine normally writes the sidecars; these are for maps written by an engine without them.
    if map_path and not Path(map_path).with_suffix(".qml").exists():
        styling.write_class_style(map_path, classes)
    if confidence_path and not Path(confidence_path).with_suffix(".qml").exists():
        styling.write_confidence_style(confidence_path, len(classes))
    for path, styler, name in pairs:
        if not path:
            continue
        if load and not context.willLoadLayerOnCompletion(path):
            context.addLayerToLoadOnCompletion(
                path, QgsProcessingContext.LayerDetails(name, context.project(), name)
            )
        if context.willLoadLayerOnCompletion(path):
            _KEEP_ALIVE.append(styler)
            context.layerToLoadOnCompletionDetails(path).setPostProcessor(styler)
