"""Processing algorithm ``cropmapper:exportmap``: a printable crop map (PDF and PNG) from a QGIS print layout."""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorLayer,
    QgsRasterLayer,
)

from . import params
from .base import CropMapperAlgorithm


class ExportMapAlgorithm(CropMapperAlgorithm):
    MAP = "MAP"
    FIELDS = "FIELDS"
    MODEL = "MODEL"
    REPORT = "REPORT"
    TITLE = "TITLE"
    OUTPUT_PDF = "OUTPUT_PDF"
    OUTPUT_PNG = "OUTPUT_PNG"

    def name(self) -> str:
        return "exportmap"

    def displayName(self) -> str:  # noqa: N802
        return "Export a printable crop map"

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            "Lays out the crop map on an A4 page with the parcels, a legend of the classes (colour, name, mapped "
            "area, and the error-adjusted area with its 95 % interval when the accuracy report has it), a title, "
            "the date range of the time series (from the model), a scale bar, a north arrow, the CRS and the "
            "accuracy summary, and writes it as PDF and PNG. The print layout 'CropMapper map' is kept in the "
            "project for editing (Project > Layouts)."
        )

    def flags(self):
        # The layout is added to the project: run in the main thread.
        return super().flags() | self.FlagNoThreading

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        params.add(self, QgsProcessingParameterRasterLayer(self.MAP, "Crop map"),
                   "A class map written by CropMapper (its colours and class names come from its style).")
        params.add(self, QgsProcessingParameterVectorLayer(
            self.FIELDS, "Parcels to draw", [QgsProcessing.TypeVectorPolygon], optional=True),
            "Drawn over the map with their current style.")
        params.add(self, QgsProcessingParameterFile(self.MODEL, "Model", extension="cropmodel",
                                                    optional=True),
                   "Gives the class table and the dates of the time series it was trained on.")
        params.add(self, QgsProcessingParameterFile(self.REPORT, "Accuracy report metrics.json",
                                                    extension="json", optional=True),
                   "The metrics.json of Evaluate or Map crops: accuracy summary and error-adjusted areas.")
        params.add(self, QgsProcessingParameterString(self.TITLE, "Title", defaultValue="Crop map"), "The map's title.")
        params.add(self, QgsProcessingParameterFileDestination(self.OUTPUT_PDF, "PDF", "PDF files (*.pdf)"),
                   "The one-page PDF.")
        params.add(self, QgsProcessingParameterFileDestination(self.OUTPUT_PNG, "PNG", "PNG files (*.png)",
                                                               optional=True, createByDefault=True),
                   "The same page as a 150 dpi PNG.")

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from ..engine.errors import EngineError
        from ..engine.map_summary import map_summary
        from ..ui import export_map, styling
        from ..ui.layers import raster_path

        layer = self.parameterAsRasterLayer(parameters, self.MAP, context)
        if layer is None:
            raise QgsProcessingException("Choose the crop map.")
        fields = self.parameterAsVectorLayer(parameters, self.FIELDS, context)
        model = self.parameterAsFile(parameters, self.MODEL, context) or None
        report = self.parameterAsFile(parameters, self.REPORT, context) or None
        pdf = self.parameterAsFileOutput(parameters, self.OUTPUT_PDF, context)
        png = self.parameterAsFileOutput(parameters, self.OUTPUT_PNG, context) or None
        title = self.parameterAsString(parameters, self.TITLE, context) or "Crop map"
        try:
            summary = map_summary(raster_path(layer), report, model)
            if not styling.palette_of(layer):  # a map layer without the class palette: style a copy
                layer = QgsRasterLayer(layer.source(), layer.name(), "gdal")
                styling.style_class_map(layer, _classes(summary))
                context.temporaryLayerStore().addMapLayer(layer)
            layout = export_map.build_layout(layer, summary, title, fields, project=context.project())
            pdf, png = export_map.export_layout(layout, pdf, png)
        except EngineError as exc:
            raise QgsProcessingException(str(exc)) from None
        feedback.pushInfo(f"Map written to {pdf}" + (f" and {png}" if png else "") +
                          f"; the layout '{layout.name()}' is in the project.")
        return {self.OUTPUT_PDF: pdf, self.OUTPUT_PNG: png}


def _classes(summary: dict):
    from ..engine.classes import ClassInfo, ClassTable

    return ClassTable([ClassInfo(r["value"], r["name"], tuple(r["color"])) for r in summary["classes"]])
