"""Band statistics from a sample of valid pixels, and normalisation."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from data_helpers import write_raster

from engine.data import band_statistics, normalise, open_time_series
from engine.errors import EngineError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def series(tmp_path):
    rng = np.random.default_rng(1)
    cubes = []
    paths = []
    for t in range(3):
        cube = np.stack([rng.normal(100, 10, (40, 30)), rng.normal(-5, 2, (40, 30))]).astype(np.float32)
        cube[:, :5, :] = -9999  # nodata rows
        cubes.append(cube)
        paths.append(write_raster(tmp_path / f"S2_2021010{t + 1}.tif", cube, nodata=-9999))
    return open_time_series(paths), np.stack(cubes)


def test_statistics_of_valid_pixels(series):
    ts, cubes = series
    mean, std = band_statistics(ts)
    valid = cubes[:, :, 5:, :]  # (T, C, 35, 30)
    expected = valid.transpose(1, 0, 2, 3).reshape(2, -1)
    np.testing.assert_allclose(mean, expected.mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(std, expected.std(axis=1), rtol=1e-4)
    assert mean.dtype == np.float32 and mean.shape == (2,)


def test_sampled_statistics_are_seeded(series):
    ts, _ = series
    a = band_statistics(ts, max_pixels=500, seed=3)
    b = band_statistics(ts, max_pixels=500, seed=3)
    c = band_statistics(ts, max_pixels=500, seed=4)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])
    assert abs(a[0][0] - 100) < 2 and abs(a[1][0] - 10) < 2


def test_no_valid_pixel(tmp_path):
    paths = [write_raster(tmp_path / f"S2_2021010{t}.tif", np.zeros((4, 4), np.float32), nodata=0) for t in (1, 2)]
    with pytest.raises(EngineError, match="no valid observation"):
        band_statistics(open_time_series(paths))


def test_normalise_sets_invalid_to_zero():
    x = np.array([[[[1.0, 3.0]], [[10.0, np.nan]]]], np.float32)  # (T=1, C=2, H=1, W=2)
    valid = np.array([[[True, False]]])
    out = normalise(x, valid, np.array([1.0, 10.0]), np.array([2.0, 5.0]))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[[[0.0, 0.0]], [[0.0, 0.0]]]])
    valid[:] = True
    out = normalise(x[None].repeat(2, 0) + 2, valid[None].repeat(2, 0), np.array([1.0, 10.0]), np.array([2.0, 5.0]))
    assert out.shape == (2, 1, 2, 1, 2)
    np.testing.assert_allclose(out[1, 0, :, 0, 0], [1.0, 0.4])
    with pytest.raises(EngineError, match="3 bands"):
        normalise(x, valid, np.zeros(3), np.ones(3))


def test_normalise_into_its_input_buffer_gives_the_same_values():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 3000, (3, 2, 4, 5)).astype(np.float32)
    valid = rng.random((3, 4, 5)) > 0.3
    mean, std = np.array([1000.0, 1500.0]), np.array([300.0, 400.0])
    expected = normalise(x, valid, mean, std)
    out = normalise(x, valid, mean, std, out=x)
    assert out is x
    np.testing.assert_array_equal(out, expected)
    ints = np.full((1, 2, 1, 1), 1000, np.uint16)  # not float32: a new buffer, the input left alone
    out = normalise(ints, np.ones((1, 1, 1), bool), mean, std, out=ints)
    assert out is not ints and out.dtype == np.float32 and ints[0, 0, 0, 0] == 1000


def test_imports_without_gdal():
    code = (
        "import sys; sys.modules['osgeo'] = None\n"
        "from engine.data import normalise, band_statistics, split_fields, parse_date\n"
        "from engine.data.normalization import normalise\n"
        "import numpy as np; print(normalise(np.ones((2,1,1,1)), np.ones((2,1,1), bool), [0.5], [0.5]).sum())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2.0"


def test_real_belgium_statistics(shared_data):
    files = sorted(str(p) for p in (shared_data / "belgium_s2_l2a_monthly").glob("*.tif"))
    mean, std = band_statistics(open_time_series(files), max_pixels=20_000)
    assert mean.shape == (9,) and (mean > 100).all() and (mean < 10_000).all() and (std > 10).all()
