"""Sentinel-2 products read as they come: folders, zips, baselines, L1C, band choice, bbox, bad input."""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np
import pytest

from engine.data import sentinel2
from engine.data.timeseries import open_time_series
from engine.errors import EngineError

from s2_products import (EMPTY_PRODUCT, band_files, make_baseline_0400, make_complete, make_l1c, make_other_zone,
                          real_products, zip_product)

pytestmark = pytest.mark.realdata


def _sub(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    return folder


def _at_dates(ts, reference, array):
    """The rows of ``array`` (read from ``reference``) at the dates of ``ts``."""
    return array[[reference.timestamps.index(t) for t in ts.timestamps]]


def _read_all(ts):
    return ts.read(0, 0, ts.grid.width, ts.grid.height)


@pytest.fixture(scope="module")
def products(shared_data) -> list[Path]:
    return [p for p in real_products(shared_data) if p.name != EMPTY_PRODUCT]


@pytest.fixture(scope="module")
def geotiff_series(shared_data):
    folder = shared_data / "herault_s2_l2a" / "geotiff"
    with open_time_series(sorted(glob.glob(str(folder / "*.tif"))),
                          scl=sorted(glob.glob(str(folder / "scl" / "*.tif")))) as ts:
        yield ts, _read_all(ts)


def test_product_folders_match_the_geotiffs_with_scl(shared_data, geotiff_series):
    reference, (x_ref, valid_ref) = geotiff_series
    with open_time_series([str(p) for p in real_products(shared_data)]) as ts:
        x, valid = _read_all(ts)
        assert ts.band_names == list(sentinel2.DEFAULT_BANDS) == reference.band_names
        assert ts.timestamps == reference.timestamps
        assert ts.grid.same_as(reference.grid)
        assert len(ts.warnings) == 1 and EMPTY_PRODUCT in ts.warnings[0]
    np.testing.assert_array_equal(valid, valid_ref)
    np.testing.assert_array_equal(x, x_ref)
    assert 0.5 < valid.mean() < 1.0  # the SCL masked some clouds, and most pixels are clear


def test_zipped_complete_and_baseline_0400_products_give_the_same_values(products, tmp_path):
    complete = make_complete(products[0], tmp_path)
    zipped = zip_product(complete, _sub(tmp_path, "zips"))
    newer = make_baseline_0400(products[1], _sub(tmp_path, "n0400"))
    mixed = [str(zipped), str(newer), str(products[2])]
    with open_time_series([str(p) for p in products[:3]]) as original, open_time_series(mixed) as ts:
        x_orig, valid_orig = _read_all(original)
        x, valid = _read_all(ts)
        assert ts.timestamps == original.timestamps
    assert not np.array_equal(  # the raw DNs of the 04.00 product differ by 1000 ...
        sentinel2.gdal.Open(str(band_files(newer)[0])).ReadAsArray(),
        sentinel2.gdal.Open(str(band_files(products[1])[0])).ReadAsArray())
    np.testing.assert_array_equal(valid, valid_orig)  # ... the harmonised reflectances do not
    np.testing.assert_array_equal(x, x_orig)


def test_band_choice_including_60m_bands(products, tmp_path, geotiff_series):
    reference, (x_all, valid_all) = geotiff_series
    complete = [make_complete(p, tmp_path) for p in products[:2]]
    with open_time_series([str(p) for p in complete], bands=["B8A", "b4", "B01"]) as ts:
        assert ts.band_names == ["B8A", "B04", "B01"]
        x, valid = _read_all(ts)
        x_ref = _at_dates(ts, reference, x_all)
    valid_ref = _at_dates(ts, reference, valid_all)
    both = valid & valid_ref  # B01 has its own nodata pixels
    assert both.mean() > 0.5
    np.testing.assert_array_equal(x[:, 0][both], x_ref[:, 7][both])
    np.testing.assert_array_equal(x[:, 1][both], x_ref[:, 2][both])
    assert x[:, 2][valid].min() > 0  # B01 at 60 m, repeated onto the 10 m grid


def test_band_files_are_found_on_disk_when_the_metadata_lists_none(products, tmp_path, geotiff_series):
    import re

    from s2_products import copy_product, set_metadata

    reference, (x_all, valid_all) = geotiff_series
    bare = [copy_product(p, tmp_path) for p in products[:2]]
    for product in bare:
        set_metadata(product, lambda text: re.sub(r"<IMAGE_FILE[^>]*>[^<]*</IMAGE_FILE[^>]*>", "", text))
    with open_time_series([str(p) for p in bare]) as ts:
        x, valid = _read_all(ts)
        np.testing.assert_array_equal(valid, _at_dates(ts, reference, valid_all))
        np.testing.assert_array_equal(x, _at_dates(ts, reference, x_all))


def test_extent_reads_only_that_window(products, geotiff_series):
    reference, (x_ref, valid_ref) = geotiff_series
    x0, y0 = reference.grid.pixel_to_world(40, 100)
    x1, y1 = reference.grid.pixel_to_world(90, 130)
    with open_time_series([str(p) for p in products], bbox=(x0, y1, x1, y0)) as ts:
        assert (ts.grid.width, ts.grid.height) == (50, 30)
        x, valid = _read_all(ts)
    np.testing.assert_array_equal(x, x_ref[:, :, 100:130, 40:90])
    np.testing.assert_array_equal(valid, valid_ref[:, 100:130, 40:90])


def test_extent_in_another_crs(products, geotiff_series):
    from osgeo import osr

    reference, _ = geotiff_series
    utm, wgs84 = osr.SpatialReference(), osr.SpatialReference()
    utm.ImportFromWkt(reference.grid.crs_wkt)
    wgs84.ImportFromEPSG(4326)
    wgs84.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    lon, lat, _ = osr.CoordinateTransformation(utm, wgs84).TransformPoint(*reference.grid.pixel_to_world(100, 150))
    with open_time_series([str(p) for p in products[:2]], bbox=(lon, lat, lon + 0.01, lat + 0.005),
                          bbox_crs="EPSG:4326") as ts:
        assert 80 < ts.grid.width < 84 and 55 < ts.grid.height < 59  # 0.01 x 0.005 degrees at 43.6 N, 10 m pixels


def test_same_acquisition_twice_is_merged_not_dropped(products, tmp_path, geotiff_series):
    reference, (x_all, valid_all) = geotiff_series
    left = make_baseline_0400(products[0], tmp_path)
    # the same acquisition as another tile would hold it: only its left half has data
    from s2_products import rewrite_bands

    rewrite_bands(left, lambda band, v: np.where(np.arange(v.shape[1]) < v.shape[1] // 2, v, 0).astype(np.uint16))
    with open_time_series([str(left), str(products[0]), str(products[1])]) as ts:
        assert ts.num_dates == 2
        assert any("merged" in w for w in ts.warnings)
        x, valid = _read_all(ts)
        np.testing.assert_array_equal(valid, _at_dates(ts, reference, valid_all))
        np.testing.assert_array_equal(x, _at_dates(ts, reference, x_all))


def test_l1c_products_are_harmonised_with_their_radiometric_offset(products, tmp_path, shared_data):
    folder = shared_data / "herault_s2_l2a" / "geotiff"
    l1c = [make_l1c(p, tmp_path) for p in products[:2]]
    with open_time_series(sorted(glob.glob(str(folder / "*.tif")))) as unmasked, \
            open_time_series([str(p) for p in l1c]) as ts:  # no SCL: L1C has none
        x_all, valid_all = _read_all(unmasked)
        x, valid = _read_all(ts)
        assert not ts.has_cloud_masks
        valid_ref, x_ref = _at_dates(ts, unmasked, valid_all), _at_dates(ts, unmasked, x_all)
    # the GeoTIFFs are also nodata where the L2A's SCL says "no data" (class 0), which an L1C cannot know
    assert valid[valid_ref].all() and (valid & ~valid_ref).mean() < 0.01
    np.testing.assert_array_equal(x * valid_ref[:, None], x_ref)


def test_products_mixed_with_plain_rasters(products, shared_data, geotiff_series):
    reference, (x_all, valid_all) = geotiff_series
    folder = shared_data / "herault_s2_l2a" / "geotiff"
    plain = [str(folder / "S2B_T31TEJ_20180920.tif")]
    scl = [str(folder / "scl" / "S2B_T31TEJ_20180920_SCL.tif")]
    with open_time_series(plain + [str(p) for p in products[:2]], scl=scl) as ts:
        assert ts.num_dates == 3
        x, valid = _read_all(ts)
        np.testing.assert_array_equal(valid, _at_dates(ts, reference, valid_all))
        np.testing.assert_array_equal(x, _at_dates(ts, reference, x_all))


def test_two_utm_zones_need_a_reference(products, tmp_path):
    other = make_other_zone(products[1], tmp_path)
    with pytest.raises(EngineError, match="UTM zones.*reference"):
        open_time_series([str(products[0]), str(other)])
    with open_time_series([str(products[0]), str(other)], reference=str(products[0])) as ts:
        x, valid = _read_all(ts)
        assert valid[1].mean() > 0.5  # the other zone's product was warped onto the reference grid


def test_bad_products_get_clear_messages(products, tmp_path):
    broken = make_complete(products[0], tmp_path)
    next(broken.glob("GRANULE/*/IMG_DATA/R20m/*_B11_20m.jp2")).unlink()
    with pytest.raises(EngineError, match=r"lacks the band\(s\) B11.*download it again"):
        open_time_series([str(broken), str(products[1])])

    corrupt = tmp_path / "S2A_MSIL2A_20180627T104021_N0208_R008_T31TEJ_20180627T143337.SAFE.zip"
    data = zip_product(products[2], _sub(tmp_path, "whole"))
    corrupt.write_bytes(data.read_bytes()[: data.stat().st_size // 3])
    with pytest.raises(EngineError, match="damaged or not a zip"):
        open_time_series([str(corrupt), str(products[1])])

    l1c = make_l1c(products[3], tmp_path)
    with pytest.raises(EngineError, match="mixes L2A .* and L1C.*MSIL1C"):
        open_time_series([str(products[0]), str(l1c)])

    with pytest.raises(EngineError, match="outside the product"):
        open_time_series([str(products[0]), str(products[1])], bbox=(600000, 4700000, 601000, 4701000))

    with pytest.raises(EngineError, match="not a Sentinel-2 band"):
        open_time_series([str(products[0]), str(products[1])], bands=["B02", "B13"])
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".tif", ".vrt")) == []


def test_the_empty_product_alone_is_refused_with_its_name(shared_data):
    empty = shared_data / "herault_s2_l2a" / "products" / EMPTY_PRODUCT
    with pytest.raises(EngineError, match="20180212.*no data"):
        open_time_series([str(empty), str(real_products(shared_data)[0])])


@pytest.mark.slow
def test_cli_from_a_folder_of_zips_to_a_crop_map(products, shared_data, tmp_path, capsys):
    from engine.cli import main

    downloads = _sub(tmp_path, "downloads")
    for product in products[:3]:
        zip_product(product, downloads)
    parcels = shared_data / "herault_s2_l2a" / "parcels" / "france_data_2018.shp"
    bbox = ["524000", "4830000", "524640", "4830640"]  # 64 x 64 px of the tile
    quick = ["--preset", "lite", "--batch-size", "2", "--crop", "16", "--device", "cpu", "--quiet"]
    model, crop_map = tmp_path / "crops.cropmodel", tmp_path / "map.tif"
    assert main(["train", "--images", str(downloads), "--bbox", *bbox, "--labels", str(parcels),
                 "--class-field", "EC_hcat_n", "--epochs", "1", "--steps-per-epoch", "1", *quick,
                 "--out", str(model)]) == 0
    assert main(["predict", "--model", str(model), "--images", str(downloads), "--bbox", *bbox,
                 "--out", str(crop_map), "--quiet", "--device", "cpu"]) == 0
    written = sentinel2.gdal.Open(str(crop_map))
    assert (written.RasterXSize, written.RasterYSize) == (64, 64)
    assert written.GetGeoTransform()[0] == 524000 and written.GetGeoTransform()[3] == 4830640

    # without --bbox only the parcels' extent is read (not the whole tile), in training and in prediction
    from engine.bundle import ModelBundle

    whole = tmp_path / "whole.tif"
    assert main(["train", "--images", str(downloads), "--labels", str(parcels), "--class-field", "EC_hcat_n",
                 "--epochs", "1", "--steps-per-epoch", "1", *quick, "--out", str(model)]) == 0
    size = ModelBundle.load(str(model)).provenance["inputs"]["size"]
    assert main(["predict", "--model", str(model), "--images", str(downloads), "--fields", str(parcels),
                 "--out", str(whole), "--quiet", "--device", "cpu"]) == 0
    written = sentinel2.gdal.Open(str(whole))
    assert [written.RasterXSize, written.RasterYSize] == size and size[0] < 232 and size[1] <= 353

    # a damaged download among them: one line naming it, exit status 1, nothing written
    (downloads / "S2B_MSIL2A_20180920T104019_N0208_R008_T31TEJ_20180920T153221.SAFE.zip").write_bytes(b"PK\x03\x04broken")
    capsys.readouterr()
    other = tmp_path / "other.cropmodel"
    assert main(["pretrain", "--images", str(downloads), "--bbox", *bbox, "--epochs", "1", *quick,
                 "--out", str(other)]) == 1
    err = capsys.readouterr().err
    assert "S2B_MSIL2A_20180920" in err and "damaged" in err
    assert not other.exists() and not list(tmp_path.glob(".other*"))


def test_pipeline_reads_only_the_fields_extent_from_products(products, shared_data):
    from engine import pipeline
    from engine.data.sentinel2 import vector_extent

    parcels = str(shared_data / "herault_s2_l2a" / "parcels" / "france_data_2018.shp")
    series = pipeline.SeriesInput(images=[str(p) for p in products[:2]])
    limited = pipeline.within_fields(series, parcels)
    assert (limited.bbox, limited.bbox_crs) == vector_extent(parcels) and series.bbox is None
    with pipeline.open_series(limited) as ts:
        assert ts.grid.width < 232 and ts.grid.height <= 353  # not the whole (cut) tile
    given = pipeline.SeriesInput(images=series.images, bbox=(1.0, 2.0, 3.0, 4.0), bbox_crs="EPSG:32631")
    assert pipeline.within_fields(given, parcels) is given  # the user's area wins
    plain = pipeline.SeriesInput(images=sorted(glob.glob(str(shared_data / "herault_s2_l2a" / "geotiff" / "*.tif"))))
    assert pipeline.within_fields(plain, parcels) is plain  # rasters a user prepared are read as they are
