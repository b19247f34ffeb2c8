"""Sentinel-2 products in the dialog: added from a folder, checked, read over the fields' extent."""

from __future__ import annotations

import pytest
from qgis.core import QgsProject, QgsSettings, QgsVectorLayer

from cropmapper.engine import pipeline
from cropmapper.ui import sentinel2_products
from cropmapper.ui.dialog import COL_BANDS, COL_DATE, MapCropsDialog

pytestmark = pytest.mark.realdata


def test_a_folder_of_products_becomes_dated_rows_read_over_the_fields(qgis_iface, shared_data, qgis_new_project):  # noqa: ARG001
    QgsSettings().remove("cropmapper/dialog")
    herault = shared_data / "herault_s2_l2a"
    fields = QgsVectorLayer(str(herault / "parcels" / "france_data_2018.shp"), "parcels", "ogr")
    assert fields.isValid()
    QgsProject.instance().addMapLayer(fields)
    dialog = MapCropsDialog(qgis_iface)
    products = sentinel2_products.products_in([str(herault / "products")])
    assert len(products) == 10
    dialog.add_series_files(products)
    table = dialog.series_table
    assert table.rowCount() == 10
    dates = [table.item(r, COL_DATE).text() for r in range(10)]
    assert dates == sorted(dates) and dates[0] == "2018-01-23"
    assert table.item(0, COL_BANDS).text().startswith("10: B02, B03, B04, B05")
    dialog.set_polygons(fields, "EC_hcat_n")
    dialog.mask_combo.setCurrentIndex(dialog.mask_combo.findData("scl"))  # products bring their own SCL
    assert not [p for p in dialog.check() if "product" in p or "SCL" in p or "date" in p]

    series = dialog.series_input()
    assert "Lambert" in series.bbox_crs and series.scl is None  # the products' own SCL are used
    with pipeline.open_series(series) as ts:
        assert ts.num_dates == 9 and ts.has_cloud_masks
        assert ts.grid.width < 232 and ts.grid.height <= 353  # the parcels' extent, not the whole cut tile
        assert len(ts.band_names) == 10  # the default band set

    # The user's band choice reaches the engine, in its names; an unknown band is a problem before Run.
    dialog.s2_bands_edit.setText("b4, B8, b8a")
    assert dialog.series_input().bands == ["B04", "B08", "B8A"]
    assert not [p for p in dialog.check() if "band" in p.lower()]
    with pipeline.open_series(dialog.series_input()) as ts:
        assert list(ts.band_names) == ["B04", "B08", "B8A"]
    dialog.s2_bands_edit.setText("B04, B99")
    assert [p for p in dialog.check() if "B99" in p]
    dialog.close()


@pytest.mark.slow
def test_processing_reads_zipped_products_over_an_area(provider, shared_data, tmp_path):  # noqa: ARG001

    import processing
    from qgis.core import QgsProcessingException

    products = sorted((shared_data / "herault_s2_l2a" / "products").glob("S2A_*.SAFE"))[:2]
    out = tmp_path / "pre.cropmodel"
    result = processing.run("cropmapper:pretrain", {
        "S2_PRODUCTS": [str(p / "MTD_MSIL2A.xml") for p in products], "S2_BANDS": "B04,B08,B11",
        "AREA": "524000,524640,4830000,4830640 [EPSG:32631]", "DEVICE": "cpu",
        "PRETRAIN_EPOCHS": 1, "STEPS_PER_EPOCH": 1, "OUTPUT_MODEL": str(out),
    })
    assert result["OUTPUT_MODEL"] == str(out) and out.is_file()
    from cropmapper.engine.bundle import ModelBundle

    assert ModelBundle.load(str(out)).band_names == ["B04", "B08", "B11"]

    broken = tmp_path / "S2A_MSIL2A_20180101T000000_N0500_R008_T31TEJ_20180101T000000.SAFE.zip"
    broken.write_bytes(b"not a zip")
    with pytest.raises(QgsProcessingException, match="damaged or not a zip"):
        processing.run("cropmapper:pretrain", {
            "S2_PRODUCTS": [str(broken), str(products[0])], "DEVICE": "cpu", "PRETRAIN_EPOCHS": 1,
            "OUTPUT_MODEL": str(tmp_path / "other.cropmodel")})
    assert not (tmp_path / "other.cropmodel").exists()


@pytest.mark.slow
def test_processing_search_writes_dates_from_a_local_stac_api(provider, shared_data, tmp_path):  # noqa: ARG001
    import sys
    from pathlib import Path

    import processing

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
    from s2_products import real_products
    from stac_helpers import RangeHandler, http_server, item_for, make_cogs, stac_api

    product = real_products(shared_data)[0]  # 2018-01-28
    root = tmp_path / "cogs"
    root.mkdir()
    with http_server(RangeHandler, root) as files_url:
        items = [item_for(product, make_cogs(product, root), files_url, root)]
        with stac_api(items, root) as url:
            out = tmp_path / "s2"
            result = processing.run("cropmapper:search", {
                "STAC": url, "EXTENT": "3.30,3.31,43.62,43.63 [EPSG:4326]", "START": "2018-01-01",
                "END": "2018-02-01", "MAX_CLOUD": 50, "BANDS": "B04,B08", "OUTPUT_FOLDER": str(out)})
    assert result["COUNT"] == 1 and Path(result["IMAGES"][0]).parent == out
    from osgeo import gdal

    written = gdal.Open(result["IMAGES"][0])
    assert written.RasterCount == 2 and written.GetRasterBand(2).GetDescription() == "B08"


@pytest.mark.slow
def test_search_dialog_reads_the_fields_area_into_the_series(qgis_iface, shared_data, tmp_path, wait_for,
                                                             qgis_new_project):  # noqa: ARG001
    import sys
    from pathlib import Path

    from qgis.PyQt.QtCore import QDate

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
    from s2_products import real_products
    from stac_helpers import RangeHandler, http_server, item_for, make_cogs, stac_api

    herault = shared_data / "herault_s2_l2a"
    fields = QgsVectorLayer(str(herault / "parcels" / "france_data_2018.shp"), "parcels", "ogr")
    main_dialog = MapCropsDialog(qgis_iface)
    main_dialog.set_polygons(fields, "EC_hcat_n")
    from cropmapper.ui.search_dialog import SearchDialog

    products = [p for p in real_products(shared_data) if "2018012" in p.name or "20180418" in p.name]
    root = tmp_path / "cogs"
    root.mkdir()
    with http_server(RangeHandler, root) as files_url:
        items = [item_for(p, make_cogs(p, root), files_url, root) for p in products]
        with stac_api(items, root) as url:
            dialog = SearchDialog(main_dialog, fields, str(tmp_path / "s2"), main_dialog.add_series_files)
            dialog.api_combo.setEditText(url)
            dialog.start_date.setDate(QDate(2018, 1, 1))
            dialog.end_date.setDate(QDate(2018, 3, 1))
            task = dialog.start(list_only=False)
            assert task is not None
            wait_for(lambda: dialog.task is None, 120)
    assert dialog.last_result.ok, dialog.last_result.message
    assert dialog.found_list.count() == 2  # 2018-01-23 and 01-28 (04-18 is after the last date)
    assert main_dialog.series_table.rowCount() == 2
    assert [main_dialog.row_date_text(r) for r in range(2)] == ["2018-01-23", "2018-01-28"]
    assert len(list((tmp_path / "s2").glob("*.tif"))) == 2
    dialog.close()
    main_dialog.close()
