"""Uncertainty (normalised entropy) and Bayesian smoothing of class probabilities, on arrays and through the raster
writer."""

from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal

from engine.data import open_time_series
from engine.errors import EngineError
from engine.inference import predict_raster
from engine.inference.smoothing import SmoothingOptions, bayesian_smooth
from engine.inference.uncertainty import normalised_entropy

from tests.engine.test_predict_raster import FP32, H, W, make_bundle, write_polygons, write_scene

gdal.UseExceptions()


def test_normalised_entropy_bounds_and_known_values():
    probs = np.zeros((4, 1, 4), np.float32)
    probs[0, 0, 0] = 1.0  # sure
    probs[:, 0, 1] = 0.25  # uniform
    probs[:2, 0, 2] = 0.5  # torn between two of four: log 2 / log 4
    # column 3 stays 0: no data
    u = normalised_entropy(probs)
    np.testing.assert_allclose(u[0], [0.0, 1.0, 0.5, 0.0], atol=1e-6)
    assert u.dtype == np.float32
    # At equal confidence, a remainder spread over more classes is more uncertain (confidence cannot tell them apart).
    a = np.array([0.6, 0.4, 0.0, 0.0])[:, None, None]
    b = np.array([0.6, 0.1333, 0.1333, 0.1334])[:, None, None]
    assert normalised_entropy(b)[0, 0] > normalised_entropy(a)[0, 0]


def _field_scene(k=3, h=20, w=20, seed=0):
    """Left half class 0, right half class 1, noisy, with isolated wrong pixels."""
    rng = np.random.default_rng(seed)
    truth = np.zeros((h, w), int)
    truth[:, w // 2 :] = 1
    logits = rng.normal(0, 0.6, (k, h, w))
    logits[0] += np.where(truth == 0, 1.5, 0.0)
    logits[1] += np.where(truth == 1, 1.5, 0.0)
    flips = [(3, 3), (7, 4), (12, 15), (16, 13)]
    for y, x in flips:
        logits[2, y, x] += 5.0
    probs = np.exp(logits) / np.exp(logits).sum(0)
    return probs.astype(np.float32), truth, flips


def test_smoothing_removes_isolated_errors_and_keeps_probabilities():
    probs, truth, flips = _field_scene()
    before = (probs.argmax(0) != truth).sum()
    smoothed = bayesian_smooth(probs, SmoothingOptions(window=5, smoothness=20))
    after = (smoothed.argmax(0) != truth).sum()
    assert after < before and all(smoothed.argmax(0)[y, x] == truth[y, x] for y, x in flips)
    np.testing.assert_allclose(smoothed.sum(0), 1.0, atol=1e-5)
    # a tiny smoothness leaves the probabilities nearly as they were
    kept = bayesian_smooth(probs, SmoothingOptions(window=5, smoothness=0.01))
    assert np.abs(kept - probs).max() < 0.05


def test_smoothing_leaves_no_data_and_never_uses_it():
    probs, _, _ = _field_scene()
    probs[:, :5, :] = 0.0  # no data
    smoothed = bayesian_smooth(probs, SmoothingOptions(window=9))
    assert (smoothed[:, :5] == 0).all() and np.isfinite(smoothed).all()
    assert (smoothed[:, 5:].sum(0) > 0.99).all()


def test_smoothing_by_parcel_does_not_mix_parcels():
    probs, truth, _ = _field_scene()
    # A border column of the right parcel is weakly its own class: across the border it would be pulled left.
    probs[:, :, 10] = np.array([0.45, 0.55, 0.0])[:, None]
    parcels = np.where(truth == 0, 1, 2)
    mixed = bayesian_smooth(probs, SmoothingOptions(window=9, smoothness=1000, neigh_fraction=1.0))
    kept = bayesian_smooth(probs, SmoothingOptions(window=9, smoothness=1000, neigh_fraction=1.0), parcels)
    assert (kept.argmax(0)[:, 10] == 1).all()
    # the left parcel's probability of class 0 never leaks into the right one
    assert kept[0, :, 10].mean() < mixed[0, :, 10].mean()


@pytest.mark.parametrize("bad", [dict(window=4), dict(window=1), dict(smoothness=0.0), dict(neigh_fraction=0.0),
                                 dict(smoothness=float("nan"))])
def test_smoothing_options_are_checked(bad):
    with pytest.raises(EngineError, match="smoothing"):
        SmoothingOptions(**bad).validate()


def test_raster_writes_uncertainty_and_smooths(tmp_path):
    scene = write_scene(tmp_path)
    bundle = make_bundle()
    parcels = tmp_path / "parcels.gpkg"
    write_polygons(parcels, [(0, 0, 35, 50), (35, 0, 70, 50)])
    with open_time_series(scene) as series:
        plain = predict_raster(bundle, series, tmp_path / "map.tif", tmp_path / "conf.tif", tmp_path / "p.tif",
                               tile=16, overlap=4, out_uncertainty=tmp_path / "unc.tif", **FP32)
        smooth = predict_raster(bundle, series, tmp_path / "smap.tif", out_probabilities=tmp_path / "sp.tif",
                                tile=16, overlap=4, smoothing=SmoothingOptions(window=5), **FP32)
        by_parcel = predict_raster(bundle, series, tmp_path / "pmap.tif", tile=16, overlap=4, **FP32,
                                   smoothing=SmoothingOptions(window=5, by_parcel=True), parcel_vector=parcels)
        with pytest.raises(EngineError, match="parcel"):
            predict_raster(bundle, series, tmp_path / "x.tif", smoothing=SmoothingOptions(by_parcel=True), **FP32)
    probs = gdal.Open(plain.probabilities_path).ReadAsArray()
    unc = gdal.Open(plain.uncertainty_path).ReadAsArray()
    np.testing.assert_allclose(unc, normalised_entropy(probs), atol=1e-5)
    assert (tmp_path / "unc.qml").exists() and "singlebandpseudocolor" in (tmp_path / "unc.qml").read_text()
    assert gdal.Open(plain.uncertainty_path).GetRasterBand(1).GetDescription().startswith("uncertainty")
    expected = bayesian_smooth(probs, SmoothingOptions(window=5))  # one block: the same as the whole array
    np.testing.assert_allclose(gdal.Open(smooth.probabilities_path).ReadAsArray(), expected, atol=1e-5)
    labels = gdal.Open(smooth.map_path).ReadAsArray()
    assert np.array_equal(labels > 0, probs.max(0) > 0)
    assert gdal.Open(by_parcel.map_path).ReadAsArray().shape == (H, W)
    assert not (tmp_path / "x.tif").exists()


def test_cli_predict_uncertainty_and_smoothing(tmp_path, capsys):
    from engine.cli import main

    scene = write_scene(tmp_path)
    model = tmp_path / "m.cropmodel"
    make_bundle().save(model)
    args = ["predict", "--model", str(model), "--images", *scene, "--device", "cpu", "--tile", "16", "--overlap", "4"]
    assert main([*args, "--out", str(tmp_path / "a.tif"), "--uncertainty", str(tmp_path / "u.tif"), "--smooth",
                 "--smooth-window", "5", "--json"]) == 0
    out = capsys.readouterr().out
    assert "Uncertainty written to" in out and gdal.Open(str(tmp_path / "u.tif")) is not None
    assert main([*args, "--out", str(tmp_path / "b.tif"), "--smooth", "--smooth-window", "4"]) == 1
    assert "odd number" in capsys.readouterr().err and not (tmp_path / "b.tif").exists()
    assert main([*args, "--out", str(tmp_path / "c.tif"), "--smooth-by-parcel"]) == 1
    assert "--smooth" in capsys.readouterr().err
