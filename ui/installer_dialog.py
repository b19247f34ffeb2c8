"""The dialog that offers to install PyTorch and einops, running pip in a QgsTask with a visible log."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from qgis.core import QgsApplication, QgsMessageLog, QgsTask, Qgis
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtGui import QFont
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from . import installer

LOG_TAG = "CropMapper"


class InstallTask(QgsTask):
    """Runs ``installer.install`` in the background; ``log`` carries pip's output, ``done`` the result."""

    log = pyqtSignal(str)
    done = pyqtSignal(object)  # installer.InstallResult

    def __init__(self, target: Optional[Path] = None, cuda: Optional[str] = None, **install_args) -> None:
        super().__init__("CropMapper: installing PyTorch and einops", QgsTask.CanCancel)
        self.target = target
        self.cuda = cuda
        self.install_args = install_args
        self.result: Optional[installer.InstallResult] = None

    def run(self) -> bool:
        try:
            self.result = installer.install(
                self.target, self.cuda, log=self.log.emit, cancelled=self.isCanceled, **self.install_args
            )
        except Exception as exc:  # noqa: BLE001 - any failure must reach the dialog, not kill the task manager
            self.result = installer.InstallResult(False, f"The installation failed: {exc}", False)
        return self.result.ok

    def finished(self, ok: bool) -> None:  # noqa: ARG002 - result carries the details
        result = self.result or installer.InstallResult(False, "The installation was cancelled.", False)
        QgsMessageLog.logMessage(result.message, LOG_TAG, Qgis.Success if result.ok else Qgis.Warning)
        self.done.emit(result)


class InstallerDialog(QDialog):
    """Says what is missing and installs it on request (CPU build of PyTorch unless a CUDA build is chosen)."""

    installed = pyqtSignal(object)  # installer.InstallResult

    def __init__(self, parent: Optional[QWidget] = None, missing: Optional[list] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("CropMapper: install dependencies")
        self.resize(720, 460)
        self.task: Optional[InstallTask] = None
        missing = installer.missing_dependencies() if missing is None else missing

        layout = QVBoxLayout(self)
        self.info = QLabel(self.describe(missing))
        self.info.setWordWrap(True)
        layout.addWidget(self.info)

        row = QHBoxLayout()
        self.cuda_check = QCheckBox("Install a CUDA (NVIDIA GPU) build of PyTorch:")
        self.cuda_combo = QComboBox()
        self.cuda_combo.addItems(installer.CUDA_BUILDS)
        self.cuda_combo.setEnabled(False)
        self.cuda_check.toggled.connect(self.cuda_combo.setEnabled)
        row.addWidget(self.cuda_check)
        row.addWidget(self.cuda_combo)
        row.addStretch(1)
        layout.addLayout(row)

        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setFont(QFont("monospace"))
        layout.addWidget(self.log_view, 1)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)

        buttons = QDialogButtonBox()
        self.install_button = QPushButton("Install")
        self.cancel_button = QPushButton("Cancel installation")
        self.cancel_button.setEnabled(False)
        buttons.addButton(self.install_button, QDialogButtonBox.ActionRole)
        buttons.addButton(self.cancel_button, QDialogButtonBox.ActionRole)
        buttons.addButton(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        self.install_button.clicked.connect(lambda: self.start())
        self.cancel_button.clicked.connect(self.cancel)
        layout.addWidget(buttons)

    @staticmethod
    def describe(missing: list) -> str:
        """What is missing (or that nothing is) and where the packages go."""
        if missing:
            text = "CropMapper needs packages that this QGIS does not have:<ul>"
            text += "".join(f"<li>{dep.problem}</li>" for dep in missing) + "</ul>"
        else:
            text = "PyTorch and einops are installed. You can reinstall them (e.g. to switch to a CUDA build). "
        return text + (
            f"They are installed with pip into <code>{installer.packages_dir()}</code>, using the Python that QGIS "
            "runs; only what is missing, and QGIS's own numpy is kept. The download of PyTorch is large (about "
            "200 MB for the CPU build)."
        )

    def cuda_build(self) -> Optional[str]:
        return self.cuda_combo.currentText() if self.cuda_check.isChecked() else None

    def start(self, **install_args) -> InstallTask:
        """Starts the installation task (``install_args`` go to ``installer.install``, e.g. for tests)."""
        self.install_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText("Installing ... (QGIS stays usable; see the task manager)")
        self.task = InstallTask(cuda=self.cuda_build(), **install_args)
        self.task.log.connect(self.log_view.appendPlainText)
        self.task.done.connect(self._done)
        QgsApplication.taskManager().addTask(self.task)
        return self.task

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def _done(self, result: installer.InstallResult) -> None:
        self.task = None
        self.install_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.status.setText(("<b>Restart QGIS</b>: " if result.restart else "") + result.message)
        if result.ok:  # the list of what is missing must not stay until a restart
            self.info.setText(self.describe(installer.missing_dependencies()))
        self.installed.emit(result)
