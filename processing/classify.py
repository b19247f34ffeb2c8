"""Processing algorithm ``cropmapper:classify``: a crop map from a time series with an existing model."""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterVectorDestination,
)

from . import params
from .base import CropMapperAlgorithm, load_pipeline
from .styling import style_outputs


class ClassifyAlgorithm(CropMapperAlgorithm):
    MODEL = "MODEL"
    FIELDS = "FIELDS"
    AREA = "AREA"
    OUTPUT = "OUTPUT"
    OUTPUT_CONFIDENCE = "OUTPUT_CONFIDENCE"
    OUTPUT_UNCERTAINTY = "OUTPUT_UNCERTAINTY"
    OUTPUT_PROBABILITIES = "OUTPUT_PROBABILITIES"
    OUTPUT_FIELDS = "OUTPUT_FIELDS"

    def name(self) -> str:
        return "classify"

    def displayName(self) -> str:  # noqa: N802
        return "Classify with a model"

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            "Predicts a crop map from a time series with a trained .cropmodel. The images must have the bands the "
            "model was trained on (same names and order). The map is predicted tile by tile with blended overlaps; "
            "the confidence layer holds the winning class probability. Give field polygons to also get one class "
            "per field (majority of the pixel probabilities) in a vector layer."
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        model = QgsProcessingParameterFile(self.MODEL, "Model", extension="cropmodel")
        model.setHelp("A .cropmodel file written by Train a crop model or Map crops.")
        self.addParameter(model)
        params.add_series_parameters(self)
        fields = QgsProcessingParameterFeatureSource(self.FIELDS, "Field polygons for field-level results",
                                                     [QgsProcessing.TypeVectorPolygon], optional=True)
        fields.setHelp("Polygons (e.g. parcels) that receive the class and probability of the pixels they cover.")
        self.addParameter(fields)
        params.add(self, QgsProcessingParameterFeatureSource(
            self.AREA, "Area to map", [QgsProcessing.TypeVectorPolygon], optional=True),
            "Polygons of the area of interest: pixels outside are left as no data and tiles wholly outside skipped.")
        params.add_predict_parameters(self)
        params.add_smoothing_parameters(self)
        params.add_device_parameter(self)
        params.add(self, QgsProcessingParameterRasterDestination(self.OUTPUT, "Crop map"),
                   "GeoTIFF of class values 1..K (0 = no data), styled with the model's class names and colours.")
        params.add(self, QgsProcessingParameterRasterDestination(
            self.OUTPUT_CONFIDENCE, "Confidence", optional=True, createByDefault=True),
            "Probability of the winning class per pixel (0..1).")
        params.add(self, QgsProcessingParameterRasterDestination(
            self.OUTPUT_UNCERTAINTY, "Uncertainty", optional=True, createByDefault=False),
            "Normalised entropy of the class probabilities per pixel: 0 = sure, 1 = every class equally likely.")
        params.add(self, QgsProcessingParameterRasterDestination(
            self.OUTPUT_PROBABILITIES, "Class probabilities (one band per class)", optional=True,
            createByDefault=False), "One band per class with its probability.")
        params.add(self, QgsProcessingParameterVectorDestination(
            self.OUTPUT_FIELDS, "Field-level results", QgsProcessing.TypeVectorPolygon, optional=True,
            createByDefault=True), "The field polygons with their predicted class and probability.")

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        pipeline = load_pipeline()
        model = self.parameterAsFile(parameters, self.MODEL, context)
        series = params.series_input(self, parameters, context)
        options = params.predict_options(self, parameters, context)
        out_map = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        out_confidence = self.parameterAsOutputLayer(parameters, self.OUTPUT_CONFIDENCE, context) or None
        out_uncertainty = self.parameterAsOutputLayer(parameters, self.OUTPUT_UNCERTAINTY, context) or None
        out_probabilities = self.parameterAsOutputLayer(parameters, self.OUTPUT_PROBABILITIES, context) or None
        fields, fields_layer, fields_out = None, None, None
        if parameters.get(self.FIELDS):
            fields, fields_layer = self.parameterAsCompatibleSourceLayerPathAndLayerName(
                parameters, self.FIELDS, context, ["gpkg", "shp", "geojson", "fgb", "sqlite"], "gpkg", feedback
            )
            fields_out = self.parameterAsOutputLayer(parameters, self.OUTPUT_FIELDS, context) or None
        area = None
        if parameters.get(self.AREA):
            area = self.parameterAsCompatibleSourceLayerPath(parameters, self.AREA, context, ["shp", "geojson", "fgb"],
                                                             "shp", feedback)
        progress, cancelled = self.callbacks(feedback)
        outcome = self.run_engine(
            lambda: pipeline.predict(
                model, series, out_map, out_confidence=out_confidence, out_probabilities=out_probabilities,
                fields=fields, fields_layer=fields_layer or None, fields_out=fields_out, options=options,
                extent=area, progress=progress, cancelled=cancelled, out_uncertainty=out_uncertainty,
            ),
            feedback,
        )
        classes = pipeline.read_model_classes(model)
        style_outputs(context, feedback, classes, outcome.map_path, outcome.confidence_path, outcome.fields_path)
        feedback.pushInfo(f"Classified {outcome.pixels} pixels in {outcome.seconds:.1f} s.")
        return {
            self.OUTPUT: outcome.map_path,
            self.OUTPUT_CONFIDENCE: outcome.confidence_path,
            self.OUTPUT_UNCERTAINTY: outcome.uncertainty_path,
            self.OUTPUT_PROBABILITIES: outcome.probabilities_path,
            self.OUTPUT_FIELDS: outcome.fields_path,
        }
