"""The "Map crops" dialog: time series, training fields, run options; runs the engine in a QgsTask and shows results.

Everything can be driven from code (tests, screenshots): ``add_series_files``, ``set_polygons``, ``check``,
``start``, ``cancel``; ``task_done`` fires with the ``TaskResult`` once the results are in the project.
"""

from __future__ import annotations

import datetime as dt
import html
import os
from pathlib import Path
from typing import Optional

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsMapLayerProxyModel,
    QgsMessageLog,
    QgsProject,
    QgsRasterLayer,
    QgsSettings,
    QgsVectorLayer,
)
from qgis.gui import QgsFieldComboBox, QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QBrush, QColor, QIcon
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from ..engine import pipeline
from ..engine.errors import EngineError
from ..processing import params
from . import layers as layer_tools
from . import results_extras, search_dialog, sentinel2_products
from .eta import estimate_text
from .help_texts import guide_path, processing_help
from .tasks import EngineTask, StagedFolder, Status, TaskResult

LOG_TAG = "CropMapper"
SETTINGS_PREFIX = "cropmapper/dialog/"
ICON_PATH = str(Path(__file__).resolve().parent.parent / "resources" / "icon.svg")
LAYOUTS = list(zip(params.LAYOUTS, params.LAYOUT_NAMES))
MASK_MODES = [("none", "No cloud masks"), ("cloud", "Cloud masks (non-zero = cloud)"), ("scl", "Sentinel-2 SCL layers")]
COL_IMAGE, COL_DATE, COL_BANDS, COL_MASK = range(4)


OUTPUTS_OFF_BY_DEFAULT = ("uncertainty", "suggestions", "probabilities")


class MapCropsDialog(QDialog):
    """The Map crops dialog. ``iface`` may be a real QgisInterface or pytest-qgis's."""

    task_done = pyqtSignal(object)  # TaskResult, after the results were added

    def __init__(self, iface=None, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.iface = iface
        self.task: Optional[EngineTask] = None
        self.last_result: Optional[TaskResult] = None
        self.result_layers: list = []
        self.staged: Optional[StagedFolder] = None
        self.showing_problems = False
        self.estimate_task: Optional[EngineTask] = None
        self.setWindowTitle("CropMapper: Map crops")
        self.setWindowIcon(QIcon(ICON_PATH))
        self.resize(820, 640)
        self.tabs = QTabWidget()
        self.tabs.addTab(self._series_tab(), "1. Time series")
        self.tabs.addTab(self._training_tab(), "2. Training")
        self.tabs.addTab(self._run_tab(), "3. Run")
        self.tabs.addTab(self._results_tab(), "Results")

        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.status = QLabel("Choose the time series, the labelled fields and an output folder, then Run.")
        self.status.setWordWrap(True)
        self.run_button = QPushButton("Run")
        self.run_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        buttons = QDialogButtonBox()
        buttons.addButton(self.run_button, QDialogButtonBox.ActionRole)
        buttons.addButton(self.cancel_button, QDialogButtonBox.ActionRole)
        buttons.addButton(QDialogButtonBox.Close)
        buttons.addButton(QDialogButtonBox.Help)
        buttons.rejected.connect(self.close)
        buttons.helpRequested.connect(self.show_help)
        self.run_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)

        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(buttons)
        self.load_settings()
        self.suggest_output_folder()
        self._watch_form()
        self._explain_controls()

    # ------------------------------------------------------------------------------------------------------------
    # Tabs

    def _series_tab(self) -> QWidget:
        tab = QWidget()
        layout = QVBoxLayout(tab)
        self.series_table = QTableWidget(0, 4)
        self.series_table.setHorizontalHeaderLabels(["Image", "Date (editable)", "Bands", "Cloud mask / SCL"])
        self.series_table.setSelectionBehavior(QAbstractItemView.SelectRows)
        header = self.series_table.horizontalHeader()
        header.setSectionResizeMode(COL_IMAGE, QHeaderView.Stretch)
        header.setSectionResizeMode(COL_MASK, QHeaderView.Stretch)
        self.series_table.itemChanged.connect(self._date_edited)
        layout.addWidget(self.series_table, 1)

        row = QHBoxLayout()
        add_layers = QPushButton("Add project layers…")
        add_layers.clicked.connect(self._choose_project_layers)
        add_files = QPushButton("Add files…")
        add_files.clicked.connect(self._choose_files)
        remove = QPushButton("Remove selected")
        remove.clicked.connect(self.remove_selected)
        clear = QPushButton("Clear")
        clear.clicked.connect(self.clear_series)
        add_products = sentinel2_products.products_button(self, self._last_dir, self.add_series_files)
        search = search_dialog.search_button(
            self, self.polygons, lambda: str(Path(self.output_folder.filePath() or self._last_dir()) / "sentinel2"),
            self.add_series_files, self.iface.mapCanvas() if self.iface is not None else None)
        add_layers.setToolTip("Add raster layers of the project (their files) to the time series.")
        add_files.setToolTip("Add image files; their dates are read from the metadata or the file names.")
        remove.setToolTip("Remove the selected rows from the time series.")
        clear.setToolTip("Remove every image from the time series.")
        for button in (add_layers, add_files, add_products, search, remove, clear):
            row.addWidget(button)
        row.addStretch(1)
        layout.addLayout(row)

        form = QFormLayout()
        self.layout_combo = QComboBox()
        for key, label in LAYOUTS:
            self.layout_combo.addItem(label, key)
        self.stack_order_combo = QComboBox()
        for key, label in zip(params.STACK_ORDERS, params.STACK_ORDER_NAMES):
            self.stack_order_combo.addItem(label, key)
        self.layout_combo.currentIndexChanged.connect(self._layout_changed)
        form.addRow("Layout", self.layout_combo)
        form.addRow("Band order of a stack", self.stack_order_combo)
        mask_row = QHBoxLayout()
        self.mask_combo = QComboBox()
        for key, label in MASK_MODES:
            self.mask_combo.addItem(label, key)
        add_masks = QPushButton("Add masks…")
        add_masks.setToolTip("Add one cloud mask or SCL file per date; they are matched to the images by date.")
        add_masks.clicked.connect(self._choose_masks)
        mask_row.addWidget(self.mask_combo, 1)
        mask_row.addWidget(add_masks)
        form.addRow("Clouds", mask_row)
        from ..engine.data.sentinel2 import DEFAULT_BANDS

        self.s2_bands_edit = QLineEdit(", ".join(DEFAULT_BANDS))
        self.s2_bands_edit.textChanged.connect(self.refresh_problems)
        form.addRow("Sentinel-2 bands", self.s2_bands_edit)
        layout.addLayout(form)
        self._layout_changed()
        return tab

    def _training_tab(self) -> QWidget:
        tab = QWidget()
        layout = QVBoxLayout(tab)
        self.train_radio = QRadioButton("Train a new model on labelled fields")
        self.existing_radio = QRadioButton("Use an existing model (.cropmodel)")
        self.train_radio.setChecked(True)
        group = QButtonGroup(tab)
        group.addButton(self.train_radio)
        group.addButton(self.existing_radio)
        self.existing_model = QgsFileWidget()
        self.existing_model.setFilter("CropMapper model (*.cropmodel)")
        existing_row = QHBoxLayout()
        existing_row.addWidget(self.existing_radio)
        existing_row.addWidget(self.existing_model, 1)
        layout.addWidget(self.train_radio)
        layout.addLayout(existing_row)

        fields_box = QGroupBox("Labelled fields (optional with an existing model: then for the report and field results)")
        form = QFormLayout(fields_box)
        self.polygons_combo = QgsMapLayerComboBox()
        self.polygons_combo.setFilters(QgsMapLayerProxyModel.PolygonLayer)
        self.polygons_combo.setAllowEmptyLayer(True)
        self.polygons_combo.setLayer(None)
        self.class_field_combo = QgsFieldComboBox()
        self.class_field_combo.setAllowEmptyFieldName(True)  # no id field chosen behind the user's back
        self.polygons_combo.layerChanged.connect(self._polygons_changed)
        self.class_field_combo.fieldChanged.connect(self._update_class_preview)
        self.class_preview = QLabel("")
        self.class_preview.setWordWrap(True)
        self.class_preview.setTextFormat(Qt.RichText)
        form.addRow("Polygon layer", self.polygons_combo)
        form.addRow("Class field", self.class_field_combo)
        form.addRow("Classes", self.class_preview)
        layout.addWidget(fields_box)

        self.training_box = QGroupBox("Training")
        form = QFormLayout(self.training_box)
        self.preset_combo = QComboBox()
        for key, label in zip(params.PRESETS, params.PRESET_NAMES):
            self.preset_combo.addItem(label, key)
        self.epochs_spin = _spin(1, 1000, 30)
        self.label_fraction_spin = _double(0.01, 1.0, 1.0, 0.05)
        self.val_fraction_spin = _double(0.0, 0.9, 0.2, 0.05)
        self.test_fraction_spin = _double(0.0, 0.9, 0.2, 0.05)
        form.addRow("Model size", self.preset_combo)
        form.addRow("Training epochs", self.epochs_spin)
        form.addRow("Fraction of training fields used", self.label_fraction_spin)
        form.addRow("Validation fraction (fields)", self.val_fraction_spin)
        form.addRow("Test fraction (fields, for the report)", self.test_fraction_spin)
        self.time_budget_spin = _spin(0, 10000, 0)
        self.time_budget_spin.setSpecialValueText("no limit")
        self.time_budget_spin.setSuffix(" min")
        self.time_budget_spin.setToolTip("Pre-training and training together run fewer epochs than asked where they "
                                         "would not fit in this many minutes; the result says what was chosen.")
        form.addRow("Time budget for training", self.time_budget_spin)
        layout.addWidget(self.training_box)

        self.pretrain_box = QGroupBox("Pre-train on the images first (self-supervised, helps with few labels)")
        self.pretrain_box.setCheckable(True)
        self.pretrain_box.setChecked(True)
        form = QFormLayout(self.pretrain_box)
        self.pretrain_epochs_spin = _spin(1, 1000, 10)
        self.mask_ratio_spin = _double(0.05, 0.95, 0.4, 0.05)
        form.addRow("Pre-training epochs", self.pretrain_epochs_spin)
        form.addRow("Mask ratio", self.mask_ratio_spin)
        layout.addWidget(self.pretrain_box)
        layout.addStretch(1)
        self.train_radio.toggled.connect(self._mode_changed)
        self._mode_changed()
        return tab

    def _run_tab(self) -> QWidget:
        tab = QWidget()
        layout = QVBoxLayout(tab)
        form = QFormLayout()
        self.device_combo = QComboBox()
        self.device_label = QLabel("")
        self._fill_devices()
        form.addRow("Device", self.device_combo)
        form.addRow("Found", self.device_label)
        self.tile_spin = _spin(8, 1024, 32)
        self.overlap_spin = _spin(0, 512, 8)
        self.batch_spin = _spin(1, 1024, 16)
        form.addRow("Tile size (pixels)", self.tile_spin)
        form.addRow("Tile overlap (pixels)", self.overlap_spin)
        form.addRow("Batch size (tiles)", self.batch_spin)
        self.output_folder = QgsFileWidget()
        self.output_folder.setStorageMode(QgsFileWidget.GetDirectory)
        self.run_name = QLineEdit()
        self.run_name.setPlaceholderText("cropmap_<date>_<time>")
        form.addRow("Output folder", self.output_folder)
        form.addRow("Run name (sub-folder)", self.run_name)
        estimate_row = QHBoxLayout()
        self.estimate_button = QPushButton("Estimate")
        self.estimate_button.setToolTip("Times a few training and mapping steps of the chosen model on this device "
                                        "(a few seconds) and multiplies by the steps of the run.")
        self.estimate_button.clicked.connect(self.estimate_time)
        self.estimate_label = QLabel("How long the run will take on this device: press Estimate.")
        self.estimate_label.setWordWrap(True)
        self.estimate_label.setToolTip("Timed just now with a few steps of the model; validation, reading and "
                                       "writing are not timed, and a busy computer is slower.")
        estimate_row.addWidget(self.estimate_label, 1)
        estimate_row.addWidget(self.estimate_button)
        form.addRow("Expected time", estimate_row)
        layout.addLayout(form)
        outputs = QGroupBox("Outputs")
        row = QHBoxLayout(outputs)
        self.output_checks = {}
        for key, label in (("map", "Crop map"), ("confidence", "Confidence"), ("uncertainty", "Uncertainty"),
                           ("fields", "Field-level vector"), ("report", "Accuracy report"),
                           ("probabilities", "Class probabilities"), ("suggestions", "Fields to label next")):
            check = QCheckBox(label)
            check.setChecked(key != "probabilities")  # one band per class: K times the map's size
            self.output_checks[key] = check
            row.addWidget(check)
        self.output_checks["map"].setEnabled(False)
        for key in OUTPUTS_OFF_BY_DEFAULT:
            self.output_checks[key].setChecked(False)
        layout.addWidget(outputs)
        layout.addStretch(1)
        return tab

    def _results_tab(self) -> QWidget:
        self.results_view = QTextBrowser()
        self.results_view.setOpenExternalLinks(True)
        self.results_view.setHtml("<p>No results yet.</p>")
        self.results_page = QWidget()
        page = QVBoxLayout(self.results_page)
        page.setContentsMargins(0, 0, 0, 0)
        page.addWidget(self.results_view, 1)
        self.export_button = QPushButton("Export map…")
        self.export_button.setToolTip("A PDF and a PNG of the map from a print layout kept in the project.")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self.export_map)
        self.export_state: Optional[dict] = None
        page.addWidget(self.export_button, 0, Qt.AlignRight)
        return self.results_page

    def export_map(self) -> None:
        """Exports the last result as a printable map (ui.export_map), saying where it went or what failed."""
        from . import export_map

        if self.export_state is None:
            return
        try:
            written = export_map.ask_and_export(self, self.export_state)
        except EngineError as exc:
            self._say(str(exc), Qgis.Critical)
            return
        if written:
            self._say(f"Map exported to {written[0]} and {written[1]}; the layout is in the project.", Qgis.Success)

    def _fill_devices(self) -> None:
        self.device_combo.addItem("auto (GPU when available)", "auto")
        self.device_combo.addItem("CPU", "cpu")
        try:
            import torch

            from ..engine.device import describe_devices

            for index in range(torch.cuda.device_count()):
                self.device_combo.addItem(f"CUDA {index}: {torch.cuda.get_device_name(index)}", f"cuda:{index}")
            if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
                self.device_combo.addItem("Apple Metal (mps)", "mps")
            self.device_label.setText(describe_devices())
        except Exception as exc:  # noqa: BLE001 - the dialog must open even if torch misbehaves
            self.device_label.setText(f"PyTorch could not list the devices: {exc}")

    # ------------------------------------------------------------------------------------------------------------
    # Time series table

    def add_series_files(self, paths: list[str]) -> None:
        """Adds images (with their parsed dates and bands) and keeps the table sorted by date."""
        known = set(self.series_paths())
        paths = [str(p) for p in paths if str(p) not in known]
        if not paths:
            return
        try:
            described = pipeline.describe_series(pipeline.SeriesInput(images=paths, layout=self.layout_key()))
        except EngineError as exc:
            self._say(str(exc), Qgis.Warning)
            described = [(p, None, []) for p in paths]
        self.series_table.blockSignals(True)
        for path, date, bands in described:
            row = self.series_table.rowCount()
            self.series_table.insertRow(row)
            image = QTableWidgetItem(Path(path).name)
            image.setData(Qt.UserRole, path)
            image.setToolTip(path)
            image.setFlags(image.flags() & ~Qt.ItemIsEditable)
            date_item = QTableWidgetItem(date.isoformat() if date else "")
            date_item.setData(Qt.UserRole, date.isoformat() if date else "")
            date_item.setToolTip("The acquisition date found in the file; type YYYY-MM-DD to change it.")
            bands_item = QTableWidgetItem(f"{len(bands)}: {', '.join(bands)}" if bands else "")
            bands_item.setToolTip(f"{len(bands)} bands, in this order:\n" + "\n".join(bands) if bands else
                                  "No band names found.")
            bands_item.setFlags(bands_item.flags() & ~Qt.ItemIsEditable)
            mask_item = QTableWidgetItem("")
            mask_item.setFlags(mask_item.flags() & ~Qt.ItemIsEditable)
            for column, item in ((COL_IMAGE, image), (COL_DATE, date_item), (COL_BANDS, bands_item),
                                 (COL_MASK, mask_item)):
                self.series_table.setItem(row, column, item)
        self.series_table.blockSignals(False)
        self.sort_by_date()
        self.suggest_output_folder()
        self.refresh_problems()

    def suggest_output_folder(self) -> None:
        """Offers an output folder when none is set: ``cropmapper/`` beside the saved project, else beside the first
        image, else (once there are images) in the home folder: the first writable of these."""
        if self.output_folder.filePath():
            return
        candidates = []
        if QgsProject.instance().homePath():
            candidates.append(Path(QgsProject.instance().homePath()))
        images = self.series_paths()
        candidates += [Path(images[0]).parent, Path.home()] if images else []
        for parent in candidates:
            if parent.is_dir() and os.access(parent, os.W_OK):
                self.output_folder.setFilePath(str(parent / "cropmapper"))
                return

    def add_series_layers(self, raster_layers: list[QgsRasterLayer]) -> None:
        paths = []
        for layer in raster_layers:
            try:
                paths.append(layer_tools.raster_path(layer))
            except layer_tools.LayerError as exc:
                self._say(str(exc), Qgis.Warning)
        self.add_series_files(paths)

    def add_mask_files(self, paths: list[str]) -> list[str]:
        """Puts cloud masks / SCL files on the rows with the same date (else in order); returns the unmatched."""
        rows = self.series_table.rowCount()
        described = pipeline.describe_series(pipeline.SeriesInput(images=[str(p) for p in paths]))
        by_date: dict[str, list[str]] = {}
        for path, date, _bands in described:
            by_date.setdefault(date.isoformat() if date else "", []).append(path)
        undated = any(not d for d in by_date)
        unmatched = []
        if undated or len(paths) != rows:
            for row, path in enumerate(paths):
                if row < rows:
                    self._set_mask(row, str(path))
                else:
                    unmatched.append(str(path))
        else:
            for row in range(rows):
                found = by_date.get(self.row_date_text(row), [])
                if found:
                    self._set_mask(row, found.pop(0))
            unmatched = [p for rest in by_date.values() for p in rest]
        if self.mask_combo.currentData() == "none":
            self.mask_combo.setCurrentIndex(1)
        self.refresh_problems()
        return unmatched

    def _set_mask(self, row: int, path: str) -> None:
        item = self.series_table.item(row, COL_MASK)
        item.setText(Path(path).name)
        item.setData(Qt.UserRole, path)
        item.setToolTip(path)

    def series_paths(self) -> list[str]:
        return [self.series_table.item(r, COL_IMAGE).data(Qt.UserRole) for r in range(self.series_table.rowCount())]

    def row_date_text(self, row: int) -> str:
        return self.series_table.item(row, COL_DATE).text().strip()

    def row_date(self, row: int) -> Optional[dt.date]:
        try:
            return dt.date.fromisoformat(self.row_date_text(row))
        except ValueError:
            return None

    def set_row_date(self, row: int, date: dt.date) -> None:
        self.series_table.item(row, COL_DATE).setText(date.isoformat())

    def sort_by_date(self) -> None:
        """Sorts the rows by date (undated last), then by file name (two acquisitions on one day keep their order)."""
        rows = []
        for r in range(self.series_table.rowCount()):
            rows.append([self.series_table.takeItem(r, c) for c in range(4)])
        rows.sort(key=lambda items: (items[COL_DATE].text().strip() or "9999", items[COL_IMAGE].text()))
        self.series_table.blockSignals(True)
        for r, items in enumerate(rows):
            for c, item in enumerate(items):
                self.series_table.setItem(r, c, item)
        self.series_table.blockSignals(False)

    def remove_selected(self) -> None:
        for row in sorted({i.row() for i in self.series_table.selectedIndexes()}, reverse=True):
            self.series_table.removeRow(row)
        self.refresh_problems()

    def clear_series(self) -> None:
        self.series_table.setRowCount(0)
        self.refresh_problems()

    def _date_edited(self, item: QTableWidgetItem) -> None:
        if item.column() == COL_DATE:
            ok = self.row_date(item.row()) is not None
            item.setForeground(QBrush(QColor("black" if ok else "red")))
            if ok:
                self.sort_by_date()

    def _choose_project_layers(self) -> None:
        rasters = [l for l in QgsProject.instance().mapLayers().values() if isinstance(l, QgsRasterLayer)]
        if not rasters:
            self._say("The project has no raster layers: use Add files… instead.", Qgis.Info)
            return
        chooser = QDialog(self)
        chooser.setWindowTitle("Time series layers")
        box = QVBoxLayout(chooser)
        listing = QListWidget()
        listing.setSelectionMode(QAbstractItemView.ExtendedSelection)
        for layer in sorted(rasters, key=lambda l: l.name()):
            item = QListWidgetItem(layer.name())
            item.setData(Qt.UserRole, layer.id())
            listing.addItem(item)
        listing.selectAll()
        box.addWidget(QLabel("Select the layers of the time series:"))
        box.addWidget(listing)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(chooser.accept)
        buttons.rejected.connect(chooser.reject)
        box.addWidget(buttons)
        if chooser.exec_():
            project = QgsProject.instance()
            self.add_series_layers([project.mapLayer(i.data(Qt.UserRole)) for i in listing.selectedItems()])

    def _choose_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Time series images", self._last_dir(),
                                                "Rasters (*.tif *.tiff *.jp2 *.vrt *.img);;All files (*)")
        if paths:
            QgsSettings().setValue(SETTINGS_PREFIX + "last_dir", str(Path(paths[0]).parent))
            self.add_series_files(paths)

    def _choose_masks(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Cloud masks or SCL", self._images_dir(),
                                                "Rasters (*.tif *.tiff *.jp2 *.vrt);;All files (*)")
        if paths:
            unmatched = self.add_mask_files(paths)
            if unmatched:
                self._say(f"{len(unmatched)} mask(s) matched no image date and were left out.", Qgis.Warning)

    def _images_dir(self) -> str:
        """The folder of the first image (masks usually lie beside or under it), else the last folder used."""
        paths = self.series_paths()
        return str(Path(paths[0]).parent) if paths else self._last_dir()

    def _last_dir(self) -> str:
        return QgsSettings().value(SETTINGS_PREFIX + "last_dir", str(Path.home()))

    def layout_key(self) -> str:
        return self.layout_combo.currentData()

    def _layout_changed(self) -> None:
        self.stack_order_combo.setEnabled(self.layout_key() == "stack")

    # ------------------------------------------------------------------------------------------------------------
    # Training fields

    def set_polygons(self, layer: Optional[QgsVectorLayer], field: Optional[str] = None) -> None:
        self.polygons_combo.setLayer(layer)
        if field:
            self.class_field_combo.setField(field)
        self._update_class_preview()

    def polygons(self) -> Optional[QgsVectorLayer]:
        return self.polygons_combo.currentLayer()

    def _polygons_changed(self, layer) -> None:
        self.class_field_combo.setLayer(layer)
        self.class_field_combo.setField(layer_tools.guess_class_field(layer))
        self._update_class_preview()

    def _update_class_preview(self, *_args) -> None:
        layer, field = self.polygons(), self.class_field_combo.currentField()
        if layer is None or not field:
            self.class_preview.setText("")
            return
        counts = layer_tools.class_counts(layer, field)
        colors = layer_tools.categorized_colors(layer, field)
        if not counts:
            self.class_preview.setText(f"<span style='color:#b00'>The field '{html.escape(field)}' is empty.</span>")
            return
        parts = []
        for name, count in sorted(counts.items()):
            swatch = ""
            if name in colors:
                swatch = "<span style='background:#%02x%02x%02x'>&nbsp;&nbsp;&nbsp;</span> " % colors[name]
            parts.append(f"{swatch}{html.escape(name)} ({count})")
        source = " Colours from the layer's categorised style." if colors else ""
        warning = ""
        if layer_tools.is_one_class_per_polygon(counts):
            warning = (f"<span style='color:#b00'><b>Every polygon is its own class: '{html.escape(field)}' looks "
                       "like an id. Choose the field holding the crop class.</b></span><br>")
        self.class_preview.setText(warning + f"{len(counts)} classes: " + ", ".join(parts) + "." + source)

    def _mode_changed(self, *_args) -> None:
        training = self.train_radio.isChecked()
        self.training_box.setEnabled(training)
        self.pretrain_box.setEnabled(training)
        self.existing_model.setEnabled(not training)

    # ------------------------------------------------------------------------------------------------------------
    # Inputs for the engine

    def series_input(self) -> pipeline.SeriesInput:
        rows = range(self.series_table.rowCount())
        images = self.series_paths()
        edited = any(
            self.row_date_text(r) != (self.series_table.item(r, COL_DATE).data(Qt.UserRole) or "") for r in rows
        )
        masks = [self.series_table.item(r, COL_MASK).data(Qt.UserRole) for r in rows]
        mode = self.mask_combo.currentData()
        masks = sentinel2_products.plain_masks(images, masks)
        bbox, bbox_crs = sentinel2_products.series_bbox(images, self.polygons())
        return pipeline.SeriesInput(
            images=images,
            layout=self.layout_key(),
            cloud_masks=masks if mode == "cloud" else None,
            scl=masks if mode == "scl" else None,
            # Dates found in the files keep their time of day (two acquisitions on one day); typed ones override.
            dates=[self.row_date(r) for r in rows] if edited else None,
            stack_order=self.stack_order_combo.currentData(),
            bbox=bbox,
            bbox_crs=bbox_crs,
            bands=self.s2_bands() if any(sentinel2_products.product_problems(p) is not None for p in images) else None,
        )

    def s2_bands(self) -> list[str]:
        """The bands read from Sentinel-2 products, in the engine's names (EngineError for an unknown one)."""
        from ..engine.data.sentinel2 import parse_bands

        return parse_bands([self.s2_bands_edit.text()])

    def label_input(self, export_dir: Optional[str] = None) -> Optional[pipeline.LabelInput]:
        layer, field = self.polygons(), self.class_field_combo.currentField()
        if layer is None or not field:
            return None
        path, layer_name = layer_tools.vector_path(layer, export_dir, field)
        colors = layer_tools.categorized_colors(layer, field) or None
        return pipeline.LabelInput(path=path, class_field=field, layer=layer_name, colors=colors)

    def train_options(self) -> pipeline.TrainOptions:
        return pipeline.TrainOptions(
            preset=self.preset_combo.currentData(), epochs=self.epochs_spin.value(),
            label_fraction=self.label_fraction_spin.value(), val_fraction=self.val_fraction_spin.value(),
            test_fraction=self.test_fraction_spin.value(), device=self.device_combo.currentData(),
        )

    def pretrain_options(self) -> Optional[pipeline.PretrainOptions]:
        if not self.pretrain_box.isChecked():
            return None
        return pipeline.PretrainOptions(
            preset=self.preset_combo.currentData(), epochs=self.pretrain_epochs_spin.value(),
            mask_ratio=self.mask_ratio_spin.value(), device=self.device_combo.currentData(),
        )

    def predict_options(self) -> pipeline.PredictOptions:
        return pipeline.PredictOptions(tile=self.tile_spin.value(), overlap=self.overlap_spin.value(),
                                       batch_size=self.batch_spin.value(), device=self.device_combo.currentData())

    def outputs(self) -> tuple:
        return tuple(key for key, check in self.output_checks.items() if check.isChecked())

    def run_folder(self) -> Path:
        name = self.run_name.text().strip() or dt.datetime.now().strftime("cropmap_%Y%m%d_%H%M%S")
        return Path(self.output_folder.filePath()) / name

    # ------------------------------------------------------------------------------------------------------------
    # Checks

    def check(self) -> list[str]:
        """Plain-language problems that would make the run fail; empty when it can start."""
        problems: list[str] = []
        rows = self.series_table.rowCount()
        reference: Optional[QgsRasterLayer] = None
        if rows == 0:
            problems.append("Add the time series images (tab 1): project layers or files.")
        if any(sentinel2_products.product_problems(p) is not None for p in self.series_paths()):
            try:
                self.s2_bands()
            except EngineError as exc:
                problems.append(str(exc))
        for r in range(rows):
            path = self.series_paths()[r]
            name = Path(path).name
            product_problems = sentinel2_products.product_problems(path)
            if product_problems is not None:  # a Sentinel-2 product: the engine checks its files and metadata
                problems += product_problems
                continue
            if not Path(path).is_file():
                problems.append(f"The image '{path}' does not exist.")
                continue
            if self.row_date(r) is None:
                problems.append(f"'{name}' has no date: type it as YYYY-MM-DD in the Date column.")
            if r == 0 or reference is None:
                layer = QgsRasterLayer(path, name, "gdal")
                if not layer.isValid():
                    problems.append(f"QGIS cannot read '{name}' as a raster.")
                elif not layer.crs().isValid():
                    problems.append(f"'{name}' has no coordinate reference system: assign one (Raster > Projections).")
                else:
                    reference = layer
        mode = self.mask_combo.currentData()
        if rows and mode != "none":
            missing = [r for r in range(rows) if not self.series_table.item(r, COL_MASK).data(Qt.UserRole)
                       and sentinel2_products.product_problems(self.series_paths()[r]) is None]  # products: own SCL
            if missing:
                problems.append(f"{len(missing)} date(s) have no {'cloud mask' if mode == 'cloud' else 'SCL layer'}: "
                                "add the masks, or choose 'No cloud masks'.")
        training = self.train_radio.isChecked()
        layer, field = self.polygons(), self.class_field_combo.currentField()
        if not training:
            model = self.existing_model.filePath()
            if not model or not Path(model).is_file():
                problems.append("Choose an existing .cropmodel file, or train a new model.")
        if training or layer is not None:
            if layer is None:
                problems.append("Choose the polygon layer of labelled fields (tab 2).")
            elif not layer.crs().isValid():
                problems.append(f"The polygon layer '{layer.name()}' has no coordinate reference system.")
            elif not field:
                problems.append("Choose the class field of the polygons.")
            else:
                counts = layer_tools.class_counts(layer, field)
                if not counts:
                    problems.append(f"The class field '{field}' of '{layer.name()}' is empty: choose another field.")
                elif training and len(counts) < 2:
                    problems.append(f"The class field '{field}' has only one class ({next(iter(counts))}): "
                                    "a crop map needs at least two.")
                elif layer_tools.is_one_class_per_polygon(counts):
                    problems.append(f"Every polygon of '{layer.name()}' has its own value in '{field}' ({len(counts)} "
                                    "classes): it looks like an id. Choose the field holding the crop class.")
                if reference is not None and layer.featureCount() > 0:
                    extent = layer_tools.extent_in(layer, reference.crs())
                    if extent is None or not extent.intersects(reference.extent()):
                        problems.append(f"The polygons of '{layer.name()}' lie outside the images: check that they "
                                        "cover the same area (and their CRS).")
        if training and self.val_fraction_spin.value() + self.test_fraction_spin.value() >= 0.95:
            problems.append("The validation and test fractions leave almost no fields for training: lower them.")
        if self.overlap_spin.value() * 2 >= self.tile_spin.value():
            problems.append("The tile overlap must be less than half the tile size.")
        folder = self.output_folder.filePath()
        if not folder:
            problems.append("Choose an output folder (tab 3).")
        else:
            parent = Path(folder)
            while not parent.exists() and parent.parent != parent:
                parent = parent.parent
            if not os.access(parent, os.W_OK):
                problems.append(f"The output folder '{folder}' is not writable.")
            elif self.run_name.text().strip() and self.run_folder().exists():
                problems.append(f"'{self.run_folder()}' exists already: choose another run name.")
        return problems

    # ------------------------------------------------------------------------------------------------------------
    # Expected time

    def estimate_time(self) -> Optional[EngineTask]:
        """Times a few steps of the chosen model on the chosen device in the background; the answer goes into
        ``estimate_label`` (returns the task, None when the inputs needed are not there yet)."""
        shape = self._run_shape()
        if isinstance(shape, str):
            self.estimate_label.setText(shape)
            return None
        training = self.train_radio.isChecked()
        pretrain = self.pretrain_options() if training else None
        train = self.train_options()
        predict = self.predict_options()

        def job(progress, cancelled):
            from ..engine.estimate import estimate_run

            progress(0.0, "Timing a few steps")
            return estimate_run(
                **shape, pretrain_epochs=pretrain.epochs if pretrain else None,
                train_epochs=train.epochs if training else 0, preset=train.preset, crop=train.crop,
                batch_size=train.batch_size, tile=predict.tile, overlap=predict.overlap,
                predict_batch=predict.batch_size, device=predict.device,
            )

        task = EngineTask("CropMapper: estimating the run's time", job)
        task.done.connect(self._estimate_done)
        self.estimate_button.setEnabled(False)
        self.estimate_label.setText("Timing a few steps on this device …")
        self.estimate_task = task
        QgsApplication.taskManager().addTask(task)
        return task

    def _run_shape(self):
        """Bands, dates, size, labelled area (pixels) and classes of the run; a sentence when they are not known."""
        from osgeo import gdal

        paths = self.series_paths()
        if not paths:
            return "Add the time series first (tab 1)."
        dataset = gdal.OpenEx(paths[0], gdal.OF_RASTER)
        if dataset is None:
            return f"Cannot read '{paths[0]}'."
        bands = len(self.series_table.item(0, COL_BANDS).text().split(",")) if self.layout_key() == "per-band" \
            else dataset.RasterCount
        dates = len(paths) if self.layout_key() != "stack" else max(1, dataset.RasterCount // max(bands, 1))
        width, height = dataset.RasterXSize, dataset.RasterYSize
        area, classes = width * height, 2
        layer, field = self.polygons(), self.class_field_combo.currentField()
        if self.train_radio.isChecked():
            if layer is None or not field:
                return "Choose the labelled fields and their class field first (tab 2)."
            raster = QgsRasterLayer(paths[0], "reference", "gdal")
            extent = layer_tools.extent_in(layer, raster.crs())
            if extent is not None:
                pixel = raster.rasterUnitsPerPixelX() * raster.rasterUnitsPerPixelY()
                area = int(min(width * height, extent.intersect(raster.extent()).area() / max(pixel, 1e-12)))
            classes = len(layer_tools.class_counts(layer, field))
        return {"bands": bands, "dates": dates, "width": width, "height": height, "labelled_area": max(area, 1),
                "classes": classes}

    def _estimate_done(self, result: TaskResult) -> None:
        self.estimate_button.setEnabled(True)
        self.estimate_task = None
        if not result.ok:
            self.estimate_label.setText(f"No estimate: {result.message}")
            return
        self.estimate_label.setText(estimate_text(result.value))

    # ------------------------------------------------------------------------------------------------------------
    # Running

    def start(self) -> Optional[EngineTask]:
        """Checks the inputs, then runs everything in a QgsTask; returns the task (None when a check failed)."""
        if self.task is not None:
            return None
        problems = self.check()
        self.progress.setValue(0)  # a refused run must not show the last run's 100 %
        if problems:
            self._show_problems(problems)
            self._say(problems[0], Qgis.Warning)
            return None
        self.showing_problems = False
        self.save_settings()
        staged = StagedFolder(str(self.run_folder()))
        try:
            series = self.series_input()
            labels = self.label_input()
        except (EngineError, layer_tools.LayerError) as exc:
            self.status.setText(f"<span style='color:#b00'><b>Cannot run:</b> {html.escape(str(exc))}</span>")
            self._say(str(exc), Qgis.Warning)
            return None
        training = self.train_radio.isChecked()
        existing = None if training else self.existing_model.filePath()
        train_options, pretrain_options = self.train_options(), self.pretrain_options()
        time_budget = self.time_budget_spin.value() or None
        predict_options, outputs = self.predict_options(), self.outputs()

        def job(progress, cancelled):
            with staged.for_inputs(series, labels, existing) as partial:
                if labels is None:
                    outcome = pipeline.predict(
                        existing, series, str(partial / "crop_map.tif"),
                        out_confidence=str(partial / "confidence.tif") if "confidence" in outputs else None,
                        out_probabilities=str(partial / "probabilities.tif") if "probabilities" in outputs else None,
                        options=predict_options, progress=progress, cancelled=cancelled,
                        out_uncertainty=str(partial / "uncertainty.tif") if "uncertainty" in outputs else None,
                    )
                else:
                    outcome = pipeline.map_crops(
                        series, labels, str(partial), train_options=train_options, pretrain_options=pretrain_options,
                        predict_options=predict_options, existing_model=existing, outputs=outputs,
                        progress=progress, cancelled=cancelled, final_dir=str(staged.final),
                        time_budget_minutes=time_budget,
                    )
            return outcome

        self.staged = staged
        self.task = EngineTask(f"CropMapper: map crops ({staged.final.name})", job)
        self.task.progressChanged.connect(lambda value: self.progress.setValue(int(value)))
        self.task.message.connect(self.status.setText)
        self.task.done.connect(self._task_done)
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText("Starting …")
        self.results_view.setHtml("<p>A run is in progress; its results will be shown here.</p>")
        QgsApplication.taskManager().addTask(self.task)
        return self.task

    def cancel(self) -> None:
        if self.task is not None:
            self.status.setText("Cancelling …")
            self.task.cancel()

    def _task_done(self, result: TaskResult) -> None:
        self.task = None
        self.last_result = result
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if result.status is Status.SUCCESS:
            try:
                self._show_success(result.value)
            except Exception as exc:  # noqa: BLE001 - results are on disk; say what failed in QGIS
                import traceback

                QgsMessageLog.logMessage(traceback.format_exc(), LOG_TAG, Qgis.Critical)
                result = TaskResult(Status.FAILURE, result.value, f"The results were written but could not be "
                                    f"loaded: {exc}", traceback.format_exc())
                self.last_result = result
                self._say(result.message, Qgis.Critical)
        elif result.status is Status.CANCELLED:
            self.progress.setValue(0)
            self.status.setText(result.message)
            self.results_view.setHtml(f"<p>The last run was cancelled: {html.escape(result.message)}</p>")
            self._say(result.message, Qgis.Info)
        else:
            self.progress.setValue(0)
            self.status.setText(f"<span style='color:#b00'><b>Failed:</b> {html.escape(result.message)}</span>")
            self.results_view.setHtml(f"<p>The last run failed: {html.escape(result.message)}</p>")
            # A user error is a warning in the log (EngineTask logged it); an unexpected one is critical.
            self._say(result.message, Qgis.Critical, Qgis.Critical if result.details else Qgis.Warning)
        self.task_done.emit(result)

    def _show_success(self, outcome) -> None:
        staged = self.staged
        is_map_crops = isinstance(outcome, pipeline.MapCropsOutcome)
        predicted = outcome.predict if is_map_crops else outcome
        model = outcome.model_path if is_map_crops else self.existing_model.filePath()
        model = staged.final_path(model)
        classes = pipeline.read_model_classes(model)
        suggestions = outcome.suggestions if is_map_crops else None
        group, self.result_layers = layer_tools.add_results(
            staged.final.name, classes, staged.final_path(predicted.map_path),
            staged.final_path(predicted.confidence_path), staged.final_path(predicted.fields_path),
            probabilities_path=staged.final_path(predicted.probabilities_path),
            uncertainty_path=staged.final_path(predicted.uncertainty_path),
            suggestions_path=staged.final_path(suggestions.path) if suggestions else None,
        )
        report = outcome.report if is_map_crops else None
        warnings = outcome.warnings if is_map_crops else []
        split = outcome.train.split if is_map_crops and outcome.train is not None else None
        self.results_view.setHtml(results_html(staged.final, model, report, warnings, staged.final_path, split)
                                  + results_extras.suggestions_hint(suggestions)
                                  + results_extras.profiles_image(report, staged.final_path))
        self._keep_export_state(staged, model, report)
        self.tabs.setCurrentWidget(self.results_page)
        self.progress.setValue(100)
        text = f"Done: results in '{staged.final}', added to the project as group '{group.name()}'."
        if report is not None:
            m = report.metrics
            text += f" Test fields: OA {_fmt(m.get('overall_accuracy'))}, mIoU {_fmt(m.get('miou'))}, " \
                    f"kappa {_fmt(m.get('kappa'))}."
        if is_map_crops and outcome.time_budget_note:
            text += " " + outcome.time_budget_note
        self.status.setText(text)
        self._say(text, Qgis.Success)

    def _keep_export_state(self, staged, model: str, report) -> None:
        """What *Export map…* needs of the result just loaded."""
        by_name = {layer.name(): layer for layer in self.result_layers}
        run = staged.final.name
        self.export_state = {
            "folder": str(staged.final), "class_map": by_name.get(layer_tools.result_layer_name("map", run)),
            "fields": by_name.get(layer_tools.result_layer_name("fields", run)),
            "report_json": staged.final_path(report.json_path) if report is not None else None, "model": model,
            "title": f"Crop map: {staged.final.name}",
        }
        self.export_button.setEnabled(self.export_state["class_map"] is not None)

    def _show_problems(self, problems: list[str]) -> None:
        self.showing_problems = True
        self.status.setText("<b>Cannot run yet:</b><ul>" + "".join(f"<li>{html.escape(p)}</li>" for p in problems)
                            + "</ul>")

    def refresh_problems(self, *_args) -> None:
        """Keeps the "Cannot run yet" list true while the user fills the form (once a Run was refused, until one
        starts)."""
        if not self.showing_problems or self.task is not None:
            return
        problems = self.check()
        if problems:
            self._show_problems(problems)
        else:
            self.status.setText("Ready to run.")  # still watched: a later change may bring a problem back

    def _watch_form(self) -> None:
        """Every control a check looks at refreshes the problem list when it changes."""
        # Rows are added, removed and given masks by methods that call refresh_problems when the rows are whole.
        self.series_table.itemChanged.connect(self.refresh_problems)
        for combo in (self.mask_combo, self.layout_combo):
            combo.currentIndexChanged.connect(self.refresh_problems)
        self.polygons_combo.layerChanged.connect(self.refresh_problems)
        self.class_field_combo.fieldChanged.connect(self.refresh_problems)
        self.train_radio.toggled.connect(self.refresh_problems)
        for widget in (self.existing_model, self.output_folder):
            widget.fileChanged.connect(self.refresh_problems)
        self.run_name.textChanged.connect(self.refresh_problems)
        for spin in (self.val_fraction_spin, self.test_fraction_spin, self.tile_spin, self.overlap_spin):
            spin.valueChanged.connect(self.refresh_problems)

    def _say(self, text: str, level=Qgis.Info, log_level=None) -> None:
        """A message in the QGIS message bar (when there is one) and the CropMapper log (at ``log_level``, default
        ``level``)."""
        QgsMessageLog.logMessage(text, LOG_TAG, level if log_level is None else log_level)
        if self.iface is not None:
            try:
                self.iface.messageBar().pushMessage("CropMapper", text, level, 8)
            except Exception:  # noqa: BLE001 - no message bar (e.g. closing QGIS)
                pass

    # ------------------------------------------------------------------------------------------------------------
    # Help

    def _explain_controls(self) -> None:
        """A tooltip on every control (and its form label): Processing's help text where the option is the same."""
        help_of = processing_help()
        same_as_processing = {
            self.layout_combo: params.LAYOUT, self.stack_order_combo: params.STACK_ORDER,
            self.polygons_combo: params.POLYGONS, self.class_field_combo: params.CLASS_FIELD,
            self.preset_combo: params.PRESET, self.epochs_spin: params.EPOCHS,
            self.label_fraction_spin: params.LABEL_FRACTION, self.val_fraction_spin: params.VAL_FRACTION,
            self.test_fraction_spin: params.TEST_FRACTION, self.pretrain_box: params.PRETRAIN,
            self.pretrain_epochs_spin: params.PRETRAIN_EPOCHS, self.mask_ratio_spin: params.MASK_RATIO,
            self.device_combo: params.DEVICE, self.tile_spin: params.TILE, self.overlap_spin: params.OVERLAP,
            self.batch_spin: params.PREDICT_BATCH, self.output_folder: "OUTPUT_FOLDER",
            self.existing_model: "EXISTING_MODEL", self.existing_radio: "EXISTING_MODEL",
            self.series_table: params.SERIES, self.s2_bands_edit: params.S2_BANDS,
        }
        for widget, name in same_as_processing.items():
            widget.setToolTip(help_of.get(name, ""))
        own = {
            self.mask_combo: f"{help_of.get(params.CLOUD_MASKS, '')} Or: {help_of.get(params.SCL, '')}",
            self.train_radio: "Pre-train (optionally) and train a model on the labelled fields, then map.",
            self.run_name: "The sub-folder of the output folder for this run; its name also names the layers.",
            self.class_preview: "The classes found in the class field, with the number of polygons of each.",
            self.device_label: "The devices PyTorch found on this computer.",
            self.run_button: "Check the inputs, then run every step in the background.",
            self.cancel_button: "Stop the run; nothing of it is written.",
        }
        outputs = {"map": "GeoTIFF of class values, styled with the class names and colours (always written).",
                   "confidence": "Probability of the mapped class per pixel.",
                   "fields": "Your polygons with their predicted class, its probability and their use (crop_split).",
                   "report": "Accuracy on the test fields: HTML, JSON and CSV.",
                   "probabilities": "One band per class with its probability (K times the map's size).",
                   "uncertainty": "Normalised entropy of the class probabilities: 0 sure .. 1 every class alike.",
                   "suggestions": "The unlabelled polygons worth labelling next (most uncertain, spread over the "
                                  "classes and the area), as a layer ranked 1 = label first."}
        own.update({self.output_checks[key]: text for key, text in outputs.items()})
        for widget, text in own.items():
            widget.setToolTip(text)
        for form in self.findChildren(QFormLayout):
            for row in range(form.rowCount()):
                label, field = (form.itemAt(row, role) for role in (QFormLayout.LabelRole, QFormLayout.FieldRole))
                if label is not None and field is not None and label.widget() is not None:
                    tip = field.widget().toolTip() if field.widget() is not None else self._row_tip(field.layout())
                    label.widget().setToolTip(tip)

    @staticmethod
    def _row_tip(row) -> str:
        """The tooltip of the first control of a row laid out in a box."""
        for index in range(row.count() if row is not None else 0):
            widget = row.itemAt(index).widget()
            if widget is not None and widget.toolTip():
                return widget.toolTip()
        return ""

    def show_help(self) -> None:
        """The user guide (shipped with the plugin) in a window of its own."""
        guide = Path(guide_path())
        window = QDialog(self)
        window.setWindowTitle("CropMapper: user guide")
        window.resize(900, 700)
        browser = QTextBrowser()
        browser.setOpenExternalLinks(True)
        browser.setSearchPaths([str(guide.parent)])
        if guide.is_file():
            browser.setMarkdown(guide.read_text(encoding="utf-8"))
        else:
            browser.setPlainText(f"The user guide '{guide}' is missing from the plugin folder: reinstall the plugin.")
        QVBoxLayout(window).addWidget(browser)
        self.help_window = window
        window.show()

    # ------------------------------------------------------------------------------------------------------------
    # Settings

    def save_settings(self) -> None:
        s = QgsSettings()
        for key, value in self._settings_values().items():
            s.setValue(SETTINGS_PREFIX + key, value)

    def _settings_values(self) -> dict:
        return {
            "layout": self.layout_key(), "stack_order": self.stack_order_combo.currentData(),
            "mask_mode": self.mask_combo.currentData(), "preset": self.preset_combo.currentData(),
            "epochs": self.epochs_spin.value(), "label_fraction": self.label_fraction_spin.value(),
            "val_fraction": self.val_fraction_spin.value(), "test_fraction": self.test_fraction_spin.value(),
            "pretrain": self.pretrain_box.isChecked(), "pretrain_epochs": self.pretrain_epochs_spin.value(),
            "mask_ratio": self.mask_ratio_spin.value(), "device": self.device_combo.currentData(),
            "tile": self.tile_spin.value(), "overlap": self.overlap_spin.value(), "batch": self.batch_spin.value(),
            "output_folder": self.output_folder.filePath(), "existing_model": self.existing_model.filePath(),
            "use_existing": self.existing_radio.isChecked(),
            **{f"output_{k}": c.isChecked() for k, c in self.output_checks.items()},
        }

    def load_settings(self) -> None:
        s = QgsSettings()

        def get(key, default, kind=str):
            value = s.value(SETTINGS_PREFIX + key, default)
            if kind is bool:
                return value if isinstance(value, bool) else str(value).lower() == "true"
            try:
                return kind(value)
            except (TypeError, ValueError):
                return default

        for combo, key in ((self.layout_combo, "layout"), (self.stack_order_combo, "stack_order"),
                           (self.mask_combo, "mask_mode"), (self.preset_combo, "preset"),
                           (self.device_combo, "device")):
            index = combo.findData(get(key, combo.currentData()))
            if index >= 0:
                combo.setCurrentIndex(index)
        for spin, key, kind in ((self.epochs_spin, "epochs", int), (self.label_fraction_spin, "label_fraction", float),
                                (self.val_fraction_spin, "val_fraction", float),
                                (self.test_fraction_spin, "test_fraction", float),
                                (self.pretrain_epochs_spin, "pretrain_epochs", int),
                                (self.mask_ratio_spin, "mask_ratio", float), (self.tile_spin, "tile", int),
                                (self.overlap_spin, "overlap", int), (self.batch_spin, "batch", int)):
            spin.setValue(get(key, spin.value(), kind))
        self.pretrain_box.setChecked(get("pretrain", True, bool))
        self.output_folder.setFilePath(get("output_folder", ""))
        self.existing_model.setFilePath(get("existing_model", ""))
        (self.existing_radio if get("use_existing", False, bool) else self.train_radio).setChecked(True)
        for key, check in self.output_checks.items():
            if key != "map":
                check.setChecked(get(f"output_{key}", key not in OUTPUTS_OFF_BY_DEFAULT, bool))

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        self.save_settings()
        super().closeEvent(event)


def _spin(low: int, high: int, value: int) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(low, high)
    spin.setValue(value)
    return spin


def _double(low: float, high: float, value: float, step: float) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(low, high)
    spin.setDecimals(2)
    spin.setSingleStep(step)
    spin.setValue(value)
    return spin


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def results_html(folder: Path, model: str, report, warnings: list[str], final_path=lambda p: p,
                 split: Optional[dict] = None) -> str:
    """The Results tab: headline metrics, warnings on the scores' trust, a per-class table, the split of the fields,
    and links to the report and the folder."""
    from ..engine.evaluation.report import reliability_warnings

    parts = [f"<h3>Results</h3><p>Folder: <a href='{Path(folder).as_uri()}'>{html.escape(str(folder))}</a><br>"
             f"Model: {html.escape(str(model))}</p>"]
    if report is not None:
        m = report.metrics
        parts.append(
            f"<p><b>Test fields</b> ({html.escape(str(m.get('split', 'test')))}): "
            f"overall accuracy <b>{_fmt(m.get('overall_accuracy'))}</b>, mIoU <b>{_fmt(m.get('miou'))}</b>, "
            f"kappa <b>{_fmt(m.get('kappa'))}</b>, macro F1 {_fmt(m.get('macro_f1'))}</p>"
        )
        rows = "".join(
            "<tr><td><span style='background:#%02x%02x%02x'>&nbsp;&nbsp;&nbsp;</span> %s</td><td>%s</td><td>%s</td>"
            "<td>%s</td><td>%s</td><td>%d</td><td>%s</td><td>%.1f</td></tr>"
            % (*c.get("color", (200, 200, 200)), html.escape(c["name"]), _fmt(c.get("precision")),
               _fmt(c.get("recall")), _fmt(c.get("f1")), _fmt(c.get("iou")), c.get("support", 0),
               c.get("fields", "–"), c.get("mapped_area_ha", 0.0))
            for c in m.get("per_class", [])
        )
        trust = reliability_warnings(m)
        if trust:
            parts.append("<p style='color:#b00'><b>Trust in these scores</b></p><ul>"
                         + "".join(f"<li>{html.escape(w)}</li>" for w in trust) + "</ul>")
        parts.append("<table border='1' cellspacing='0' cellpadding='3'><tr><th>Class</th><th>Precision</th>"
                     "<th>Recall</th><th>F1</th><th>IoU</th><th>Test pixels</th><th>Test fields</th>"
                     f"<th>Mapped ha</th></tr>{rows}</table>")
        html_path = final_path(report.html_path)
        parts.append(f"<p><a href='{Path(html_path).as_uri()}'>Open the full HTML report</a> "
                     "(confusion matrix, areas).</p>")
    else:
        parts.append("<p>No accuracy report (no labelled fields, or the report was not asked for).</p>")
    if split:
        counts = ", ".join(f"{split[k]['fields']} {label} ({split[k]['pixels']} px)" for k, label in
                           (("train", "training"), ("val", "validation"), ("test", "test")) if k in split)
        parts.append(f"<p><b>Fields used</b>: {counts}. The column <i>crop_split</i> of the field-level layer says "
                     "which polygon went where (train, val, test; unused = left out by the fraction of fields "
                     "used).</p>")
    if warnings:
        parts.append("<p><b>Warnings</b></p><ul>" + "".join(f"<li>{html.escape(w)}</li>" for w in warnings) + "</ul>")
    return "".join(parts)
