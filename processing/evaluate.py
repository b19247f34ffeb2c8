"""Processing algorithm ``cropmapper:evaluate``: accuracy of a crop map against labelled fields."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterRasterLayer,
)

from . import params
from .base import CropMapperAlgorithm, load_pipeline

SPLITS = ["test", "val", "train", "all"]


class EvaluateAlgorithm(CropMapperAlgorithm):
    MAP = "MAP"
    MODEL = "MODEL"
    SPLIT = "SPLIT"
    OUTPUT_FOLDER = "OUTPUT_FOLDER"
    OVERALL_ACCURACY = "OVERALL_ACCURACY"
    KAPPA = "KAPPA"
    MIOU = "MIOU"
    MACRO_F1 = "MACRO_F1"
    HTML = "HTML"
    JSON = "JSON"
    CSV = "CSV"

    def name(self) -> str:
        return "evaluate"

    def displayName(self) -> str:  # noqa: N802
        return "Evaluate a crop map"

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            "Compares a crop map with labelled field polygons: confusion matrix, overall accuracy, Cohen's kappa, "
            "mIoU, per-class precision, recall, F1, IoU and areas, written as HTML, JSON and CSV. With the model "
            "that made the map, only the fields of the chosen split (by default the test fields, never seen in "
            "training) are counted; without it, all fields are."
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        layer = QgsProcessingParameterRasterLayer(self.MAP, "Crop map")
        layer.setHelp("A class map written by CropMapper (values 1..K, 0 = no data).")
        self.addParameter(layer)
        params.add_label_parameters(self)
        model = QgsProcessingParameterFile(self.MODEL, "Model that made the map", extension="cropmodel",
                                           optional=True)
        model.setHelp("Gives the class names and the training split, so that training fields are not counted.")
        self.addParameter(model)
        split = QgsProcessingParameterEnum(self.SPLIT, "Fields to count", SPLITS, defaultValue=0)
        split.setHelp("test: fields kept out of training (needs the model); all: every labelled field.")
        self.addParameter(split)
        params.add(self, QgsProcessingParameterFolderDestination(self.OUTPUT_FOLDER, "Report folder"),
                   "Where report.html, report.json and the per-class CSV are written.")
        for name, label in ((self.OVERALL_ACCURACY, "Overall accuracy"), (self.KAPPA, "Kappa"),
                            (self.MIOU, "mIoU"), (self.MACRO_F1, "Macro F1")):
            self.addOutput(QgsProcessingOutputNumber(name, label))
        for name, label in ((self.HTML, "HTML report"), (self.JSON, "JSON report"), (self.CSV, "CSV per class")):
            self.addOutput(QgsProcessingOutputFile(name, label))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        pipeline = load_pipeline()
        layer = self.parameterAsRasterLayer(parameters, self.MAP, context)
        from ..ui.layers import raster_path

        map_path = raster_path(layer)
        labels = params.label_input(self, parameters, context, feedback)
        model = self.parameterAsFile(parameters, self.MODEL, context) or None
        split = SPLITS[self.parameterAsEnum(parameters, self.SPLIT, context)]
        folder = self.parameterAsString(parameters, self.OUTPUT_FOLDER, context)
        progress, cancelled = self.callbacks(feedback)
        outcome = self.run_engine(
            lambda: pipeline.evaluate(map_path, labels, folder, model_path=model, split=split, progress=progress,
                                      cancelled=cancelled),
            feedback,
        )
        metrics = outcome.metrics
        feedback.pushInfo(
            f"OA {metrics.get('overall_accuracy', float('nan')):.3f}, kappa {metrics.get('kappa', float('nan')):.3f}, "
            f"mIoU {metrics.get('miou', float('nan')):.3f}. Report: {outcome.html_path}"
        )
        return {
            self.OUTPUT_FOLDER: folder,
            self.OVERALL_ACCURACY: metrics.get("overall_accuracy"),
            self.KAPPA: metrics.get("kappa"),
            self.MIOU: metrics.get("miou"),
            self.MACRO_F1: metrics.get("macro_f1"),
            self.HTML: outcome.html_path,
            self.JSON: outcome.json_path,
            self.CSV: outcome.csv_path,
        }
