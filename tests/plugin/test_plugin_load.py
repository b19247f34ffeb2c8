"""Loading and unloading the plugin in QGIS (iface fixture), under qgis_process (iface=None) and without torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from qgis.core import QgsApplication
from qgis.PyQt.QtWidgets import QAction, QToolBar

import cropmapper
from cropmapper.processing.provider import CropMapperProvider

REPO = Path(__file__).resolve().parents[2]
PLUGIN_PATH = REPO / "build" / "pluginpath"
ALGORITHMS = {"pretrain", "train", "classify", "evaluate", "mapcrops", "search", "suggest", "exportmap"}


def _registered_algorithms() -> set[str]:
    provider = QgsApplication.processingRegistry().providerById("cropmapper")
    return {alg.name() for alg in provider.algorithms()} if provider else set()


def test_load_and_unload_with_iface(qgis_iface):
    plugin = cropmapper.classFactory(qgis_iface)
    plugin.initGui()
    try:
        assert isinstance(plugin.action, QAction)
        assert plugin.action.text().startswith("Map crops")
        assert not plugin.action.icon().isNull()
        qgis_iface.addPluginToRasterMenu.assert_any_call("CropMapper", plugin.action)
        toolbar = qgis_iface.mainWindow().findChild(QToolBar, "CropMapperToolbar")
        assert toolbar is not None and plugin.action in toolbar.actions()
        assert _registered_algorithms() == ALGORITHMS
    finally:
        plugin.unload()
    assert QgsApplication.processingRegistry().providerById("cropmapper") is None
    qgis_iface.removePluginRasterMenu.assert_any_call("CropMapper", plugin.install_action or qgis_iface.removePluginRasterMenu.call_args[0][1])
    assert plugin.toolbar is None


def test_class_factory_without_iface_registers_processing_only():
    plugin = cropmapper.classFactory(None)
    plugin.initProcessing()
    plugin.initProcessing()  # twice is harmless (QGIS and initGui both call it)
    try:
        assert _registered_algorithms() == ALGORITHMS
        assert plugin.action is None
    finally:
        plugin.unload()


def test_algorithms_have_help_and_icons():
    provider = CropMapperProvider()
    provider.loadAlgorithms()
    assert provider.id() == "cropmapper"
    for alg in provider.algorithms():
        alg.initAlgorithm()
        assert len(alg.shortHelpString()) > 80, alg.name()
        assert not alg.icon().isNull()
        for parameter in alg.parameterDefinitions():
            assert parameter.help(), f"{alg.name()}:{parameter.name()} has no help text"


def test_metadata_is_complete():
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    parser.read(REPO / "metadata.txt", encoding="utf-8")
    meta = parser["general"]
    for key in ("name", "qgisMinimumVersion", "description", "about", "version", "author", "email", "repository",
                "tracker", "homepage", "hasProcessingProvider", "category", "tags", "icon", "changelog"):
        assert meta.get(key, "").strip(), key
    assert meta["qgisMinimumVersion"] == "3.22"
    assert meta["hasProcessingProvider"] == "yes"
    assert (REPO / meta["icon"]).is_file()


SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[1])
    from qgis.core import QgsApplication
    app = QgsApplication([], False)
    app.initQgis()
    import cropmapper
    plugin = cropmapper.classFactory(None)
    plugin.initProcessing()
    from cropmapper.ui import installer
    provider = QgsApplication.processingRegistry().providerById("cropmapper")
    from cropmapper.processing.base import load_pipeline
    try:
        load_pipeline()
        message = ""
    except Exception as exc:
        message = str(exc)
    print(json.dumps({
        "missing": [d.name for d in installer.missing_dependencies()],
        "algorithms": sorted(a.name() for a in provider.algorithms()),
        "torch_imported": "torch" in sys.modules,
        "message": message,
    }))
    plugin.unload()
    app.exitQgis()
    """
)


def _run_script(python: str) -> dict:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONNOUSERSITE="1")
    out = subprocess.run([python, "-c", SCRIPT, str(PLUGIN_PATH)], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_loading_does_not_import_torch():
    result = _run_script(sys.executable)
    assert result["missing"] == []
    assert set(result["algorithms"]) == ALGORITHMS
    assert result["torch_imported"] is False


def test_loads_and_explains_without_torch():
    """Debian's own Python has QGIS but no torch or einops: the plugin must load and say what to install."""
    system_python = "/usr/bin/python3"
    probe = subprocess.run([system_python, "-c", "import torch"], capture_output=True)
    if probe.returncode == 0 or not Path(system_python).exists():
        pytest.skip("needs a Python with QGIS but without torch")
    result = _run_script(system_python)
    assert set(result["missing"]) == {"torch", "einops"}
    assert set(result["algorithms"]) == ALGORITHMS
    assert "torch is not installed" in result["message"] and "Install dependencies" in result["message"]


def test_missing_dependency_offers_the_installer(qgis_iface, monkeypatch):
    from cropmapper.ui import installer

    monkeypatch.setattr(installer, "MINIMUM_VERSIONS", {**installer.MINIMUM_VERSIONS, "torch": "999.0"})
    plugin = cropmapper.classFactory(qgis_iface)
    plugin.initGui()
    try:
        missing = plugin.check_dependencies()
        assert [d.name for d in missing] == ["torch"]
        plugin.run()  # the Map crops action opens the installer instead of failing
        assert plugin.dialog is None
        assert plugin.installer_dialog is not None and plugin.installer_dialog.isVisible()
        assert "torch" in plugin.installer_dialog.info.text() and "too old" in plugin.installer_dialog.info.text()
    finally:
        plugin.unload()


def test_a_successful_install_clears_the_missing_warning(qgis_iface, monkeypatch):
    from cropmapper.ui import installer

    monkeypatch.setattr(installer, "MINIMUM_VERSIONS", {**installer.MINIMUM_VERSIONS, "torch": "999.0"})
    plugin = cropmapper.classFactory(qgis_iface)
    plugin.initGui()
    bar = qgis_iface.messageBar()
    try:
        plugin.check_dependencies()
        plugin.show_installer()
        warning = plugin.dependency_message
        assert warning in bar.items()
        assert "too old" in plugin.installer_dialog.info.text()
        monkeypatch.setattr(installer, "MINIMUM_VERSIONS", {**installer.MINIMUM_VERSIONS, "torch": "2.1"})
        # What the installer dialog does when pip succeeded (the pip run itself is tested in test_plugin_installer).
        plugin.installer_dialog._done(installer.InstallResult(True, "Installed.", False))
        assert plugin.dependency_message is None and warning not in bar.items()
        assert "are installed" in plugin.installer_dialog.info.text()
    finally:
        plugin.unload()


def test_action_opens_the_dialog(qgis_iface):
    plugin = cropmapper.classFactory(qgis_iface)
    plugin.initGui()
    try:
        plugin.action.trigger()
        assert plugin.dialog is not None and plugin.dialog.isVisible()
        assert plugin.dialog.device_combo.findData("cpu") >= 0
        assert "CPU" in plugin.dialog.device_label.text()
    finally:
        plugin.unload()
    assert plugin.dialog is None
