"""The Processing provider ``cropmapper`` with its algorithms (loads without torch; they import it on run)."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .base import ICON_PATH
from .classify import ClassifyAlgorithm
from .evaluate import EvaluateAlgorithm
from .exportmap import ExportMapAlgorithm
from .mapcrops import MapCropsAlgorithm
from .pretrain import PretrainAlgorithm
from .search import SearchAlgorithm
from .suggest import SuggestAlgorithm
from .train import TrainAlgorithm

ALGORITHMS = (PretrainAlgorithm, TrainAlgorithm, ClassifyAlgorithm, EvaluateAlgorithm, MapCropsAlgorithm,
              SearchAlgorithm, SuggestAlgorithm, ExportMapAlgorithm)


class CropMapperProvider(QgsProcessingProvider):
    def id(self) -> str:
        return "cropmapper"

    def name(self) -> str:
        return "CropMapper"

    def longName(self) -> str:  # noqa: N802
        return "CropMapper: crop-type mapping from satellite image time series"

    def icon(self) -> QIcon:
        return QIcon(ICON_PATH)

    def loadAlgorithms(self) -> None:  # noqa: N802
        for algorithm in ALGORITHMS:
            self.addAlgorithm(algorithm())
