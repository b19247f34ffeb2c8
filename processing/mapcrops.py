"""Processing algorithm ``cropmapper:mapcrops``: every step in one (pre-train, train, classify, evaluate)."""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingOutputRasterLayer,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
)

from . import params
from ..ui.tasks import StagedFolder
from .base import CropMapperAlgorithm, load_pipeline
from .styling import style_outputs

OUTPUT_CHOICES = ["map", "confidence", "fields", "report", "probabilities"]


class MapCropsAlgorithm(CropMapperAlgorithm):
    EXISTING_MODEL = "EXISTING_MODEL"
    OUTPUTS = "OUTPUTS"
    OUTPUT_FOLDER = "OUTPUT_FOLDER"
    MAP = "MAP"
    CONFIDENCE = "CONFIDENCE"
    FIELDS = "FIELDS"
    REPORT = "REPORT"
    MODEL = "MODEL"
    OVERALL_ACCURACY = "OVERALL_ACCURACY"
    KAPPA = "KAPPA"
    MIOU = "MIOU"

    def name(self) -> str:
        return "mapcrops"

    def displayName(self) -> str:  # noqa: N802
        return "Map crops (all steps)"

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            "Everything the Map crops dialog does, in one algorithm: optional self-supervised pre-training on the "
            "time series, training on the labelled fields (split by field into training, validation and test), "
            "prediction of the crop map with a confidence layer and field-level results, and an accuracy report "
            "on the test fields. Give an existing .cropmodel to skip training. The outputs go into one folder: "
            "crop_map.tif (styled through its .qml), confidence.tif, fields.gpkg, model.cropmodel and report/."
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        params.add_series_parameters(self)
        params.add_label_parameters(self)
        params.add_train_parameters(self)
        params.add_pretrain_parameters(self, switch=True)
        params.add_time_budget_parameter(self)
        existing = QgsProcessingParameterFile(self.EXISTING_MODEL, "Use an existing model instead of training",
                                              extension="cropmodel", optional=True)
        existing.setHelp("A trained .cropmodel: training and pre-training are skipped; the polygons only feed the "
                         "report and the field-level results.")
        self.addParameter(existing)
        params.add_predict_parameters(self)
        params.add_device_parameter(self)
        outputs = QgsProcessingParameterEnum(self.OUTPUTS, "Outputs", OUTPUT_CHOICES, allowMultiple=True,
                                             defaultValue=[0, 1, 2, 3])
        outputs.setHelp("The crop map is always written; choose the others. probabilities: one band per class "
                        "(probabilities.tif), off by default because it is K times the map's size.")
        self.addParameter(outputs)
        params.add(self, QgsProcessingParameterFolderDestination(self.OUTPUT_FOLDER, "Output folder"),
                   "Receives crop_map.tif, confidence.tif, fields.gpkg, model.cropmodel and report/ (only when the "
                   "run succeeds: a cancelled run leaves nothing here).")
        self.addOutput(QgsProcessingOutputRasterLayer(self.MAP, "Crop map"))
        self.addOutput(QgsProcessingOutputRasterLayer(self.CONFIDENCE, "Confidence"))
        self.addOutput(QgsProcessingOutputVectorLayer(self.FIELDS, "Field-level results"))
        self.addOutput(QgsProcessingOutputFile(self.REPORT, "HTML report"))
        self.addOutput(QgsProcessingOutputFile(self.MODEL, "Model"))
        for name, label in ((self.OVERALL_ACCURACY, "Overall accuracy"), (self.KAPPA, "Kappa"), (self.MIOU, "mIoU")):
            self.addOutput(QgsProcessingOutputNumber(name, label))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        pipeline = load_pipeline()
        from ..engine.evaluation.report import reliability_warnings

        params.check_fractions(self, parameters, context)
        series = params.series_input(self, parameters, context)
        labels = params.label_input(self, parameters, context, feedback)
        if labels is None:
            raise QgsProcessingException("Choose the labelled field polygons.")
        train_options = params.train_options(self, parameters, context)
        pretrain = params.pretrain_options(self, parameters, context, preset=train_options.preset)
        if not self.parameterAsBoolean(parameters, params.PRETRAIN, context):
            pretrain = None
        existing = self.parameterAsFile(parameters, self.EXISTING_MODEL, context) or None
        predict_options = params.predict_options(self, parameters, context)
        chosen = self.parameterAsEnums(parameters, self.OUTPUTS, context)
        outputs = tuple(["map"] + [OUTPUT_CHOICES[i] for i in chosen if OUTPUT_CHOICES[i] != "map"])
        folder = self.parameterAsString(parameters, self.OUTPUT_FOLDER, context)
        progress, cancelled = self.callbacks(feedback)
        staged = StagedFolder(folder)
        with staged.for_inputs(series, labels, existing) as partial:
            outcome = self.run_engine(
                lambda: pipeline.map_crops(
                    series, labels, str(partial), train_options=train_options, pretrain_options=pretrain,
                    predict_options=predict_options, existing_model=existing, outputs=outputs, progress=progress,
                    cancelled=cancelled, final_dir=str(staged.final),
                    time_budget_minutes=params.time_budget(self, parameters, context),
                ),
                feedback,
            )
        trust = reliability_warnings(outcome.report.metrics) if outcome.report else []
        for warning in outcome.warnings + trust:
            feedback.reportError(warning, fatalError=False)
        if outcome.time_budget_note:
            feedback.pushInfo(outcome.time_budget_note)
        model_path = outcome.model_path if existing else staged.final_path(outcome.model_path)
        classes = pipeline.read_model_classes(model_path)
        predicted = outcome.predict
        map_path, confidence_path, fields_path = (
            staged.final_path(p) for p in (predicted.map_path, predicted.confidence_path, predicted.fields_path)
        )
        report_path = staged.final_path(outcome.report.html_path) if outcome.report else None
        style_outputs(context, feedback, classes, map_path, confidence_path, fields_path, load=True,
                      run_name=Path(folder).name)
        metrics = outcome.report.metrics if outcome.report else {}
        if metrics:
            feedback.pushInfo(f"Test fields: OA {metrics.get('overall_accuracy', 0):.3f}, "
                              f"kappa {metrics.get('kappa', 0):.3f}, mIoU {metrics.get('miou', 0):.3f}")
        return {
            self.OUTPUT_FOLDER: folder,
            self.MAP: map_path,
            self.CONFIDENCE: confidence_path,
            self.FIELDS: fields_path,
            self.REPORT: report_path,
            self.MODEL: model_path,
            self.OVERALL_ACCURACY: metrics.get("overall_accuracy"),
            self.KAPPA: metrics.get("kappa"),
            self.MIOU: metrics.get("miou"),
        }
