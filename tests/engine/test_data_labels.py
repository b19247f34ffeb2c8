"""Field polygons -> label and field-id rasters."""

import numpy as np
import pytest
from data_helpers import ORIGIN, box, pixel_box, write_raster, write_vector
from osgeo import gdal, ogr

from engine.classes import ClassTable
from engine.data import RasterGrid, rasterize_fields
from engine.errors import EngineError

GRID = RasterGrid(20, 15, (ORIGIN[0], 10.0, 0.0, ORIGIN[1], 0.0, -10.0),
                  gdal.Open(write_raster("/vsimem/grid.tif", np.zeros((15, 20), np.uint8))).GetProjection())


@pytest.fixture
def fields(tmp_path):
    """Four fields: wheat (2), maize, and an overlap of wheat and maize over 2 x 2 pixels; one without class."""
    geometries = [pixel_box(2, 2, 6, 5), pixel_box(8, 2, 12, 6), pixel_box(10, 4, 14, 9), pixel_box(2, 8, 5, 12),
                  pixel_box(15, 10, 18, 13)]
    attributes = [{"crop": "wheat", "code": 3}, {"crop": "maize", "code": 7}, {"crop": "wheat", "code": 3},
                  {"crop": "barley", "code": 5}, {"crop": None, "code": 0}]
    return str(tmp_path / "fields.gpkg"), geometries, attributes


def test_text_classes_labels_field_ids_overlap(fields):
    path, geometries, attributes = fields
    write_vector(path, geometries, attributes)
    result = rasterize_fields(path, GRID, "crop")
    assert result.classes.names == ["barley", "maize", "wheat"]
    assert result.window == (2, 2, 12, 10)  # columns 2..13, rows 2..11 (the classless field is skipped)
    x0, y0, _, _ = result.window
    full = np.zeros((15, 20), np.int32)
    full[y0:y0 + result.labels.shape[0], x0:x0 + result.labels.shape[1]] = result.labels
    assert (full[2:5, 2:6] == 3).all() and (full[8:12, 2:5] == 1).all()
    assert result.overlap_pixels == 4  # maize rows 4..5 x columns 10..11 under wheat
    assert (full[4:6, 10:12] == 0).all()
    assert result.class_pixels == {1: 12, 2: 16 - 4, 3: 12 + 20 - 4}
    assert result.field_classes == {1: 3, 2: 2, 3: 3, 4: 1}
    assert result.field_fids == {1: 1, 2: 2, 3: 3, 4: 4}  # GPKG feature ids
    ids = np.zeros((15, 20), np.int32)
    ids[y0:y0 + result.labels.shape[0], x0:x0 + result.labels.shape[1]] = result.field_ids
    assert (ids[2:5, 2:6] == 1).all() and (ids[8:12, 2:5] == 4).all() and (ids[4:6, 10:12] == 0).all()
    assert result.labels.dtype == np.int32 and result.field_ids.dtype == np.int32
    assert any("overlap" in w for w in result.warnings) and any("without a class" in w for w in result.warnings)


def test_integer_classes_skip_zero_and_colors(fields):
    path, geometries, attributes = fields
    write_vector(path, geometries, attributes)
    result = rasterize_fields(path, GRID, "code", colors={"7": (1, 2, 3)})
    assert result.classes.names == ["3", "5", "7"]
    assert result.classes.by_name("7").color == (1, 2, 3)
    assert sorted(result.field_classes.values()) == [1, 1, 2, 3]


def test_reprojected_geojson_and_shapefile_match(tmp_path, fields):
    path, geometries, attributes = fields
    reference = rasterize_fields(write_vector(path, geometries, attributes), GRID, "crop")
    for name, driver, epsg in (("f.geojson", "GeoJSON", 4326), ("f.shp", "ESRI Shapefile", 3857)):
        other = write_vector(tmp_path / name, geometries, attributes, epsg=epsg, driver=driver)
        result = rasterize_fields(other, GRID, "crop")
        assert result.window == reference.window
        np.testing.assert_array_equal(result.labels, reference.labels)


def test_given_class_table_and_unknown_names(fields):
    path, geometries, attributes = fields
    write_vector(path, geometries, attributes)
    table = ClassTable.from_names(["wheat", "maize", "rye"])
    result = rasterize_fields(path, GRID, "crop", class_table=table)
    assert result.classes == table
    assert set(np.unique(result.labels)) == {0, 1, 2}
    assert any("barley (1)" in w for w in result.warnings)
    assert not any("'rye' covers" in w for w in result.warnings)  # a model class absent from the area is normal


def test_window_clipped_to_raster(tmp_path):
    path = write_vector(tmp_path / "f.gpkg", [pixel_box(-5, -5, 3, 4), pixel_box(18, 12, 30, 30)],
                        [{"crop": "a"}, {"crop": "b"}])
    result = rasterize_fields(path, GRID, "crop")
    assert result.window == (0, 0, 20, 15)
    assert result.class_pixels == {1: 12, 2: 6}


def test_polygons_partly_outside_are_dropped_with_warning(tmp_path):
    path = write_vector(tmp_path / "f.gpkg", [pixel_box(1, 1, 4, 4), pixel_box(40, 40, 45, 45)],
                        [{"crop": "a"}, {"crop": "b"}])
    result = rasterize_fields(path, GRID, "crop")
    assert result.classes.names == ["a"]
    assert any("outside the raster" in w for w in result.warnings)


def test_real_slovenia_matches_reference_raster(shared_data):
    folder = shared_data / "slovenia_s2"
    dataset = gdal.Open(str(folder / "lulc_labels.tif"))
    grid = RasterGrid.from_dataset(dataset)
    reference = dataset.ReadAsArray()
    result = rasterize_fields(str(folder / "lulc_polygons.gpkg"), grid, "LULC_NAME", layer="LULC")
    assert result.classes.names == ["artificial surface", "cultivated land", "forest", "grassland", "schrubland"]
    x0, y0, w, h = result.window
    full = np.zeros(reference.shape, np.int32)
    full[y0:y0 + h, x0:x0 + w] = result.labels
    names = dict(zip([1, 2, 3, 4, 8], ["cultivated land", "forest", "grassland", "schrubland", "artificial surface"]))
    for lulc_id, name in names.items():
        value = result.classes.by_name(name).value
        np.testing.assert_array_equal(full == value, reference == lulc_id)
    assert result.class_pixels[result.classes.by_name("forest").value] == 7601
    by_id = rasterize_fields(str(folder / "lulc_polygons.gpkg"), grid, "LULC_ID")
    assert by_id.classes.names == ["1", "2", "3", "4", "8"]  # ID 0 ("no data") skipped


def test_geopackage_fid_is_a_readable_class_field(fields):
    """QGIS lists a GeoPackage's ``fid`` with the attributes; the engine must read it too (one class per polygon)."""
    path, geometries, attributes = fields
    write_vector(path, geometries, attributes)
    result = rasterize_fields(path, GRID, "fid")
    assert result.classes.names == ["1", "2", "3", "4", "5"]
    assert result.field_classes == {i: i for i in range(1, 6)}
    assert any("Every polygon has its own class in 'fid'" in w for w in result.warnings)
    assert not any("own class" in w for w in rasterize_fields(path, GRID, "crop").warnings)


def test_id_field_with_subpixel_polygons_says_it_looks_like_an_id(tmp_path):
    geometries = [pixel_box(2, 2, 6, 5), box(ORIGIN[0] + 101, ORIGIN[1] - 109, ORIGIN[0] + 102, ORIGIN[1] - 108)]
    path = write_vector(tmp_path / "f.gpkg", geometries, [{"index": 1}, {"index": 2}])
    with pytest.raises(EngineError, match="own class in 'index'.*id rather than the crop class.*cover no pixel"):
        rasterize_fields(path, GRID, "index")


# --- bad input ---------------------------------------------------------------------------------------------------

def test_missing_file_layer_and_field(tmp_path, fields):
    path, geometries, attributes = fields
    with pytest.raises(EngineError, match="does not exist"):
        rasterize_fields(path, GRID, "crop")
    write_vector(path, geometries, attributes)
    with pytest.raises(EngineError, match="no layer 'parcels'.*fields"):
        rasterize_fields(path, GRID, "crop", layer="parcels")
    with pytest.raises(EngineError, match="no field 'CROP_TYPE'.*crop, code"):
        rasterize_fields(path, GRID, "CROP_TYPE")
    junk = tmp_path / "junk.gpkg"
    junk.write_text("nothing")
    with pytest.raises(EngineError, match="cannot be read|no vector layer"):
        rasterize_fields(str(junk), GRID, "crop")


def test_point_and_line_layers(tmp_path):
    o = ORIGIN
    points = write_vector(tmp_path / "p.gpkg", [f"POINT({o[0] + 15} {o[1] - 15})"], [{"crop": "a"}],
                          geometry_type=ogr.wkbPoint)
    with pytest.raises(EngineError, match="holds points.*polygons"):
        rasterize_fields(points, GRID, "crop")
    lines = write_vector(tmp_path / "l.geojson", [f"LINESTRING({o[0]} {o[1]}, {o[0] + 50} {o[1] - 50})"],
                         [{"crop": "a"}], driver="GeoJSON", geometry_type=ogr.wkbUnknown)
    with pytest.raises(EngineError, match="holds lines"):
        rasterize_fields(lines, GRID, "crop")


def test_polygons_not_overlapping(tmp_path):
    far = write_vector(tmp_path / "far.gpkg", [box(0, 0, 100, 100)], [{"crop": "a"}])
    with pytest.raises(EngineError, match="overlaps the raster"):
        rasterize_fields(far, GRID, "crop")


def test_class_with_no_pixels(tmp_path):
    # "tiny" is a 3 m square between pixel centres: no pixel after rasterising, so it cannot be learnt.
    tiny = box(ORIGIN[0] + 101, ORIGIN[1] - 104, ORIGIN[0] + 104, ORIGIN[1] - 101)
    path = write_vector(tmp_path / "f.gpkg", [pixel_box(1, 1, 4, 4), tiny], [{"crop": "a"}, {"crop": "tiny"}])
    with pytest.raises(EngineError, match="'tiny' cover no pixel"):
        rasterize_fields(path, GRID, "crop")
    table = ClassTable.from_names(["a", "tiny"])
    result = rasterize_fields(path, GRID, "crop", class_table=table)  # with a model's classes: only a warning
    assert any("'tiny' covers no pixel" in w for w in result.warnings)


def test_no_classes_at_all(tmp_path):
    path = write_vector(tmp_path / "f.gpkg", [pixel_box(1, 1, 4, 4)], [{"crop": ""}])
    with pytest.raises(EngineError, match="No polygon.*has a class"):
        rasterize_fields(path, GRID, "crop")


def test_invalid_self_intersecting_polygon(tmp_path):
    o = ORIGIN
    bowtie = f"POLYGON(({o[0]} {o[1]},{o[0] + 80} {o[1] - 80},{o[0] + 80} {o[1]},{o[0]} {o[1] - 80},{o[0]} {o[1]}))"
    path = write_vector(tmp_path / "f.gpkg", [bowtie, pixel_box(10, 10, 14, 14)], [{"crop": "a"}, {"crop": "b"}])
    result = rasterize_fields(path, GRID, "crop")
    assert result.class_pixels[1] > 0 and result.class_pixels[2] == 16
