"""Mapping raster files block by block: equality with whole-array prediction, GeoTIFF format and styling, extent
masks, field-level results, and outputs that appear complete or not at all."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
from osgeo import gdal, ogr, osr

from engine.bundle import ModelBundle
from engine.classes import ClassTable
from engine.data import open_time_series
from engine.errors import CancelledError, EngineError
from engine.inference import field_results, predict_array, predict_raster
from engine.inference.fields import stats_from_stack
from engine.model import STCLN, make_config

gdal.UseExceptions()
BANDS = ["B02", "B03", "B04", "B08"]
DATES = [dt.date(2021, 4, 1) + dt.timedelta(days=30 * i) for i in range(4)]
W, H = 70, 50
ORIGIN, PIXEL = (500000.0, 5600000.0), 10.0
FP32 = dict(device="cpu", precision="fp32")


def make_bundle() -> ModelBundle:
    torch.manual_seed(0)
    config = make_config("lite", len(BANDS), 3)
    model = STCLN(config)
    with torch.no_grad():
        model.head.weight.mul_(4.0)
    return ModelBundle(config, model.state_dict(), BANDS, [2000.0] * 4, [1000.0] * 4,
                       classes=ClassTable.from_names(["winter wheat", "maize", "Weird & <name>"]))


def write_scene(folder: Path) -> list[str]:
    """Four dates of a 4-band uint16 scene (nodata 0) with patches of different spectra and a never-seen corner."""
    rng = np.random.default_rng(5)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32631)
    base = rng.integers(500, 4000, (4, 5, 7)).astype(float)  # a 5 x 7 grid of patches with their own spectrum
    patches = np.kron(base, np.ones((10, 10)))
    paths = []
    for t, date in enumerate(DATES):
        data = (patches * (0.7 + 0.2 * t) + rng.normal(0, 40, (4, H, W))).clip(1, 60000).astype(np.uint16)
        data[:, :6, :6] = 0  # never observed
        if t == 1:
            data[:, 20:30, 10:40] = 0  # a cloud-gap on one date
        path = folder / f"S2_{date:%Y%m%d}_scene.tif"
        ds = gdal.GetDriverByName("GTiff").Create(str(path), W, H, 4, gdal.GDT_UInt16)
        ds.SetGeoTransform((ORIGIN[0], PIXEL, 0, ORIGIN[1], 0, -PIXEL))
        ds.SetProjection(srs.ExportToWkt())
        for b in range(4):
            band = ds.GetRasterBand(b + 1)
            band.WriteArray(data[b])
            band.SetNoDataValue(0)
            band.SetDescription(BANDS[b])
        ds = None
        paths.append(str(path))
    return paths


def rect(x0, y0, x1, y1) -> ogr.Geometry:
    """A polygon covering pixels x0..x1-1, y0..y1-1 of the scene."""
    l, r = ORIGIN[0] + x0 * PIXEL, ORIGIN[0] + x1 * PIXEL
    t, b = ORIGIN[1] - y0 * PIXEL, ORIGIN[1] - y1 * PIXEL
    return ogr.CreateGeometryFromWkt(f"POLYGON(({l} {t},{r} {t},{r} {b},{l} {b},{l} {t}))")


def write_polygons(path: Path, boxes: list[tuple[int, int, int, int]], layer: str = "parcels") -> None:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32631)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    lyr = ds.CreateLayer(layer, srs, ogr.wkbPolygon)
    lyr.CreateField(ogr.FieldDefn("parcel", ogr.OFTString))
    lyr.CreateField(ogr.FieldDefn("sown", ogr.OFTDate))
    for i, box in enumerate(boxes):
        f = ogr.Feature(lyr.GetLayerDefn())
        f.SetField("parcel", f"P{i}")
        f.SetField("sown", "2021/03/1" + str(i % 10))
        f.SetGeometry(rect(*box))
        lyr.CreateFeature(f)
    ds = None


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scene")
    return write_scene(folder)


@pytest.fixture(scope="module")
def bundle() -> ModelBundle:
    return make_bundle()


@pytest.fixture(scope="module")
def whole(scene, bundle):
    """Whole-array prediction of the scene (the reference for block-wise mapping)."""
    with open_time_series(scene) as series:
        x, valid = series.read(0, 0, W, H)
    return predict_array(bundle, x, DATES, valid, tile=16, overlap=4, **FP32), valid


def read(path) -> np.ndarray:
    return gdal.Open(str(path)).ReadAsArray()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or "partial" in p.name)


def test_blocks_match_whole_array_and_outputs_are_well_formed(tmp_path, scene, bundle, whole):
    expected, valid = whole
    with open_time_series(scene) as series:
        result = predict_raster(bundle, series, tmp_path / "map.tif", tmp_path / "conf.tif", tmp_path / "probs.tif",
                                tile=16, overlap=4, block=24, batch_size=5, **FP32)
        grid = series.grid
    probs = read(result.probabilities_path)
    np.testing.assert_allclose(probs, expected, atol=1e-5)  # 24-px blocks with halos blend like one array
    labels = read(result.map_path)
    observed = valid.any(axis=0)
    assert not observed[:6, :6].any() and (labels[:6, :6] == 0).all()
    decided = np.sort(expected, axis=0)[-1] - np.sort(expected, axis=0)[-2] > 1e-4
    assert np.array_equal(labels[observed & decided], expected.argmax(0)[observed & decided] + 1)
    assert (labels[observed] > 0).all() and len(np.unique(labels[observed])) > 1
    np.testing.assert_allclose(read(result.confidence_path), expected.max(axis=0), atol=1e-5)
    assert result.pixels == W * H and result.mapped_pixels == int(observed.sum())
    assert result.class_counts.tolist() == np.bincount(labels.ravel(), minlength=4).tolist()

    ds = gdal.Open(result.map_path)
    band = ds.GetRasterBand(1)
    assert band.DataType == gdal.GDT_Byte and band.GetNoDataValue() == 0
    assert ds.GetMetadata("IMAGE_STRUCTURE")["COMPRESSION"] == "DEFLATE"
    assert band.GetBlockSize() == [256, 256]  # tiled
    assert ds.GetGeoTransform() == grid.geotransform
    assert osr.SpatialReference(ds.GetProjection()).IsSame(osr.SpatialReference(grid.crs_wkt))
    table = band.GetColorTable()
    for info in bundle.classes:
        assert table.GetColorEntry(info.value)[:3] == info.color
    assert band.GetCategoryNames()[1:] == bundle.classes.names
    conf_ds = gdal.Open(result.confidence_path)
    conf = conf_ds.GetRasterBand(1)
    assert conf.DataType == gdal.GDT_Float32 and conf.GetNoDataValue() == 0
    stack = gdal.Open(result.probabilities_path)
    assert [stack.GetRasterBand(k).GetDescription() for k in (1, 2, 3)] == bundle.classes.names

    qml = ET.parse(tmp_path / "map.qml").getroot()
    renderer = qml.find("pipe/rasterrenderer")
    assert renderer.get("type") == "paletted"
    entries = renderer.findall("colorPalette/paletteEntry")
    assert [(int(e.get("value")), e.get("label")) for e in entries] == [(c.value, c.name) for c in bundle.classes]
    assert entries[0].get("color") == "#{:02x}{:02x}{:02x}".format(*bundle.classes[0].color)
    assert (tmp_path / "conf.qml").exists()
    assert leftovers(tmp_path) == []


def test_extent_polygon_skips_outside_and_keeps_inside(tmp_path, scene, bundle, whole):
    expected, _ = whole
    write_polygons(tmp_path / "extent.gpkg", [(30, 10, 60, 40)])
    with open_time_series(scene) as series:
        result = predict_raster(bundle, series, tmp_path / "map.tif", out_probabilities=tmp_path / "p.tif",
                                tile=16, overlap=4, block=32, extent_mask=tmp_path / "extent.gpkg", **FP32)
    probs, labels = read(result.probabilities_path), read(result.map_path)
    inside = np.zeros((H, W), bool)
    inside[10:40, 30:60] = True
    assert (labels[~inside] == 0).all() and (probs[:, ~inside] == 0).all()
    assert (labels[inside] > 0).all()
    np.testing.assert_allclose(probs[:, inside], expected[:, inside], atol=1e-5)


def test_extent_array_of_wrong_shape_is_refused(tmp_path, scene, bundle):
    with open_time_series(scene) as series, pytest.raises(EngineError, match="extent mask"):
        predict_raster(bundle, series, tmp_path / "map.tif", extent_mask=np.ones((3, 3), bool), **FP32)
    assert list(tmp_path.iterdir()) == []


def test_field_results_from_the_run_and_from_the_stack(tmp_path, scene, bundle, whole):
    expected, valid = whole
    boxes = [(10, 10, 20, 20), (40, 5, 65, 30), (0, 0, 5, 5), (200, 200, 210, 210)]  # a corner never seen; one outside
    write_polygons(tmp_path / "parcels.gpkg", boxes)
    with open_time_series(scene) as series:
        result = predict_raster(bundle, series, tmp_path / "map.tif", out_probabilities=tmp_path / "p.tif",
                                tile=16, overlap=4, block=24, field_vector=tmp_path / "parcels.gpkg", **FP32)
    out = field_results(bundle.classes, result, tmp_path / "parcels.gpkg", tmp_path / "crops.gpkg")
    from_stack = stats_from_stack(result.probabilities_path, str(tmp_path / "parcels.gpkg"), None, block=16)
    np.testing.assert_allclose(from_stack.sums, result.field_stats.sums, rtol=1e-6)
    assert from_stack.counts.tolist() == result.field_stats.counts.tolist()

    ds = ogr.Open(out)
    layer = ds.GetLayerByName("parcels")
    rows = [(f.GetField("parcel"), f.GetField("sown"), f.GetField("crop_class"), f.GetField("crop_value"),
             f.GetField("crop_prob"), f.GetField("crop_pixels"), f.GetGeometryRef().GetEnvelope()) for f in layer]
    assert [r[0] for r in rows] == ["P0", "P1", "P2", "P3"] and rows[1][1] == "2021/03/11"
    assert rows[0][6] == rect(*boxes[0]).GetEnvelope()
    for (x0, y0, x1, y1), row in zip(boxes[:2], rows[:2]):
        mean = expected[:, y0:y1, x0:x1].reshape(3, -1).mean(axis=1)
        assert row[5] == (x1 - x0) * (y1 - y0)
        assert row[3] == int(mean.argmax()) + 1 and row[2] == bundle.classes[row[3] - 1].name
        assert row[4] == pytest.approx(mean.max(), abs=1e-5)
    assert rows[2][2:6] == (None, None, None, 0)  # never observed
    assert rows[3][2:6] == (None, None, None, 0)  # outside the image

    # A parcel layer given after the run: read from the probability stack.
    write_polygons(tmp_path / "other.gpkg", [(30, 30, 40, 45)], layer="fields")
    other = field_results(bundle.classes, result, tmp_path / "other.gpkg", tmp_path / "other_out.gpkg")
    other_ds = ogr.Open(other)
    feature = next(iter(other_ds.GetLayer(0)))
    mean = expected[:, 30:45, 30:40].reshape(3, -1).mean(axis=1)
    assert feature.GetField("crop_prob") == pytest.approx(mean.max(), abs=1e-5)


def test_points_are_refused_as_fields(tmp_path, scene, bundle):
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32631)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(tmp_path / "points.gpkg"))
    ds.CreateLayer("pts", srs, ogr.wkbPoint)
    ds = None
    with open_time_series(scene) as series, pytest.raises(EngineError, match="polygons are needed"):
        predict_raster(bundle, series, tmp_path / "out" / "map.tif", field_vector=tmp_path / "points.gpkg", **FP32)
    assert not (tmp_path / "out" / "map.tif").exists()


def test_cancel_leaves_nothing(tmp_path, scene, bundle):
    calls = []

    def cancelled() -> bool:
        calls.append(1)
        return len(calls) > 4

    with open_time_series(scene) as series, pytest.raises(CancelledError):
        predict_raster(bundle, series, tmp_path / "map.tif", tmp_path / "conf.tif", tmp_path / "p.tif",
                       tile=16, overlap=4, block=16, cancelled=cancelled, **FP32)
    assert list(tmp_path.iterdir()) == []


class FailingSeries:
    """A real time series whose reads fail from the ``fail_at``-th window on (a disk or network failure)."""

    def __init__(self, series, fail_at: int) -> None:
        self._series, self._fail_at, self.reads = series, fail_at, 0
        self.grid, self.dates, self.band_names = series.grid, series.dates, series.band_names

    def read(self, *args, **kwargs):
        self.reads += 1
        if self.reads >= self._fail_at:
            raise OSError("read error: the network drive went away")
        return self._series.read(*args, **kwargs)


def test_failure_half_way_leaves_nothing(tmp_path, scene, bundle):
    with open_time_series(scene) as series:
        failing = FailingSeries(series, fail_at=4)
        with pytest.raises(OSError, match="network drive"):
            predict_raster(bundle, failing, tmp_path / "map.tif", tmp_path / "conf.tif", block=16, **FP32)
    assert failing.reads >= 4 and list(tmp_path.iterdir()) == []


def test_unwritable_output_folder(tmp_path, scene, bundle):
    (tmp_path / "file.txt").write_text("not a folder")
    with open_time_series(scene) as series, pytest.raises(EngineError, match="output folder"):
        predict_raster(bundle, series, tmp_path / "file.txt" / "map.tif", **FP32)


def test_an_output_that_is_a_folder_or_named_twice_is_refused_before_work(tmp_path, scene, bundle):
    (tmp_path / "conf.tif").mkdir()
    with open_time_series(scene) as series:
        with pytest.raises(EngineError, match="is a folder"):
            predict_raster(bundle, series, tmp_path / "map.tif", tmp_path / "conf.tif", **FP32)
        with pytest.raises(EngineError, match="two outputs"):
            predict_raster(bundle, series, tmp_path / "map.tif", tmp_path / "map.tif", **FP32)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conf.tif"]


def test_a_model_without_classes_or_with_other_bands_is_refused(tmp_path, scene, bundle):
    other = make_bundle()
    other.band_names = ["B02", "B03", "B04", "B11"]
    with open_time_series(scene) as series, pytest.raises(EngineError, match="B11"):
        predict_raster(other, series, tmp_path / "map.tif", **FP32)
    pretrained = ModelBundle(bundle.config, bundle.state_dict, BANDS, bundle.mean, bundle.std, kind="pretrained")
    with open_time_series(scene) as series, pytest.raises(EngineError, match="only pre-trained"):
        predict_raster(pretrained, series, tmp_path / "map.tif", **FP32)
    assert list(tmp_path.iterdir()) == []


def test_blocks_shrink_for_long_series_and_stay_whole_output_tiles():
    from engine.inference.raster import MAX_BLOCK_INPUT_BYTES, effective_block

    assert effective_block(512, 4, 4, 32) == 512
    for dates, bands in [(40, 10), (80, 13), (400, 13)]:
        block = effective_block(512, dates, bands, 32)
        assert block < 512 and block % 64 == 0
        assert (block + 64) ** 2 * dates * bands * 4 <= 1.1 * MAX_BLOCK_INPUT_BYTES or block == 64
