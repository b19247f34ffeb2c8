"""Tiled array prediction: seamless blending, padding of small arrays, nodata, batch-size independence, GPU parity."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import torch

from engine.bundle import ModelBundle
from engine.classes import ClassTable
from engine.errors import CancelledError, EngineError
from engine.inference import predict_array
from engine.inference.weights import blend_window, blend_window_1d, tile_starts
from engine.model import STCLN, make_config

C, K, T = 4, 3, 5
DATES = [dt.date(2021, 3, 1) + dt.timedelta(days=20 * i) for i in range(T)]


def make_bundle(seed: int = 0) -> ModelBundle:
    """An untrained lite STCLN in a real model bundle (the network's skill is not under test here)."""
    torch.manual_seed(seed)
    config = make_config("lite", C, K)
    model = STCLN(config)
    with torch.no_grad():  # a little spread in the head so probabilities differ between classes and pixels
        model.head.weight.mul_(4.0)
    return ModelBundle(config, model.state_dict(), [f"B{i}" for i in range(C)], [0.2] * C, [0.5] * C,
                       classes=ClassTable.from_names(["wheat", "maize", "grassland"]))


@pytest.fixture(scope="module")
def bundle() -> ModelBundle:
    return make_bundle()


def uniform_scene(h: int, w: int) -> np.ndarray:
    spectrum = np.array([0.5, -0.3, 1.0, 0.2], np.float32)
    return np.broadcast_to(spectrum[None, :, None, None], (T, C, h, w)).copy()


def test_blend_window_is_a_partition_of_unity_in_the_overlap():
    tile, overlap = 32, 8
    w = blend_window_1d(tile, overlap)
    assert w.min() > 0 and w.max() == 1.0
    total = np.zeros(tile + (tile - overlap))
    total[:tile] += w
    total[tile - overlap :] += w
    # Inside the overlap the falling and the rising ramps add up to 1: the blend is a smooth hand-over.
    np.testing.assert_allclose(total[tile - overlap : tile], 1.0, atol=1e-12)
    assert blend_window(tile, overlap).shape == (tile, tile)
    assert tile_starts(100, 32, 8) == [0, 24, 48, 72] and tile_starts(10, 32, 8) == [0]


def interior_jumps(probs: np.ndarray, margin: int = 6) -> float:
    """Largest change between neighbouring columns or rows, away from the raster edge."""
    inner = probs[:, margin:-margin, margin:-margin]
    return max(np.abs(np.diff(inner, axis=2)).max(), np.abs(np.diff(inner, axis=1)).max())


def test_one_class_scene_shows_no_seam(bundle):
    x = uniform_scene(70, 100)  # 4 x 3 tiles of 32 with overlap 8
    blended = predict_array(bundle, x, DATES, None, tile=32, overlap=8, device="cpu", precision="fp32")
    naive = predict_array(bundle, x, DATES, None, tile=32, overlap=0, device="cpu", precision="fp32")
    assert blended.shape == (K, 70, 100) and blended.dtype == np.float32
    np.testing.assert_allclose(blended.sum(axis=0), 1.0, atol=1e-5)
    # The scene is uniform, so any change between neighbours is an artefact of tiling. Side-by-side tiles
    # (overlap 0) jump at every tile border; blended tiles may change only gently.
    assert interior_jumps(naive) > 0.1, "the check must be able to see seams"
    assert interior_jumps(blended) < 0.06
    assert interior_jumps(blended) < 0.1 * interior_jumps(naive)


def test_results_do_not_depend_on_batch_size_or_block(bundle):
    rng = np.random.default_rng(0)
    x = rng.normal(0.2, 0.5, (T, C, 45, 60)).astype(np.float32)
    valid = rng.random((T, 45, 60)) > 0.2
    given = x.copy()
    one = predict_array(bundle, x, DATES, valid, tile=16, overlap=4, batch_size=1, device="cpu", precision="fp32")
    many = predict_array(bundle, x, DATES, valid, tile=16, overlap=4, batch_size=7, device="cpu", precision="fp32")
    blocks = predict_array(bundle, x, DATES, valid, tile=16, overlap=4, batch_size=5, device="cpu", precision="fp32", block=20)
    np.testing.assert_allclose(one, many, atol=1e-5)
    np.testing.assert_allclose(one, blocks, atol=1e-5)
    np.testing.assert_array_equal(x, given)  # blocks are normalised in place: in the reader's copies, not in x


def test_small_array_is_padded_and_nodata_pixels_get_zero(bundle):
    x = uniform_scene(9, 13)
    valid = np.ones((T, 9, 13), bool)
    valid[:, 2, 3] = False  # never observed
    valid[:3, 5, 5] = False  # observed on some dates only
    probs = predict_array(bundle, x, DATES, valid, tile=32, overlap=8, device="cpu", precision="fp32")
    assert probs.shape == (K, 9, 13)
    assert np.all(probs[:, 2, 3] == 0)
    total = probs.sum(axis=0)
    total[2, 3] = 1.0
    np.testing.assert_allclose(total, 1.0, atol=1e-5)


def test_nan_values_count_as_invalid_by_default(bundle):
    x = uniform_scene(20, 20)
    x[:, :, 4, 4] = np.nan
    probs = predict_array(bundle, x, DATES, tile=16, overlap=4, device="cpu", precision="fp32")
    assert np.all(probs[:, 4, 4] == 0) and np.isfinite(probs).all()


def test_bad_input_and_cancel(bundle):
    x = uniform_scene(20, 20)
    with pytest.raises(EngineError, match="bands"):
        predict_array(bundle, x[:, :2], DATES, device="cpu", precision="fp32")
    with pytest.raises(EngineError, match="dates"):
        predict_array(bundle, x, DATES[:-1], device="cpu", precision="fp32")
    with pytest.raises(EngineError, match="overlap"):
        predict_array(bundle, x, DATES, tile=16, overlap=16, device="cpu", precision="fp32")
    with pytest.raises(CancelledError):
        predict_array(bundle, x, DATES, device="cpu", cancelled=lambda: True)


@pytest.mark.gpu
def test_cuda_bf16_agrees_with_cpu_fp32():
    bundle = make_bundle(seed=3)
    rng = np.random.default_rng(1)
    x = rng.normal(0.2, 0.5, (T, C, 96, 96)).astype(np.float32)
    valid = rng.random((T, 96, 96)) > 0.1
    cpu = predict_array(bundle, x, DATES, valid, device="cpu", precision="fp32")
    gpu = predict_array(bundle, x, DATES, valid, device="cuda", precision="bf16", batch_size=None)
    agree = (cpu.argmax(0) == gpu.argmax(0)).mean()
    assert agree >= 0.99, f"only {agree:.2%} of pixels agree"
