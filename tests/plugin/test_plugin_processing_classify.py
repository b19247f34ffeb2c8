"""``cropmapper:classify`` with the uncertainty output and the Bayesian smoothing (within the field polygons).

Named to sort after test_plugin_load, which registers the provider itself and must run before the session's."""

from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException

pytestmark = pytest.mark.slow


def test_classify_with_uncertainty_and_smoothing(provider, trained, slovenia, tmp_path):  # noqa: ARG001
    import processing

    base = {"SERIES": slovenia["images"], "CLOUD_MASKS": slovenia["masks"], "DEVICE": "cpu", "MODEL": trained["model"],
            "OUTPUT_CONFIDENCE": None, "OUTPUT_FIELDS": None}
    plain = processing.run("cropmapper:classify", {**base, "OUTPUT": str(tmp_path / "plain.tif"),
                                                   "OUTPUT_UNCERTAINTY": str(tmp_path / "unc.tif"),
                                                   "OUTPUT_PROBABILITIES": str(tmp_path / "p.tif")})
    uncertainty = gdal.Open(plain["OUTPUT_UNCERTAINTY"]).ReadAsArray()
    assert 0.0 <= uncertainty.min() and uncertainty.max() <= 1.0 and uncertainty.max() > 0
    assert (tmp_path / "unc.qml").exists()
    smooth = processing.run("cropmapper:classify", {
        **base, "OUTPUT": str(tmp_path / "smooth.tif"), "FIELDS": slovenia["polygons"], "SMOOTH": True,
        "SMOOTH_WINDOW": 5, "SMOOTHNESS": 50.0, "SMOOTH_BY_PARCEL": True, "OUTPUT_PROBABILITIES": str(tmp_path / "sp.tif")})
    a, b = gdal.Open(plain["OUTPUT_PROBABILITIES"]).ReadAsArray(), gdal.Open(smooth["OUTPUT_PROBABILITIES"]).ReadAsArray()
    mapped = a.max(axis=0) > 0
    assert a.shape == b.shape and np.array_equal(mapped, b.max(axis=0) > 0)
    assert np.abs(a - b)[:, mapped].max() > 1e-3 and np.allclose(b[:, mapped].sum(axis=0), 1.0, atol=1e-4)
    with pytest.raises(QgsProcessingException, match="parcel"):
        processing.run("cropmapper:classify", {**base, "OUTPUT": str(tmp_path / "x.tif"), "SMOOTH": True,
                                               "SMOOTH_BY_PARCEL": True})
