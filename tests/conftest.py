"""Shared fixtures. pytest-qgis owns the QgsApplication; this file must not create one."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# OpenMP threads that spin while waiting make torch up to ~100x slower when the 2 cores are shared by several
# processes (measured: 0.44 s -> 40 s for one small prediction). Must be set before torch starts its thread pool.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
# The repository root is the plugin folder; QGIS and the plugin tests see it as the package ``cropmapper``.
PLUGIN_PATH = REPO / "build" / "pluginpath"

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
# QGIS's own ``processing`` package must win over the repository's ``processing/`` folder (the plugin's provider,
# imported as ``cropmapper.processing``), so QGIS's Python plugins folder goes before the repository root.
_QGIS_PLUGINS = Path(sys.base_prefix) / "share" / "qgis" / "python" / "plugins"
if _QGIS_PLUGINS.is_dir():
    sys.path.insert(0, str(_QGIS_PLUGINS))
    # Imported now: when pytest imports the repository's own __init__.py (it is a package) it puts the repository
    # root first on sys.path, and QGIS's ``processing`` imported later (by pytest-qgis) would be the repository's.
    import processing  # noqa: E402, F401


def _link_plugin() -> None:
    PLUGIN_PATH.mkdir(parents=True, exist_ok=True)
    link = PLUGIN_PATH / "cropmapper"
    if not link.is_symlink():
        link.symlink_to(REPO, target_is_directory=True)
    if str(PLUGIN_PATH) not in sys.path:
        sys.path.insert(0, str(PLUGIN_PATH))


_link_plugin()
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real Sentinel-2 samples in ../shared/data; tests using it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip_gpu)
