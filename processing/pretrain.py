"""Processing algorithm ``cropmapper:pretrain``: self-supervised masked pre-training on unlabelled images."""

from __future__ import annotations

import dataclasses

from qgis.core import QgsProcessingOutputNumber, QgsProcessingParameterEnum, QgsProcessingParameterFileDestination

from . import params
from .base import CropMapperAlgorithm, load_pipeline


class PretrainAlgorithm(CropMapperAlgorithm):
    OUTPUT_MODEL = "OUTPUT_MODEL"
    FINAL_LOSS = "FINAL_LOSS"

    def name(self) -> str:
        return "pretrain"

    def displayName(self) -> str:  # noqa: N802
        return "Pre-train a model (self-supervised)"

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            "Pre-trains the STCLN backbone on the time series alone, without labels: random (date, pixel) "
            "observations are hidden and the network learns to reconstruct them (spatiotemporal masking). "
            "Use the resulting model as the starting point of <i>Train a crop model</i>; it helps most when "
            "labelled fields are few. Clouds and nodata are never reconstruction targets."
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        params.add_series_parameters(self)
        params.add(self, QgsProcessingParameterEnum(params.PRESET, "Model size", params.PRESET_NAMES, defaultValue=0),
                   "lite: small and fast, for CPUs and laptops; paper: the published STCLN sizes (use a GPU).")
        params.add_pretrain_parameters(self)
        params.add_time_budget_parameter(self)
        params.add_device_parameter(self)
        params.add(self, QgsProcessingParameterFileDestination(
            self.OUTPUT_MODEL, "Pre-trained model", "CropMapper model (*.cropmodel)"),
            "The pre-trained .cropmodel (no crop classes yet): give it to Train a crop model.")
        self.addOutput(QgsProcessingOutputNumber(self.FINAL_LOSS, "Final reconstruction loss"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        pipeline = load_pipeline()
        series = params.series_input(self, parameters, context)
        options = dataclasses.replace(params.pretrain_options(self, parameters, context),
                                      time_budget_minutes=params.time_budget(self, parameters, context))
        out_model = self.parameterAsFileOutput(parameters, self.OUTPUT_MODEL, context)
        progress, cancelled = self.callbacks(feedback)
        outcome = self.run_engine(
            lambda: pipeline.pretrain(series, out_model, options, progress=progress, cancelled=cancelled), feedback
        )
        loss = outcome.history[-1].get("loss") if outcome.history else None
        feedback.pushInfo(f"Pre-trained in {outcome.seconds:.1f} s; model: {outcome.model_path}")
        if outcome.schedule.get("note"):
            feedback.pushInfo(outcome.schedule["note"])
        return {self.OUTPUT_MODEL: outcome.model_path, self.FINAL_LOSS: loss}
