"""The form as a newcomer fills it: a suggested output folder, masks chosen from the images' folder, a problem list
that follows the form, a progress bar and Results tab that do not show an earlier run, user errors logged plainly."""

from __future__ import annotations

from pathlib import Path

import pytest
from qgis.core import Qgis, QgsApplication, QgsProject, QgsSettings, QgsVectorLayer

from cropmapper.ui.dialog import MapCropsDialog
from cropmapper.ui.tasks import Status


@pytest.fixture
def fresh(qgis_iface, qgis_new_project):  # noqa: ARG001
    QgsSettings().remove("cropmapper/dialog")
    dlg = MapCropsDialog(qgis_iface)
    yield dlg
    dlg.close()
    QgsSettings().remove("cropmapper/dialog")


def test_output_folder_and_mask_folder_follow_the_images(fresh, slovenia, tmp_path, monkeypatch):
    assert fresh.output_folder.filePath() == ""  # an unsaved project and no images: nothing sensible yet
    fresh.add_series_files(slovenia["images"][:2])
    suggested = Path(fresh.output_folder.filePath())
    assert suggested.name == "cropmapper"
    assert suggested.parent in (Path(slovenia["images"][0]).parent, Path.home())  # beside the images when writable
    assert fresh._images_dir() == str(Path(slovenia["images"][0]).parent)
    fresh.output_folder.setFilePath(str(tmp_path / "mine"))
    fresh.add_series_files(slovenia["images"][2:3])
    assert fresh.output_folder.filePath() == str(tmp_path / "mine")  # a chosen folder is kept


def test_problem_list_follows_the_form_and_refusal_resets_progress(fresh, slovenia, tmp_path):
    fresh.progress.setValue(100)  # as after an earlier run
    assert fresh.start() is None
    assert fresh.progress.value() == 0
    assert "Add the time series" in fresh.status.text()
    fresh.add_series_files(slovenia["images"])
    assert "Add the time series" not in fresh.status.text() and "Cannot run yet" in fresh.status.text()
    layer = QgsVectorLayer(slovenia["polygons"], "fields", "ogr")
    QgsProject.instance().addMapLayer(layer)
    fresh.set_polygons(layer, slovenia["field"])
    fresh.output_folder.setFilePath(str(tmp_path / "out"))
    assert fresh.status.text() == "Ready to run."
    fresh.overlap_spin.setValue(fresh.tile_spin.value())
    assert "tile overlap" in fresh.status.text()


def test_a_user_error_is_a_warning_in_the_log_and_clears_the_results(fresh, slovenia, tmp_path, wait_for):
    logged = []

    def record(message, tag, level):
        if tag == "CropMapper":
            logged.append((message, level))

    QgsApplication.messageLog().messageReceived.connect(record)
    broken = tmp_path / "broken.cropmodel"
    broken.write_bytes(b"not a model")
    fresh.add_series_files(slovenia["images"][:2])
    fresh.existing_radio.setChecked(True)
    fresh.existing_model.setFilePath(str(broken))
    fresh.output_folder.setFilePath(str(tmp_path / "out"))
    fresh.results_view.setHtml("<p>Results of an earlier run: forest 0.9</p>")
    assert fresh.start() is not None, fresh.status.text()
    assert "earlier run" not in fresh.results_view.toPlainText()
    wait_for(lambda: fresh.last_result is not None, timeout=120)
    QgsApplication.messageLog().messageReceived.disconnect(record)
    assert fresh.last_result.status is Status.FAILURE
    about = [(m, level) for m, level in logged if "broken.cropmodel" in m]
    assert about and all(level == Qgis.Warning for _m, level in about)
    assert not any("Traceback" in m for m, _level in logged)
    assert "failed" in fresh.results_view.toPlainText() and fresh.progress.value() == 0


_PROVIDERS: list = []  # the provider owns its algorithms: it must outlive them


def _algorithms() -> dict:
    """The provider's algorithms, initialised (as test_plugin_load does: no Processing framework needed)."""
    from cropmapper.processing.provider import CropMapperProvider

    provider = CropMapperProvider()
    _PROVIDERS.append(provider)
    provider.loadAlgorithms()
    for algorithm in provider.algorithms():
        algorithm.initAlgorithm()
    return {algorithm.name(): algorithm for algorithm in provider.algorithms()}


def test_every_control_explains_itself_with_processings_words(fresh):
    from qgis.PyQt.QtWidgets import QAbstractButton, QAbstractSpinBox, QComboBox, QFormLayout, QLineEdit

    from cropmapper.processing import params

    algorithm = _algorithms()["mapcrops"]
    assert fresh.tile_spin.toolTip() == algorithm.parameterDefinition(params.TILE).help() != ""
    assert fresh.mask_ratio_spin.toolTip() == algorithm.parameterDefinition(params.MASK_RATIO).help()
    controls = [w for kind in (QAbstractSpinBox, QComboBox, QAbstractButton, QLineEdit) for w in fresh.findChildren(kind)
                if w.isVisibleTo(fresh) or w.parent() is not None]
    silent = [w for w in controls if not w.toolTip() and not _inside_tooltipped(w, fresh)]
    assert not silent, [f"{type(w).__name__} {getattr(w, 'text', lambda: '')()!r}" for w in silent]
    labels = [form.itemAt(r, QFormLayout.LabelRole).widget() for form in fresh.findChildren(QFormLayout)
              for r in range(form.rowCount()) if form.itemAt(r, QFormLayout.LabelRole) is not None]
    assert labels and all(label.toolTip() for label in labels)


def _inside_tooltipped(widget, top) -> bool:
    """Parts of composite widgets (a file widget's line edit and button, a spin box's editor, tab bars) are covered
    by their owner's tooltip or are Qt's own furniture."""
    from qgis.PyQt.QtWidgets import QTabBar

    parent = widget.parent()
    while parent is not None and parent is not top:
        if parent.toolTip() or isinstance(parent, QTabBar):
            return True
        if type(parent).__name__ in ("QgsFileWidget", "QDialogButtonBox", "QTabBar", "QgsFilterLineEdit"):
            return bool(parent.toolTip()) or type(parent).__name__ == "QDialogButtonBox"
        parent = parent.parent()
    return False


def test_processing_labels_and_choices_read_well():
    algorithms = _algorithms()
    for algorithm in algorithms.values():
        for definition in algorithm.parameterDefinitions():
            assert "(optional)" not in definition.description(), (algorithm.name(), definition.name())
    mapcrops = algorithms["mapcrops"]
    assert mapcrops.parameterDefinition("LAYOUT").options()[0] == "One file per date (all bands)"
    url = mapcrops.helpUrl()
    assert url.startswith("file://") and Path(url[len("file://"):]).is_file()


def test_help_button_opens_the_user_guide(fresh):
    fresh.show_help()
    text = fresh.help_window.findChildren(__import__("qgis.PyQt.QtWidgets", fromlist=["QTextBrowser"]).QTextBrowser)[0]
    assert "Map crops" in text.toPlainText()
    fresh.help_window.close()


@pytest.mark.slow
def test_expected_time_before_run(fresh, slovenia, wait_for):
    assert fresh.estimate_time() is None and "time series" in fresh.estimate_label.text()
    fresh.add_series_files(slovenia["images"])
    layer = QgsVectorLayer(slovenia["polygons"], "fields", "ogr")
    QgsProject.instance().addMapLayer(layer)
    fresh.set_polygons(layer, slovenia["field"])
    fresh.device_combo.setCurrentIndex(fresh.device_combo.findData("cpu"))
    shape = fresh._run_shape()
    assert shape["bands"] == 1 and shape["dates"] == 4 and shape["classes"] == 5
    assert 0 < shape["labelled_area"] <= shape["width"] * shape["height"]
    task = fresh.estimate_time()
    assert task is not None
    wait_for(lambda: fresh.estimate_task is None, timeout=180)
    text = fresh.estimate_label.text()
    assert text.startswith("About") and "pre-training" in text and "training" in text and "mapping" in text, text
