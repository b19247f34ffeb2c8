""""Search Sentinel-2…": a STAC API, the fields' extent, dates and a cloud limit -> per-date GeoTIFFs in a folder.

The search and the reading run in an ``EngineTask`` (cancellable, progress in the dialog); the written files are
handed to ``on_images`` (the Map crops dialog adds them to its series).
"""

from __future__ import annotations

import html
from typing import Callable, Optional

from qgis.core import QgsApplication, QgsCoordinateReferenceSystem, QgsRectangle, QgsVectorLayer
from qgis.gui import QgsExtentWidget, QgsFileWidget
from qgis.PyQt.QtCore import QDate
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDateEdit,
    QDialog,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..engine import stac
from .tasks import EngineTask, Status, TaskResult

WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")


class SearchDialog(QDialog):
    """Finds Sentinel-2 L2A images in a STAC API and writes the area's pixels, one GeoTIFF per date."""

    def __init__(self, parent: Optional[QWidget] = None, fields: Optional[QgsVectorLayer] = None,
                 folder: str = "", on_images: Optional[Callable[[list[str]], None]] = None, canvas=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Search Sentinel-2 (STAC)")
        self.on_images = on_images
        self.task: Optional[EngineTask] = None
        self.last_result: Optional[TaskResult] = None
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.api_combo = QComboBox()
        self.api_combo.setEditable(True)  # a preset or any STAC API URL
        for name in stac.PRESETS:
            self.api_combo.addItem(name)
        self.api_combo.setToolTip("A preset or the URL of a STAC API. Planetary Computer URLs are signed; "
                                  "Copernicus Data Space assets need a login.")
        form.addRow("STAC API", self.api_combo)
        self.extent = QgsExtentWidget(self)
        self.extent.setOutputCrs(WGS84)
        if canvas is not None:
            self.extent.setMapCanvas(canvas)
        if fields is not None and fields.isValid() and not fields.extent().isEmpty():
            self.extent.setOriginalExtent(fields.extent(), fields.crs())
            self.extent.setOutputExtentFromOriginal()
        form.addRow("Area", self.extent)
        today = QDate.currentDate()
        self.start_date, self.end_date = QDateEdit(today.addMonths(-12)), QDateEdit(today)
        for edit in (self.start_date, self.end_date):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd")
        form.addRow("First date", self.start_date)
        form.addRow("Last date", self.end_date)
        self.cloud_spin = QDoubleSpinBox()
        self.cloud_spin.setRange(0, 100)
        self.cloud_spin.setValue(stac.DEFAULT_MAX_CLOUD)
        self.cloud_spin.setSuffix(" %")
        form.addRow("Maximum cloud cover", self.cloud_spin)
        self.folder = QgsFileWidget()
        self.folder.setStorageMode(QgsFileWidget.GetDirectory)
        self.folder.setFilePath(folder)
        form.addRow("Write the images to", self.folder)
        layout.addLayout(form)
        self.found_list = QListWidget()
        layout.addWidget(self.found_list, 1)
        self.progress = QProgressBar()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        buttons = QHBoxLayout()
        self.search_button = QPushButton("Search")
        self.search_button.clicked.connect(lambda: self.start(list_only=True))
        self.download_button = QPushButton("Search and read the images")
        self.download_button.clicked.connect(lambda: self.start(list_only=False))
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        for button in (self.search_button, self.download_button, self.cancel_button):
            buttons.addWidget(button)
        layout.addLayout(buttons)

    def set_area(self, rect: QgsRectangle, crs: QgsCoordinateReferenceSystem) -> None:
        self.extent.setOutputExtentFromUser(rect, crs)

    def start(self, list_only: bool) -> Optional[EngineTask]:
        if self.task is not None:
            return None
        rect = self.extent.outputExtent()
        folder = self.folder.filePath()
        if rect.isEmpty() or (not list_only and not folder):
            self.status.setText("Choose the area" + ("" if list_only or folder else " and the output folder") + ".")
            return None
        api = self.api_combo.currentText().strip()
        bbox = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
        start, end = self.start_date.date().toPyDate(), self.end_date.date().toPyDate()
        max_cloud = self.cloud_spin.value()
        found_titles: list[str] = []

        def job(progress, cancelled):
            return stac.search_and_download(api, bbox, start, end, folder, max_cloud=max_cloud, list_only=list_only,
                                            progress=progress, cancelled=cancelled,
                                            on_found=lambda found: found_titles.extend(f.describe() for f in found))

        self.found_list.clear()
        self.task = EngineTask("CropMapper: search Sentinel-2", job)
        self.task.progressChanged.connect(lambda value: self.progress.setValue(int(value)))
        self.task.message.connect(self.status.setText)
        self.task.done.connect(lambda result: self._done(result, found_titles))
        for button in (self.search_button, self.download_button):
            button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText("Searching …")
        QgsApplication.taskManager().addTask(self.task)
        return self.task

    def cancel(self) -> None:
        if self.task is not None:
            self.status.setText("Cancelling …")
            self.task.cancel()

    def _done(self, result: TaskResult, found_titles: list[str]) -> None:
        self.task = None
        self.last_result = result
        for button in (self.search_button, self.download_button):
            button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.found_list.addItems(found_titles)
        if result.status is Status.SUCCESS:
            outcome = result.value
            written = outcome.written
            text = f"{len(outcome.found)} image(s) found" + (f", {len(written)} date(s) written." if written else ".")
            self.status.setText(text + "".join(f"<br>{html.escape(w)}" for w in outcome.warnings))
            if written and self.on_images is not None:
                self.on_images(written)
        else:
            self.progress.setValue(0)
            self.status.setText(f"<span style='color:#b00'>{html.escape(result.message)}</span>")


def search_button(parent: QWidget, fields: Callable[[], Optional[QgsVectorLayer]], folder: Callable[[], str],
                  on_images: Callable[[list[str]], None], canvas=None) -> QPushButton:
    """"Search Sentinel-2…", opening the search dialog over the current fields layer."""
    button = QPushButton("Search Sentinel-2…", parent)
    button.setToolTip("Find Sentinel-2 L2A images in a STAC API and read only the fields' area (no full download).")

    def open_dialog() -> None:
        dialog = SearchDialog(parent, fields(), folder(), on_images, canvas)
        parent._search_dialog = dialog  # kept referenced while open
        dialog.show()

    button.clicked.connect(open_dialog)
    return button

