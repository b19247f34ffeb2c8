"""STAC search against a real STAC API (rustac serve) on localhost, COGs read through /vsicurl/, no mocks."""

from __future__ import annotations

import datetime as dt
import glob
import shutil

import numpy as np
import pytest

from engine import stac
from engine.data.timeseries import open_time_series
from engine.errors import CancelledError, EngineError

from s2_products import EMPTY_PRODUCT, make_baseline_0400, real_products
from stac_helpers import RangeHandler, RefusingHandler, free_port, http_server, item_for, make_cogs, stac_api

pytestmark = [pytest.mark.realdata,
              pytest.mark.skipif(shutil.which("rustac") is None and not glob.glob(
                  str(__import__("pathlib").Path(__import__("sys").executable).parent / "rustac")),
                  reason="rustac (the STAC API server of the tests) is not installed")]


@pytest.fixture(scope="module")
def catalogue(shared_data, tmp_path_factory):
    """Three Herault acquisitions (one as baseline 04.00+ with its offset) behind a STAC API; yields its URL."""
    root = tmp_path_factory.mktemp("cogs")
    products = [p for p in real_products(shared_data) if p.name != EMPTY_PRODUCT]
    chosen = [products[0], products[1], products[2]]  # 2018-01-28, 04-18, 06-27
    newer = make_baseline_0400(chosen[1], tmp_path_factory.mktemp("n0400"))
    with http_server(RangeHandler, root) as files_url:
        items = [item_for(chosen[0], make_cogs(chosen[0], root), files_url, root),
                 item_for(newer, make_cogs(newer, root), files_url, root, baseline_0400=True),
                 item_for(chosen[2], make_cogs(chosen[2], root), files_url, root)]
        items[2]["properties"]["eo:cloud_cover"] = 80.0
        with stac_api(items, root) as url:
            yield url


@pytest.fixture(scope="module")
def geotiffs(shared_data):
    folder = shared_data / "herault_s2_l2a" / "geotiff"
    with open_time_series(sorted(glob.glob(str(folder / "*.tif"))),
                          scl=sorted(glob.glob(str(folder / "scl" / "*.tif")))) as ts:
        yield ts, ts.read(0, 0, ts.grid.width, ts.grid.height)


def _bbox(ts, x0, y0, x1, y1):
    """Lon/lat bounds of a pixel window of the GeoTIFFs' grid, shrunk a little so no extra pixel is touched."""
    from osgeo import osr

    utm, wgs84 = osr.SpatialReference(), osr.SpatialReference()
    utm.ImportFromWkt(ts.grid.crs_wkt)
    wgs84.ImportFromEPSG(4326)
    wgs84.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    left, top = ts.grid.pixel_to_world(x0, y0)
    right, bottom = ts.grid.pixel_to_world(x1, y1)
    return osr.CoordinateTransformation(utm, wgs84).TransformBounds(left, bottom, right, top, 21)


def test_search_lists_images_within_dates_and_cloud_limit(catalogue):
    found = stac.search(catalogue, (3.0, 43.0, 4.0, 44.0), dt.date(2018, 1, 1), dt.date(2018, 12, 31),
                        max_cloud=50)
    assert [f.time.date() for f in found] == [dt.date(2018, 1, 28), dt.date(2018, 4, 18)]
    assert found[1].scale_offsets["B04"] == (0.0001, -0.1) and found[0].assets["B04"].startswith("/vsicurl/http")
    assert "2018-01-28" in found[0].describe()
    assert stac.search(catalogue, (3.0, 43.0, 4.0, 44.0), dt.date(2018, 3, 1), dt.date(2018, 12, 31),
                       max_cloud=100)[-1].time.date() == dt.date(2018, 6, 27)


def test_download_writes_harmonised_masked_dates_equal_to_the_products(catalogue, geotiffs, tmp_path):
    reference, (x_all, valid_all) = geotiffs
    bbox = _bbox(reference, 40, 100, 104, 164)
    outcome = stac.search_and_download(catalogue, bbox, dt.date(2018, 1, 1), dt.date(2018, 5, 1), str(tmp_path),
                                       max_cloud=50)
    assert [p.split("/")[-1] for p in outcome.written] == ["S2A_31TEJ_20180128T104311.tif",
                                                           "S2A_31TEJ_20180418T104021.tif"]
    with open_time_series(outcome.written) as ts:
        width, height = ts.grid.width, ts.grid.height
        assert 64 <= width <= 68 and 64 <= height <= 68  # the lon/lat box holds the 64 x 64 px window
        x0, y0 = (int(round(v)) for v in reference.grid.world_to_pixel(*ts.grid.pixel_to_world(0, 0)))
        assert 36 <= x0 <= 40 and 96 <= y0 <= 100
        assert ts.band_names == reference.band_names
        x, valid = ts.read(0, 0, width, height)
        rows = [reference.timestamps.index(t) for t in ts.timestamps]
    np.testing.assert_array_equal(valid, valid_all[rows, y0:y0 + height, x0:x0 + width])
    np.testing.assert_array_equal(x, x_all[rows, :, y0:y0 + height, x0:x0 + width])  # 04.00 harmonised too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["S2A_31TEJ_20180128T104311.tif",
                                                          "S2A_31TEJ_20180418T104021.tif"]


def test_empty_search_outside_the_tile_and_cancel(catalogue, tmp_path):
    with pytest.raises(EngineError, match="No Sentinel-2 L2A image was found"):
        stac.search_and_download(catalogue, (10.0, 50.0, 10.1, 50.1), dt.date(2018, 1, 1), dt.date(2018, 12, 31),
                                 str(tmp_path))
    with pytest.raises(EngineError, match="No Sentinel-2 L2A image was found"):
        stac.search_and_download(catalogue, (3.0, 43.0, 4.0, 44.0), dt.date(2019, 1, 1), dt.date(2019, 2, 1),
                                 str(tmp_path))
    calls = []
    with pytest.raises(CancelledError):
        stac.search_and_download(catalogue, (3.0, 43.0, 4.0, 44.0), dt.date(2018, 1, 1), dt.date(2018, 5, 1),
                                 str(tmp_path), cancelled=lambda: len(calls) > 2, progress=lambda f, m: calls.append(f))
    assert list(tmp_path.iterdir()) == []


def test_unreachable_and_refusing_servers_get_clear_messages(tmp_path):
    with pytest.raises(EngineError, match="Cannot reach the STAC API at http://127.0.0.1"):
        stac.search(f"http://127.0.0.1:{free_port()}", (3.0, 43.0, 4.0, 44.0), dt.date(2018, 1, 1),
                    dt.date(2018, 2, 1))
    with http_server(RefusingHandler) as url:
        with pytest.raises(EngineError, match="refused|Cannot reach"):
            stac.search(url, (3.0, 43.0, 4.0, 44.0), dt.date(2018, 1, 1), dt.date(2018, 2, 1))
    with pytest.raises(EngineError, match="neither a STAC API address"):
        stac.search("earth", (3.0, 43.0, 4.0, 44.0), dt.date(2018, 1, 1), dt.date(2018, 2, 1))
    with pytest.raises(EngineError, match="west, south, east, north"):
        stac.search("earth-search", (44.0, 3.0, 43.0, 4.0), dt.date(2018, 1, 1), dt.date(2018, 2, 1))


def test_cli_search(catalogue, geotiffs, tmp_path, capsys):
    from engine.cli import main

    reference, _ = geotiffs
    bbox = [str(v) for v in _bbox(reference, 0, 0, 32, 32)]
    out = tmp_path / "s2"
    assert main(["search", "--stac", catalogue, "--bbox", *bbox, "--start", "2018-01-01", "--end", "2018-12-31",
                 "--max-cloud", "50", "--out", str(out), "--quiet", "--json"]) == 0
    printed = capsys.readouterr().out
    assert "2018-01-28" in printed and "2018-04-18" in printed
    import json

    result = json.loads(printed.strip().splitlines()[-1])
    assert len(result["written"]) == 2 and all(p.startswith(str(out)) for p in result["written"])
    assert main(["search", "--stac", catalogue, "--bbox", *bbox, "--start", "2019-01-01", "--end", "2019-02-01",
                 "--out", str(tmp_path / "none"), "--quiet"]) == 1
    assert "No Sentinel-2 L2A image" in capsys.readouterr().err
