"""Processing algorithm ``cropmapper:suggest``: the fields to label next, ranked by the model's uncertainty."""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterVectorDestination,
)

from ..engine.suggest import DEFAULT_COUNT, LAYER_NAME
from . import params
from .base import CropMapperAlgorithm, load_pipeline

_KEEP_ALIVE: list[QgsProcessingLayerPostProcessorInterface] = []  # Processing holds only a C++ pointer


class SuggestionsStyler(QgsProcessingLayerPostProcessorInterface):
    def postProcessLayer(self, layer, context, feedback) -> None:  # noqa: N802
        from ..ui import styling

        styling.style_suggestions(layer)


class SuggestAlgorithm(CropMapperAlgorithm):
    MODEL = "MODEL"
    PARCELS = "PARCELS"
    UNLABELLED_FIELD = "UNLABELLED_FIELD"
    EXCLUDE = "EXCLUDE"
    COUNT = "COUNT"
    OUTPUT = "OUTPUT"

    def name(self) -> str:
        return "suggest"

    def displayName(self) -> str:  # noqa: N802
        return "Suggest fields to label next"

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            "Ranks candidate parcels by how unsure the model is about them (normalised entropy of the class "
            "probabilities averaged over each parcel), spread over the predicted classes and over space, and writes "
            "the top ones to a GeoPackage layer 'suggested_fields' (rank 1 = label first; predicted class, its "
            "probability, the uncertainty and the area in hectares). Digitise their crops, add them to the "
            "labelled fields and train again. Without a parcel layer, segments of the map are the candidates."
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        params.add(self, QgsProcessingParameterFile(self.MODEL, "Model", extension="cropmodel"),
                   "A trained .cropmodel file.")
        params.add_series_parameters(self)
        params.add(self, QgsProcessingParameterFeatureSource(
            self.PARCELS, "Candidate parcels", [QgsProcessing.TypeVectorPolygon], optional=True),
            "Parcels without labels to choose from; without them, segments of the map are the candidates.")
        params.add(self, QgsProcessingParameterField(
            self.UNLABELLED_FIELD, "Class field: only parcels where it is empty",
            parentLayerParameterName=self.PARCELS, optional=True),
            "With a layer of partly labelled parcels: only the parcels whose class is empty are suggested.")
        params.add(self, QgsProcessingParameterFeatureSource(
            self.EXCLUDE, "Fields already labelled", [QgsProcessing.TypeVectorPolygon], optional=True),
            "Candidates more than half covered by these polygons are never suggested.")
        params.add(self, QgsProcessingParameterNumber(
            self.COUNT, "Number of fields", QgsProcessingParameterNumber.Integer, defaultValue=DEFAULT_COUNT,
            minValue=1), "How many fields to suggest.")
        params.add_predict_parameters(self)
        params.add_device_parameter(self)
        params.add(self, QgsProcessingParameterVectorDestination(
            self.OUTPUT, "Suggested fields", QgsProcessing.TypeVectorPolygon,
            defaultValue=QgsProcessing.TEMPORARY_OUTPUT),
            f"GeoPackage with the layer '{LAYER_NAME}', styled by rank.")

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        load_pipeline()
        from ..engine.suggest import suggest_fields

        model = self.parameterAsFile(parameters, self.MODEL, context)
        series = params.series_input(self, parameters, context)
        options = params.predict_options(self, parameters, context)
        out = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        if Path(out).suffix.lower() != ".gpkg":
            raise QgsProcessingException(f"Write the suggestions to a GeoPackage (.gpkg), not '{Path(out).name}'.")
        parcels, parcels_layer, exclude, exclude_layer = None, None, None, None
        formats = ["gpkg", "shp", "geojson", "fgb", "sqlite"]
        if parameters.get(self.PARCELS):
            parcels, parcels_layer = self.parameterAsCompatibleSourceLayerPathAndLayerName(
                parameters, self.PARCELS, context, formats, "gpkg", feedback)
        if parameters.get(self.EXCLUDE):
            exclude, exclude_layer = self.parameterAsCompatibleSourceLayerPathAndLayerName(
                parameters, self.EXCLUDE, context, formats, "gpkg", feedback)
        field = self.parameterAsString(parameters, self.UNLABELLED_FIELD, context) or None
        progress, cancelled = self.callbacks(feedback)
        outcome = self.run_engine(
            lambda: suggest_fields(
                model, series, out, parcels=parcels, parcels_layer=parcels_layer or None, unlabelled_field=field,
                exclude=exclude, exclude_layer=exclude_layer or None,
                count=self.parameterAsInt(parameters, self.COUNT, context), options=options,
                progress=progress, cancelled=cancelled,
            ),
            feedback,
        )
        uri = f"{outcome.path}|layername={outcome.layer}"
        if context.willLoadLayerOnCompletion(out):
            # the layer inside the GeoPackage, styled by rank
            details = context.layerToLoadOnCompletionDetails(out)
            context.addLayerToLoadOnCompletion(uri, QgsProcessingContext.LayerDetails(
                details.name or "Suggested fields", context.project(), details.outputName))
            context.setLayersToLoadOnCompletion({k: v for k, v in context.layersToLoadOnCompletion().items() if k != out})
            styler = SuggestionsStyler()
            _KEEP_ALIVE.append(styler)
            context.layerToLoadOnCompletionDetails(uri).setPostProcessor(styler)
        for row in outcome.suggestions[:5]:
            feedback.pushInfo(f"{row['rank']}. parcel {row['source_fid']}: {row['crop_class']} "
                              f"(p {row['crop_prob']:.2f}, uncertainty {row['uncertainty']:.2f}, {row['area_ha']:.2f} ha)")
        feedback.pushInfo(f"Label these next: {len(outcome.suggestions)} of {outcome.candidates} candidates, "
                          f"in {outcome.path}.")
        return {self.OUTPUT: uri}
