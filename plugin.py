"""The QGIS plugin object: the "Map crops" action, the Processing provider, the dependency check.

Loads without torch or einops (it then offers to install them) and never lets an error break QGIS start-up.
``iface`` is None under ``qgis_process``: only ``initProcessing`` is called then.
"""

from __future__ import annotations

import traceback
from typing import Optional

from qgis.core import Qgis, QgsApplication, QgsMessageLog
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction, QPushButton

from .ui import installer

PLUGIN_NAME = "CropMapper"
LOG_TAG = "CropMapper"
ICON_PATH = str(installer.PLUGIN_DIR / "resources" / "icon.svg")

# The packages the installer put into the plugin folder must be importable before anything asks for torch.
installer.add_packages_dir_to_path()


class CropMapperPlugin:
    """Created by ``classFactory``; QGIS calls ``initProcessing``, ``initGui`` and ``unload``."""

    def __init__(self, iface) -> None:
        self.iface = iface
        self.provider = None
        self.action: Optional[QAction] = None
        self.install_action: Optional[QAction] = None
        self.toolbar = None
        self.dialog = None
        self.installer_dialog = None
        self.dependency_message = None  # the message bar's "torch is not installed" item, while it is shown

    # Processing (also under qgis_process, where iface is None)
    def initProcessing(self) -> None:  # noqa: N802 (QGIS's name)
        if self.provider is not None:
            return
        from .processing.provider import CropMapperProvider

        self.provider = CropMapperProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    # GUI
    def initGui(self) -> None:  # noqa: N802 (QGIS's name)
        self.initProcessing()
        if self.iface is None:
            return
        icon = QIcon(ICON_PATH)
        main_window = self.iface.mainWindow()
        self.action = QAction(icon, "Map crops…", main_window)
        self.action.setObjectName("cropmapperMapCrops")
        self.action.setToolTip("Map crop types from a Sentinel-2 time series and labelled fields")
        self.action.triggered.connect(self.run)
        self.install_action = QAction("Install dependencies (PyTorch, einops)…", main_window)
        self.install_action.setObjectName("cropmapperInstall")
        self.install_action.triggered.connect(self.show_installer)

        self.iface.addPluginToRasterMenu(PLUGIN_NAME, self.action)
        self.iface.addPluginToRasterMenu(PLUGIN_NAME, self.install_action)
        self.toolbar = self.iface.addToolBar(PLUGIN_NAME)
        self.toolbar.setObjectName("CropMapperToolbar")
        self.toolbar.addAction(self.action)
        self.check_dependencies()

    def unload(self) -> None:
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        if self.iface is None:
            return
        for action in (self.action, self.install_action):
            if action is not None:
                self.iface.removePluginRasterMenu(PLUGIN_NAME, action)
        if self.toolbar is not None:
            self.iface.mainWindow().removeToolBar(self.toolbar)
            self.toolbar.deleteLater()
            self.toolbar = None
        for dialog in (self.dialog, self.installer_dialog):
            if dialog is not None and getattr(dialog, "task", None) is not None:
                dialog.task.cancel()  # a run in progress stops and cleans up after itself
            if dialog is not None:
                dialog.close()
                dialog.deleteLater()
        self.dialog = self.installer_dialog = None
        self.action = self.install_action = None

    def check_dependencies(self) -> list:
        """Warns in the message bar (with an Install button) when torch or einops is missing or too old."""
        try:
            missing = installer.missing_dependencies()
        except Exception:  # noqa: BLE001 - a broken check must not break QGIS start-up
            QgsMessageLog.logMessage(traceback.format_exc(), LOG_TAG, Qgis.Warning)
            return []
        if missing and self.iface is not None:
            text = "; ".join(dep.problem for dep in missing) + ". CropMapper needs them to run."
            bar = self.iface.messageBar()
            item = bar.createMessage(PLUGIN_NAME, text)
            button = QPushButton("Install…")
            button.clicked.connect(self.show_installer)
            item.layout().addWidget(button)
            bar.pushWidget(item, Qgis.Warning)
            self.dependency_message = item
        return missing

    def dependencies_installed(self, result) -> None:
        """After a successful install: the warning that they are missing goes (it would stay until a restart)."""
        if not result.ok or installer.missing_dependencies() or self.dependency_message is None:
            return
        try:
            self.iface.messageBar().popWidget(self.dependency_message)
        except RuntimeError:  # the user closed it already
            pass
        self.dependency_message = None

    def show_installer(self) -> None:
        from .ui.installer_dialog import InstallerDialog

        if self.installer_dialog is None:
            self.installer_dialog = InstallerDialog(self.iface.mainWindow() if self.iface else None)
            self.installer_dialog.installed.connect(self.dependencies_installed)
        self.installer_dialog.show()
        self.installer_dialog.raise_()

    def run(self) -> None:
        """Opens the Map crops dialog, or the installer when the dependencies are missing."""
        if installer.missing_dependencies():
            self.show_installer()
            return
        try:
            if self.dialog is None:
                from .ui.dialog import MapCropsDialog

                self.dialog = MapCropsDialog(self.iface, self.iface.mainWindow())
            self.dialog.show()
            self.dialog.raise_()
            self.dialog.activateWindow()
        except Exception as exc:  # noqa: BLE001 - show it, keep QGIS running
            QgsMessageLog.logMessage(traceback.format_exc(), LOG_TAG, Qgis.Critical)
            self.iface.messageBar().pushMessage(PLUGIN_NAME, f"Cannot open the dialog: {exc}", Qgis.Critical)
