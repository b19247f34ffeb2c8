"""Processing algorithm ``cropmapper:train``: fine-tunes a crop model on labelled field polygons."""

from __future__ import annotations

import dataclasses

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
)

from . import params
from .base import CropMapperAlgorithm, load_pipeline


class TrainAlgorithm(CropMapperAlgorithm):
    INIT_MODEL = "INIT_MODEL"
    OUTPUT_MODEL = "OUTPUT_MODEL"
    VAL_OA = "VAL_OA"
    VAL_MIOU = "VAL_MIOU"
    WARNINGS = "WARNINGS"

    def name(self) -> str:
        return "train"

    def displayName(self) -> str:  # noqa: N802
        return "Train a crop model"

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            "Trains STCLN on the time series with the labelled field polygons. The fields are split (by field, "
            "never by pixel) into training, validation and test sets; the epoch with the best validation mIoU is "
            "kept. Start from a pre-trained model (<i>Pre-train a model</i>) to do better with few labels. "
            "The model file keeps the class names and colours, the band order and the normalisation."
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        params.add_series_parameters(self)
        params.add_label_parameters(self)
        params.add_train_parameters(self)
        init = QgsProcessingParameterFile(self.INIT_MODEL, "Start from a (pre-trained) model", extension="cropmodel",
                                          optional=True)
        init.setHelp("A .cropmodel from Pre-train a model (or an earlier training): its backbone is the start point.")
        self.addParameter(init)
        params.add_time_budget_parameter(self)
        params.add_device_parameter(self)
        params.add(self, QgsProcessingParameterFileDestination(
            self.OUTPUT_MODEL, "Trained model", "CropMapper model (*.cropmodel)"),
            "The trained .cropmodel, with class names and colours, bands and the field split.")
        self.addOutput(QgsProcessingOutputNumber(self.VAL_OA, "Validation overall accuracy"))
        self.addOutput(QgsProcessingOutputNumber(self.VAL_MIOU, "Validation mIoU"))
        self.addOutput(QgsProcessingOutputString(self.WARNINGS, "Warnings"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        pipeline = load_pipeline()
        params.check_fractions(self, parameters, context)
        series = params.series_input(self, parameters, context)
        labels = params.label_input(self, parameters, context, feedback)
        options = dataclasses.replace(params.train_options(self, parameters, context),
                                      time_budget_minutes=params.time_budget(self, parameters, context))
        init_model = self.parameterAsFile(parameters, self.INIT_MODEL, context) or None
        out_model = self.parameterAsFileOutput(parameters, self.OUTPUT_MODEL, context)
        progress, cancelled = self.callbacks(feedback)
        outcome = self.run_engine(
            lambda: pipeline.train(series, labels, out_model, options, init_model=init_model, progress=progress,
                                   cancelled=cancelled),
            feedback,
        )
        for warning in outcome.warnings:
            feedback.reportError(warning, fatalError=False)
        feedback.pushInfo(f"Trained in {outcome.seconds:.1f} s; split: {outcome.split}")
        if outcome.schedule.get("note"):
            feedback.pushInfo(outcome.schedule["note"])
        return {
            self.OUTPUT_MODEL: outcome.model_path,
            self.VAL_OA: outcome.validation.get("overall_accuracy"),
            self.VAL_MIOU: outcome.validation.get("miou"),
            self.WARNINGS: "\n".join(outcome.warnings),
        }
