"""Fixtures of the plugin tests: a small slice of the Slovenia series, the registered provider, a trained model."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QCoreApplication

# Four dates keep each training run to seconds on a laptop CPU; the dates are real (summer 2016) and partly cloudy.
SLICE = slice(20, 24)


@pytest.fixture(scope="session")
def slovenia(shared_data: Path) -> dict:
    folder = shared_data / "slovenia_s2"
    images = sorted(str(p) for p in (folder / "ndvi").glob("*.tif"))[SLICE]
    masks = sorted(str(p) for p in (folder / "cloudmask").glob("*.tif"))[SLICE]
    assert len(images) == len(masks) == 4
    return {"images": images, "masks": masks, "polygons": str(folder / "lulc_polygons.gpkg"), "field": "LULC_NAME"}


@pytest.fixture(scope="session")
def provider(qgis_processing):  # noqa: ARG001 - Processing must be initialised first
    """The CropMapper provider registered the way qgis_process does it (classFactory(None) + initProcessing)."""
    import cropmapper

    plugin = cropmapper.classFactory(None)
    plugin.initProcessing()
    yield QgsApplication.processingRegistry().providerById("cropmapper")
    plugin.unload()


@pytest.fixture(scope="session")
def wait_for():
    """``wait_for(condition, timeout)``: runs the Qt event loop until ``condition()`` holds."""
    return _wait_for


def _wait_for(condition, timeout: float = 300.0) -> None:
    """Runs the Qt event loop until ``condition()`` (tasks report back through queued signals)."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the task did not finish in time")
        QCoreApplication.processEvents()
        time.sleep(0.02)


TRAIN_PARAMS = {"PRESET": 0, "EPOCHS": 1, "BATCH_SIZE": 8, "VAL_FRACTION": 0.2, "TEST_FRACTION": 0.3, "SEED": 0,
                "DEVICE": "cpu"}


@pytest.fixture(scope="session")
def trained(provider, slovenia, tmp_path_factory) -> dict:  # noqa: ARG001
    """``cropmapper:train`` through processing.run (tested in test_processing), reused by the later steps."""
    import processing

    out = tmp_path_factory.mktemp("trained") / "model.cropmodel"
    result = processing.run("cropmapper:train", {
        "SERIES": slovenia["images"], "CLOUD_MASKS": slovenia["masks"], "POLYGONS": slovenia["polygons"],
        "CLASS_FIELD": slovenia["field"], "OUTPUT_MODEL": str(out), **TRAIN_PARAMS,
    })
    return {"result": result, "model": str(out)}
