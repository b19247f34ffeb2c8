"""QGIS startup script of scripts/screenshots.py: runs inside a real QGIS (``qgis --code``), grabs the windows."""

import os
import pickle
from pathlib import Path

from qgis.core import QgsProject, QgsVectorLayer
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QApplication
from qgis.utils import iface, loadPlugin, plugins, startPlugin

WORK = Path(os.environ["CROPMAPPER_SHOTS"])
IMG = Path(os.environ["CROPMAPPER_IMG"])
IMG.mkdir(parents=True, exist_ok=True)
inputs = pickle.loads((WORK / "inputs.pickle").read_bytes())
steps = []


def later(function, delay=1500):
    steps.append((function, delay))


def run_steps():
    if not steps:
        QApplication.instance().quit()
        return
    function, delay = steps.pop(0)
    try:
        function()
    except Exception:  # noqa: BLE001 - keep going, print for the log
        import traceback

        traceback.print_exc()
    QTimer.singleShot(delay, run_steps)


def grab(widget, name):
    QApplication.processEvents()
    widget.grab().save(str(IMG / name))
    print("saved", IMG / name, flush=True)


def setup():
    loadPlugin("cropmapper")
    startPlugin("cropmapper")
    iface.mainWindow().resize(1480, 920)
    iface.mainWindow().showNormal()
    from qgis.PyQt.QtWidgets import QDockWidget

    for dock in iface.mainWindow().findChildren(QDockWidget):
        if dock.objectName() == "Browser":
            dock.hide()  # more room for the legend of the results
    fields = QgsVectorLayer(inputs["polygons"], "Labelled fields (LULC)", "ogr")
    QgsProject.instance().addMapLayer(fields)


def open_dialog():
    plugin = plugins["cropmapper"]
    plugin.run()
    dialog = plugin.dialog
    dialog.resize(900, 680)
    dialog.add_series_files(inputs["images"])
    dialog.add_mask_files(inputs["masks"])
    dialog.mask_combo.setCurrentIndex(dialog.mask_combo.findData("cloud"))
    layer = QgsProject.instance().mapLayersByName("Labelled fields (LULC)")[0]
    dialog.set_polygons(layer, "LULC_NAME")
    dialog.output_folder.setFilePath(str(WORK / "output"))
    dialog.epochs_spin.setValue(30)
    dialog.pretrain_box.setChecked(True)
    dialog.estimate_time()  # the Run tab's expected time (a few timed steps; shot a little later)


def wait_for_estimate():
    import time

    dialog = plugins["cropmapper"].dialog
    end = time.monotonic() + 240
    while dialog.estimate_task is not None and time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.1)


def shot_tab(index, name):
    def shoot():
        dialog = plugins["cropmapper"].dialog
        dialog.tabs.setCurrentIndex(index)
        grab(dialog, name)
    return shoot


def load_results():
    from cropmapper.engine import pipeline
    from cropmapper.ui import layers
    from cropmapper.ui.dialog import results_html

    run = WORK / "run"
    import json
    from types import SimpleNamespace

    report_json = next((run / "report").glob("*.json"))
    report = SimpleNamespace(metrics=json.loads(report_json.read_text()),
                             html_path=str(next((run / "report").glob("*.html"))))
    from cropmapper.engine.bundle import ModelBundle

    classes = pipeline.read_model_classes(str(run / "model.cropmodel"))
    split = ModelBundle.load(str(run / "model.cropmodel")).provenance.get("split")
    group, loaded = layers.add_results("cropmap_slovenia_2016", classes, str(run / "crop_map.tif"),
                                       str(run / "confidence.tif"), str(run / "fields.gpkg"))
    QgsProject.instance().layerTreeRoot().findLayer(
        QgsProject.instance().mapLayersByName("Labelled fields (LULC)")[0].id()).setItemVisibilityChecked(False)
    group.setExpanded(True)
    for layer in loaded:
        node = QgsProject.instance().layerTreeRoot().findLayer(layer.id())
        node.setExpanded(layer.name().startswith("Crop map"))
    iface.mapCanvas().setExtent(loaded[-2].extent() if len(loaded) > 1 else loaded[0].extent())
    iface.mapCanvas().refreshAllLayers()
    dialog = plugins["cropmapper"].dialog
    dialog.results_view.setHtml(results_html(run, str(run / "model.cropmodel"), report, [], split=split))
    dialog.progress.setValue(100)
    dialog.status.setText(f"Done: results in '{run}', added to the project as group 'cropmap_slovenia_2016'.")


def shoot_main():
    view = iface.layerTreeView()
    view.expandAll()
    QApplication.processEvents()
    grab(iface.mainWindow(), "result_map.png")


def shoot_fields():
    for layer in QgsProject.instance().mapLayers().values():
        node = QgsProject.instance().layerTreeRoot().findLayer(layer.id())
        if layer.name().startswith("Fields: predicted class"):
            node.setItemVisibilityChecked(True)
            node.setExpanded(True)
        elif layer.name().startswith("Crop map"):
            node.setItemVisibilityChecked(False)
            node.setExpanded(False)
        elif layer.name().startswith("Confidence"):  # the confidence under the field outlines
            node.setItemVisibilityChecked(True)
            node.setExpanded(True)
    iface.mapCanvas().refreshAllLayers()


def show_installer():
    plugins["cropmapper"].show_installer()
    plugins["cropmapper"].installer_dialog.resize(760, 420)


later(setup, 3000)
later(open_dialog, 2000)
later(shot_tab(0, "dialog_series.png"), 500)
later(shot_tab(1, "dialog_training.png"), 500)
later(wait_for_estimate, 500)  # the Run tab shows the expected time started in open_dialog
later(shot_tab(2, "dialog_run.png"), 500)
later(load_results, 4000)
later(shoot_main, 500)
later(shot_tab(3, "dialog_results.png"), 500)
later(shoot_fields, 4000)
later(lambda: grab(iface.mainWindow(), "result_fields.png"), 500)
later(show_installer, 1000)
later(lambda: grab(plugins["cropmapper"].installer_dialog, "installer.png"), 500)
QTimer.singleShot(4000, run_steps)
