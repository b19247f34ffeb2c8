"""Issue 15 in real QGIS: Processing and the dialog keep inputs (1), fail cleanly on a full disk (4) and commit all
outputs together (5), because they call the same engine functions as the command line."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from qgis.core import QgsProcessingException, QgsProcessingFeedback, QgsProject, QgsSettings, QgsVectorLayer

from cropmapper.ui.dialog import MapCropsDialog
from cropmapper.ui.tasks import StagedFolder, Status

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from reliability_helpers import fill, file_state, files_under, small_disk  # noqa: E402

pytestmark = pytest.mark.slow


def _series(slovenia, images=None) -> dict:
    return {"SERIES": images or slovenia["images"], "CLOUD_MASKS": slovenia["masks"], "DEVICE": "cpu"}


# ------------------------------------------------------------------ Processing


def test_1_processing_classify_output_naming_an_input_image_is_refused(provider, trained, slovenia, tmp_path):  # noqa: ARG001
    import processing

    images = [shutil.copy(p, tmp_path / Path(p).name) for p in slovenia["images"]]
    before = file_state(images[1])
    with pytest.raises(QgsProcessingException, match="is the input"):
        processing.run("cropmapper:classify", {**_series(slovenia, [str(p) for p in images]),
                                               "MODEL": trained["model"], "OUTPUT": str(images[1])})
    assert file_state(images[1]) == before


def test_4_processing_classify_on_a_full_disk_leaves_nothing(provider, trained, slovenia):  # noqa: ARG001
    import processing

    with small_disk(512) as disk:
        fill(disk, leave_kib=16)
        with pytest.raises(QgsProcessingException, match="No space left on"):
            processing.run("cropmapper:classify", {
                **_series(slovenia), "MODEL": trained["model"], "FIELDS": slovenia["polygons"],
                "OUTPUT": str(disk / "map.tif"), "OUTPUT_CONFIDENCE": str(disk / "conf.tif"),
                "OUTPUT_FIELDS": str(disk / "fields.gpkg"),
            })
        assert files_under(disk) == []


class _CancelAtFieldResults(QgsProcessingFeedback):
    """Cancels when the engine starts writing the field-level results: the map is computed by then."""

    def setProgressText(self, text: str) -> None:  # noqa: N802 (QGIS's name)
        super().setProgressText(text)
        if "field-level" in text:
            self.cancel()


def test_5_processing_cancel_while_writing_field_results_leaves_no_map(provider, trained, slovenia, tmp_path):  # noqa: ARG001
    import processing

    feedback = _CancelAtFieldResults()
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        processing.run("cropmapper:classify", {
            **_series(slovenia), "MODEL": trained["model"], "FIELDS": slovenia["polygons"],
            "OUTPUT": str(tmp_path / "map.tif"), "OUTPUT_CONFIDENCE": str(tmp_path / "conf.tif"),
            "OUTPUT_FIELDS": str(tmp_path / "fields.gpkg"),
        }, feedback=feedback)
    assert feedback.isCanceled()
    assert files_under(tmp_path) == []


# ------------------------------------------------------------------ the dialog


@pytest.fixture
def existing_model_dialog(qgis_iface, slovenia, trained, qgis_new_project, wait_for):  # noqa: ARG001
    QgsSettings().remove("cropmapper/dialog")
    layer = QgsVectorLayer(slovenia["polygons"], "fields", "ogr")
    QgsProject.instance().addMapLayer(layer)
    dlg = MapCropsDialog(qgis_iface)
    dlg.add_series_files(slovenia["images"])
    dlg.add_mask_files(slovenia["masks"])
    dlg.mask_combo.setCurrentIndex(dlg.mask_combo.findData("cloud"))
    dlg.set_polygons(layer, slovenia["field"])
    dlg.existing_radio.setChecked(True)
    dlg.existing_model.setFilePath(trained["model"])
    dlg.device_combo.setCurrentIndex(dlg.device_combo.findData("cpu"))
    dlg.run_name.setText("run1")
    yield dlg
    if dlg.task is not None:
        dlg.cancel()
        wait_for(lambda: dlg.task is None)
    dlg.close()
    QgsSettings().remove("cropmapper/dialog")


def test_1_processing_mapcrops_refuses_a_folder_whose_map_would_replace_an_input(provider, trained, slovenia,  # noqa: ARG001
                                                                                    tmp_path):
    import processing

    folder = tmp_path / "mapped"
    folder.mkdir()
    image = shutil.copy(slovenia["images"][0], folder / "crop_map.tif")  # an input where the map would go
    before = file_state(image)
    with pytest.raises(QgsProcessingException, match="is the input"):
        processing.run("cropmapper:mapcrops", {
            **_series(slovenia, [str(image), *slovenia["images"][1:]]), "POLYGONS": slovenia["polygons"],
            "CLASS_FIELD": slovenia["field"], "EXISTING_MODEL": trained["model"], "OUTPUT_FOLDER": str(folder),
        })
    assert file_state(image) == before
    # QGIS itself may leave a statistics sidecar of the input it read; nothing of the run is there.
    assert [p for p in files_under(tmp_path) if not p.endswith(".aux.xml")] == ["mapped", "mapped/crop_map.tif"]


def test_1_dialog_never_maps_into_a_folder_holding_an_input(existing_model_dialog, slovenia, tmp_path):
    dialog = existing_model_dialog
    final = tmp_path / "out" / "run1"
    final.mkdir(parents=True)
    image = shutil.copy(slovenia["images"][0], final / "crop_map.tif")
    before = file_state(image)
    dialog.clear_series()
    dialog.add_series_files([str(image), *slovenia["images"][1:]])
    dialog.output_folder.setFilePath(str(tmp_path / "out"))
    assert dialog.start() is None  # the run folder must be new
    assert "exists already" in dialog.status.text()
    assert file_state(image) == before


def test_4_dialog_on_a_full_disk_fails_with_a_message_and_leaves_nothing(existing_model_dialog, wait_for):
    dialog = existing_model_dialog
    with small_disk(768) as disk:
        fill(disk, leave_kib=24)
        dialog.output_folder.setFilePath(str(disk / "out"))
        assert dialog.start() is not None, dialog.status.text()
        wait_for(lambda: dialog.last_result is not None)
        result = dialog.last_result
        assert result.status is Status.FAILURE, result.message
        assert "No space left on" in result.message and "Traceback" not in result.message
        assert files_under(disk) == []


def test_staged_folder_is_locked_against_a_second_run(tmp_path):
    from cropmapper.engine.errors import EngineError

    first, second = StagedFolder(str(tmp_path / "run")), StagedFolder(str(tmp_path / "run"))
    with first as partial:
        (partial / "crop_map.tif").write_text("first")
        with pytest.raises(EngineError, match="being written by another CropMapper run"):
            second.create()
    assert (tmp_path / "run" / "crop_map.tif").read_text() == "first"
    assert files_under(tmp_path) == ["run", "run/crop_map.tif"]
