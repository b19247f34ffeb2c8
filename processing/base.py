"""What the CropMapper algorithms share: group, icon, feedback -> engine callbacks, engine errors -> Processing errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from qgis.core import QgsProcessingAlgorithm, QgsProcessingException, QgsProcessingFeedback
from qgis.PyQt.QtGui import QIcon

ICON_PATH = str(Path(__file__).resolve().parent.parent / "resources" / "icon.svg")


def load_pipeline():
    """Imports the engine's pipeline, or explains that PyTorch / einops must be installed first."""
    from ..ui import installer

    missing = installer.missing_dependencies()
    if missing:
        raise QgsProcessingException(
            "; ".join(dep.problem for dep in missing)
            + ". Install them from Raster > CropMapper > Install dependencies, or with the pip of QGIS's Python."
        )
    from ..engine import pipeline

    return pipeline


class CropMapperAlgorithm(QgsProcessingAlgorithm):
    """Base class: subclasses define ``name``, ``displayName``, ``shortHelpString``, parameters and ``run``."""

    def group(self) -> str:
        return ""

    def groupId(self) -> str:  # noqa: N802 (QGIS's name)
        return ""

    def icon(self) -> QIcon:
        return QIcon(ICON_PATH)

    def createInstance(self):  # noqa: N802 (QGIS's name)
        return type(self)()

    def helpUrl(self) -> str:  # noqa: N802 (QGIS's name)
        """The user guide shipped with the plugin (works offline, matches the installed version)."""
        from qgis.PyQt.QtCore import QUrl

        from ..ui.help_texts import guide_path

        return QUrl.fromLocalFile(guide_path()).toString()

    @staticmethod
    def callbacks(feedback: QgsProcessingFeedback) -> tuple[Callable[[float, str], None], Callable[[], bool]]:
        """The engine's ``progress`` and ``cancelled`` callbacks, wired to the Processing feedback."""
        last = {"message": ""}

        def progress(fraction: float, message: str) -> None:
            feedback.setProgress(100.0 * fraction)
            if message and message != last["message"]:
                last["message"] = message
                feedback.setProgressText(message)

        return progress, feedback.isCanceled

    @staticmethod
    def run_engine(step: Callable[[], Any], feedback: QgsProcessingFeedback) -> Any:
        """Runs an engine step; user errors and cancelling become a ``QgsProcessingException`` with a plain message."""
        from ..engine.errors import CancelledError, EngineError, cancelled_message

        try:
            return step()
        except CancelledError as exc:
            raise QgsProcessingException(cancelled_message(exc, "Cancelled by the user")) from None
        except EngineError as exc:
            raise QgsProcessingException(str(exc)) from None
        finally:
            if feedback is not None and feedback.isCanceled():
                feedback.pushInfo("Cancelled.")
