"""Opening time series: layouts, dates, alignment, validity, band selection and bad input."""

import datetime as dt
import pickle
import time

import numpy as np
import pytest
from data_helpers import ORIGIN, write_raster
from osgeo import gdal

from engine.data import RasterGrid, open_time_series
from engine.errors import EngineError

H, W = 12, 16


def ramp(offset: float, bands: int = 2) -> np.ndarray:
    """(bands, H, W) float32 values that identify band, row and column."""
    rows, cols = np.mgrid[0:H, 0:W]
    return np.stack([offset + 100 * b + rows * W + cols for b in range(bands)]).astype(np.float32)


@pytest.fixture
def per_date(tmp_path):
    """Three dates written out of time order, dates in metadata, two named bands."""
    paths = []
    for offset, day in ((1000, "2021-07-01"), (0, "2021-05-01"), (2000, "2021-09-01")):
        paths.append(write_raster(tmp_path / f"img_{offset}.tif", ramp(offset), descriptions=["B04", "B08"],
                                  metadata={"ACQUISITION_DATE": day}))
    return paths


def test_per_date_sorted_and_values(per_date):
    with open_time_series(per_date) as series:
        assert series.dates == [dt.date(2021, 5, 1), dt.date(2021, 7, 1), dt.date(2021, 9, 1)]
        assert series.band_names == ["B04", "B08"]
        assert (series.grid.width, series.grid.height) == (W, H)
        assert series.grid.pixel_area_m2 == pytest.approx(100.0)
        x, valid = series.read(2, 3, 5, 4)
    assert x.dtype == np.float32 and x.shape == (3, 2, 4, 5) and valid.shape == (3, 4, 5)
    assert valid.all()
    np.testing.assert_array_equal(x[0], ramp(0)[:, 3:7, 2:7])
    np.testing.assert_array_equal(x[1], ramp(1000)[:, 3:7, 2:7])


def test_window_outside_is_invalid_zero_padded(per_date):
    series = open_time_series(per_date)
    x, valid = series.read(-2, H - 3, 5, 6)
    assert x.shape == (3, 2, 6, 5)
    assert valid[:, :3, 2:].all() and not valid[:, 3:].any() and not valid[:, :, :2].any()
    assert (x[:, :, 3:] == 0).all() and (x[:, :, :, :2] == 0).all()
    np.testing.assert_array_equal(x[0, :, :3, 2:], ramp(0)[:, H - 3:, :3])
    x, valid = series.read(W + 5, 0, 4, 4)
    assert not valid.any() and not x.any()


def test_bands_by_name_in_any_order(per_date):
    series = open_time_series(per_date)
    x, _ = series.read(0, 0, W, H, bands=["B08", "B04"])
    np.testing.assert_array_equal(x[0, 0], ramp(0)[1])
    with pytest.raises(EngineError, match=r"B02.*have bands B04, B08"):
        series.read(0, 0, 4, 4, bands=["B02", "B04"])


def test_band_order_differs_between_files(tmp_path):
    a = write_raster(tmp_path / "a_20210101.tif", ramp(0), descriptions=["B04", "B08"])
    b = write_raster(tmp_path / "b_20210201.tif", ramp(0)[::-1].copy(), descriptions=["B08", "B04"])
    x, _ = open_time_series([a, b]).read(0, 0, W, H)
    np.testing.assert_array_equal(x[0], x[1])


def test_dates_from_file_names_user_list_and_tifftag(tmp_path):
    names = ["S2B_MSIL2A_20210612T103031_N0300_R108_T32UNE_20210612T134236.tif", "T32UNE_20210501T103031_B04.tif"]
    paths = [write_raster(tmp_path / n, ramp(0, 1)) for n in names]
    series = open_time_series(paths)
    assert series.timestamps == [dt.datetime(2021, 5, 1, 10, 30, 31), dt.datetime(2021, 6, 12, 10, 30, 31)]
    series = open_time_series(paths, dates=["2020-01-02", dt.date(2020, 1, 1)])
    assert series.dates == [dt.date(2020, 1, 1), dt.date(2020, 1, 2)]
    tagged = [write_raster(tmp_path / f"t{i}.tif", ramp(0, 1), metadata={"TIFFTAG_DATETIME": f"2019:0{i}:01 00:00:00"})
              for i in (2, 1)]
    assert open_time_series(tagged).dates == [dt.date(2019, 1, 1), dt.date(2019, 2, 1)]


def test_same_day_pair_kept(tmp_path):
    paths = [write_raster(tmp_path / f"S2_{stamp}_NDVI.tif", ramp(i, 1))
             for i, stamp in enumerate(["20151208T101125", "20151208T100409", "20151218T101215"])]
    series = open_time_series(paths)
    assert series.dates == [dt.date(2015, 12, 8), dt.date(2015, 12, 8), dt.date(2015, 12, 18)]
    assert series.band_names == ["NDVI"]
    x, _ = series.read(0, 0, W, H)
    np.testing.assert_array_equal(x[0, 0], ramp(1, 1)[0])  # 10:04 before 10:11


def test_stack_date_major_and_band_major(tmp_path):
    dates = [dt.date(2021, 4, 1), dt.date(2021, 5, 1), dt.date(2021, 6, 1)]
    cube = np.stack([ramp(1000 * t, 2) for t in range(3)])  # (T, C, H, W)
    date_major = write_raster(tmp_path / "dm.tif", cube.reshape(6, H, W),
                              descriptions=[f"{d.isoformat()}_{b}" for d in dates for b in ("B4", "B8")])
    series = open_time_series([date_major], layout="stack")
    assert series.dates == dates and series.band_names == ["B04", "B08"]
    with pytest.raises(EngineError, match="Choose the 'date-major' stack order"):
        open_time_series([date_major], layout="stack", stack_order="band-major")
    np.testing.assert_array_equal(series.read(0, 0, W, H)[0], cube)
    band_major = write_raster(tmp_path / "bm.tif", cube.transpose(1, 0, 2, 3).reshape(6, H, W))
    series = open_time_series([band_major], layout="stack", stack_order="band-major", dates=dates,
                              band_names=["red", "nir"])
    assert series.band_names == ["red", "nir"]
    np.testing.assert_array_equal(series.read(0, 0, W, H)[0], cube)
    with pytest.raises(EngineError, match="which date"):
        open_time_series([band_major], layout="stack")
    with pytest.raises(EngineError, match="not a whole number"):
        open_time_series([band_major], layout="stack", band_names=["a", "b", "c", "d"])


def test_per_band_layout(tmp_path):
    days = ["2021-03-01", "2021-04-01", "2021-02-01"]
    red = write_raster(tmp_path / "S2_B4_season.tif", np.stack([ramp(10 * t, 1)[0] for t in range(3)]),
                       descriptions=days)
    nir = write_raster(tmp_path / "S2_B8_season.tif", np.stack([ramp(500 + 10 * t, 1)[0] for t in range(3)]),
                       band_metadata=[{"ACQUISITION_DATE": d} for d in days])
    series = open_time_series([red, nir], layout="per-band")
    assert series.band_names == ["B04", "B08"]
    assert [d.month for d in series.dates] == [2, 3, 4]
    x, valid = series.read(0, 0, W, H)
    np.testing.assert_array_equal(x[0, 1], ramp(520, 1)[0])  # February is band 3 of the NIR file
    assert valid.all()


def test_nodata_from_file_and_argument_and_nan(tmp_path):
    a, b = ramp(0, 2), ramp(5, 2)
    a[0, 0, 0] = 65535
    b[1, 1, 1] = np.nan
    pa = write_raster(tmp_path / "a_20200101.tif", a, nodata=65535)
    pb = write_raster(tmp_path / "b_20200201.tif", b)
    x, valid = open_time_series([pa, pb]).read(0, 0, W, H)
    assert not valid[0, 0, 0] and not valid[1, 1, 1] and valid.sum() == 2 * H * W - 2
    assert x[0, :, 0, 0].tolist() == [0, 0] and np.isfinite(x).all()
    _, valid = open_time_series([pa, pb], nodata=5.0).read(0, 0, W, H)  # value 5 is b's first pixel
    assert not valid[1, 0, 0]


def test_cloud_masks_matched_by_date(tmp_path):
    images, masks = [], []
    for i, day in enumerate(["20200101", "20200201", "20200301"]):
        images.append(write_raster(tmp_path / f"S2_{day}.tif", ramp(i, 1)))
        cloud = np.zeros((H, W), np.uint8)
        cloud[i, :] = 1
        masks.append(write_raster(tmp_path / f"CLM_{day}.tif", cloud))
    series = open_time_series(images, cloud_masks=masks[::-1])  # masks in another order: matched by date
    x, valid = series.read(0, 0, W, H)
    for t in range(3):
        assert not valid[t, t].any() and valid[t].sum() == (H - 1) * W
        assert (x[t, 0, t] == 0).all()
    with pytest.raises(EngineError, match="2 cloud masks"):
        open_time_series(images, cloud_masks=masks[:2])


def test_scl_classes_and_coarser_grid(tmp_path):
    images = [write_raster(tmp_path / f"S2_2020010{i}.tif", ramp(0, 1)) for i in (1, 2)]
    classes = np.array([[c for c in range(8)] for _ in range(6)], np.uint8)  # (6, 8) at 20 m
    classes[3:] += 4  # classes 4..11 in the lower half
    scl_paths = [write_raster(tmp_path / f"SCL_2020010{i}.tif", classes,
                              geotransform=(ORIGIN[0], 20, 0, ORIGIN[1], 0, -20)) for i in (1, 2)]
    series = open_time_series(images, scl=scl_paths)
    _, valid = series.read(0, 0, W, H)
    expected_classes = np.kron(classes, np.ones((2, 2), np.uint8))  # nearest-neighbour onto 10 m
    expected = ~np.isin(expected_classes, [0, 1, 3, 8, 9, 10, 11])
    np.testing.assert_array_equal(valid[0], expected)
    np.testing.assert_array_equal(valid[1], expected)


def test_alignment_other_resolution_crs_and_reference(tmp_path):
    base = write_raster(tmp_path / "a_20200101.tif", ramp(0, 1))
    # A 20 m raster of constant 7 covering only the left half of the grid, in another CRS (EPSG:3857).
    src = gdal.Warp("", base, format="MEM", dstSRS="EPSG:3857", xRes=20, yRes=20)
    gt = src.GetGeoTransform()
    const = np.full((src.RasterYSize, max(src.RasterXSize // 2, 1)), 7, np.float32)
    other = write_raster(tmp_path / "b_20200201.tif", const, geotransform=gt, epsg=3857)
    series = open_time_series([base, other])
    assert series.aligned_paths == [other]
    x, valid = series.read(0, 0, W, H)
    assert valid[0].all()
    assert valid[1, :, :3].all() and not valid[1, :, -3:].any()  # right part not covered by the second raster
    np.testing.assert_allclose(x[1, 0][valid[1]], 7, atol=1e-4)
    # reference: the grid of another raster (20 m, shifted by one 10 m pixel)
    ref = write_raster(tmp_path / "ref.tif", np.zeros((4, 6), np.uint8),
                       geotransform=(ORIGIN[0] + 10, 20, 0, ORIGIN[1] - 10, 0, -20))
    series = open_time_series([base, other], reference=ref)
    assert series.grid == RasterGrid.from_dataset(gdal.Open(ref))
    x, valid = series.read(0, 0, 6, 4)
    assert valid[0].all()
    # bilinear average of the 10 m ramp at the 20 m pixel centres, one pixel in: rows 1-2, columns 1-2
    assert x[0, 0, 0, 0] == pytest.approx(ramp(0, 1)[0, 1:3, 1:3].mean(), abs=1e-3)


def test_pickle_reopens(per_date):
    series = open_time_series(per_date, dates=["2020-01-03", "2020-01-01", "2020-01-02"])
    copy = pickle.loads(pickle.dumps(series))
    assert copy.dates == series.dates
    np.testing.assert_array_equal(copy.read(0, 0, 4, 4)[0], series.read(0, 0, 4, 4)[0])


def test_lazy_on_a_large_raster(tmp_path):
    paths = []
    for day in ("20200101", "20200201"):
        path = tmp_path / f"big_{day}.tif"
        dataset = gdal.GetDriverByName("GTiff").Create(str(path), 40000, 40000, 1, gdal.GDT_Float32,
                                                       ["SPARSE_OK=TRUE", "TILED=YES"])
        dataset.SetGeoTransform((ORIGIN[0], 10, 0, ORIGIN[1], 0, -10))
        dataset.SetProjection(gdal.Open(write_raster(tmp_path / "p.tif", ramp(0, 1))).GetProjection())
        dataset = None
        paths.append(str(path))
    start = time.perf_counter()
    series = open_time_series(paths)
    x, valid = series.read(20000, 20000, 32, 32)
    assert time.perf_counter() - start < 5  # a full read would be 2 x 6.4 GB
    assert x.shape == (2, 1, 32, 32) and valid.all()


def test_real_slovenia(shared_data):
    folder = shared_data / "slovenia_s2"
    ndvi = sorted(str(p) for p in (folder / "ndvi").glob("*.tif"))
    masks = sorted(str(p) for p in (folder / "cloudmask").glob("*.tif"))
    series = open_time_series(ndvi, cloud_masks=masks)
    assert len(series.dates) == 68 and series.band_names == ["NDVI"]
    assert series.dates.count(dt.date(2015, 12, 8)) == 2
    assert series.timestamps == sorted(series.timestamps)
    assert (series.grid.width, series.grid.height) == (100, 101)
    x, valid = series.read(0, 0, 100, 101)
    cloud = np.stack([gdal.Open(m).ReadAsArray() for m in masks])
    np.testing.assert_array_equal(valid, cloud == 0)  # NDVI has no nodata: validity is the cloud mask
    assert 0.3 < 1 - valid.mean() < 0.5  # about 40 % cloudy, as documented
    raw = gdal.Open(ndvi[0]).ReadAsArray()
    np.testing.assert_allclose(x[0, 0][valid[0]], raw[valid[0]])


def test_real_belgium(shared_data):
    files = sorted(str(p) for p in (shared_data / "belgium_s2_l2a_monthly").glob("*.tif"))
    series = open_time_series(files)
    assert series.band_names == ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B11", "B12"]
    assert len(series.dates) == 12 and series.dates[0] == dt.date(2020, 11, 1)
    x, valid = series.read(0, 0, 100, 100, bands=["B04"])
    raw = np.stack([gdal.Open(f).ReadAsArray()[2] for f in files])
    np.testing.assert_array_equal(valid, raw != 65535)
    assert 0.1 < 1 - valid.mean() < 0.25  # about 17 % nodata
    assert x.max() < 65535 and x[~valid[:, None]].max() == 0


def test_l1c_13_bands(shared_data):
    files = sorted(str(p) for p in (shared_data / "slovenia_s2" / "l1c_13band").glob("*.tif"))
    series = open_time_series(files)
    assert len(series.band_names) == 13 and "B8A" in series.band_names and len(series.dates) == 5


# --- bad input ---------------------------------------------------------------------------------------------------

def test_missing_and_unreadable_files(tmp_path, per_date):
    with pytest.raises(EngineError, match="does not exist"):
        open_time_series(per_date + [str(tmp_path / "nope.tif")])
    junk = tmp_path / "junk_20200101.tif"
    junk.write_text("not a raster")
    with pytest.raises(EngineError, match="cannot be read"):
        open_time_series([per_date[0], str(junk)])
    with pytest.raises(EngineError, match="does not exist"):
        open_time_series(per_date, cloud_masks=[str(tmp_path / "m.tif")] * 3)
    with pytest.raises(EngineError, match="No images"):
        open_time_series([])


def test_raster_without_crs(tmp_path, per_date):
    bare = write_raster(tmp_path / "bare_20220101.tif", ramp(0), epsg=None)
    with pytest.raises(EngineError, match="no coordinate reference system"):
        open_time_series(per_date + [bare])


def test_no_dates(tmp_path):
    paths = [write_raster(tmp_path / f"image{i}.tif", ramp(0, 1)) for i in range(2)]
    with pytest.raises(EngineError, match="No acquisition date.*give the dates"):
        open_time_series(paths)
    with pytest.raises(EngineError, match="2 dates were given for 2|3 dates were given"):
        open_time_series(paths, dates=["2020-01-01", "2020-01-02", "2020-01-03"])
    with pytest.raises(EngineError, match="not a date"):
        open_time_series(paths, dates=["2020-01-01", "someday"])


def test_single_date(tmp_path):
    path = write_raster(tmp_path / "S2_20200101.tif", ramp(0))
    with pytest.raises(EngineError, match="at least 2 dates.*stack"):
        open_time_series([path])


def test_band_counts_and_names_mismatch(tmp_path, per_date):
    three = write_raster(tmp_path / "c_20220101.tif", ramp(0, 3))
    with pytest.raises(EngineError, match="band counts differ"):
        open_time_series(per_date + [three])
    other = write_raster(tmp_path / "d_20220101.tif", ramp(0), descriptions=["B02", "B03"])
    with pytest.raises(EngineError, match="Every date needs the same bands"):
        open_time_series(per_date + [other])
    with pytest.raises(EngineError, match="3 band names were given"):
        open_time_series(per_date, band_names=["a", "b", "c"])
    with pytest.raises(EngineError, match="Unknown layout"):
        open_time_series(per_date, layout="cube")


def test_describe_images(tmp_path, per_date):
    from engine.data.timeseries import describe_images

    nodate = write_raster(tmp_path / "plain.tif", ramp(0, 1))
    rows = describe_images(per_date + [nodate, str(tmp_path / "missing.tif")])
    assert rows[0] == (per_date[0], dt.date(2021, 7, 1), ["B04", "B08"])
    assert rows[3] == (nodate, None, ["B1"])
    assert rows[4][1:] == (None, [])
