"""The dialog's Results with the uncertainty layer, the fields to label next and Export map…, on the Slovenia slice."""

from __future__ import annotations

import pytest
from qgis.core import QgsGraduatedSymbolRenderer, QgsProject, QgsSingleBandPseudoColorRenderer

from cropmapper.ui import export_map
from cropmapper.ui.tasks import Status
from tests.plugin.test_plugin_dialog import dialog, polygons  # noqa: F401 - the fixtures

pytestmark = pytest.mark.slow


def test_uncertainty_suggestions_and_export(dialog, tmp_path, wait_for):  # noqa: F811
    assert not dialog.output_checks["uncertainty"].isChecked() and not dialog.export_button.isEnabled()
    dialog.output_checks["uncertainty"].setChecked(True)
    dialog.output_checks["suggestions"].setChecked(True)
    task = dialog.start()
    assert task is not None, dialog.status.text()
    wait_for(lambda: dialog.last_result is not None)
    assert dialog.last_result.status is Status.SUCCESS, dialog.last_result.message + dialog.last_result.details
    group = QgsProject.instance().layerTreeRoot().findGroup("run1")
    layers = {node.layer().name(): node.layer() for node in group.findLayers()}
    assert isinstance(layers["Uncertainty (run1)"].renderer(), QgsSingleBandPseudoColorRenderer)
    outcome = dialog.last_result.value
    # the 4 polygons of the Slovenia layer with an empty class are the candidates
    assert outcome.suggestions is not None and outcome.suggestions.candidates <= 4
    assert isinstance(layers["Fields to label next (run1)"].renderer(), QgsGraduatedSymbolRenderer)
    assert "Label these next" in dialog.results_view.toPlainText()
    assert "Class time series (NDVI)" in dialog.results_view.toPlainText()
    chart = tmp_path / "out" / "run1" / "report" / "class_profiles.svg"
    assert chart.is_file() and chart.as_uri() in dialog.results_view.toHtml()
    assert dialog.export_button.isEnabled()
    pdf, png = export_map.export_results(str(tmp_path / "printed.pdf"), dialog.export_state["class_map"],
                                         dialog.export_state["title"], dialog.export_state["fields"],
                                         dialog.export_state["report_json"], dialog.export_state["model"])
    with open(pdf, "rb") as handle:
        assert handle.read(4) == b"%PDF" and png.endswith("printed.png")
    layout = QgsProject.instance().layoutManager().layoutByName(export_map.DEFAULT_LAYOUT_NAME)
    assert "OA " in layout.itemById("facts").text()
