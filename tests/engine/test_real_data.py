"""The whole engine on real Sentinel-2 samples from ../shared/data (skipped when absent)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, ogr

from engine import pipeline
from engine.errors import EngineError

pytestmark = pytest.mark.realdata
FAST_TRAIN = dict(preset="lite", epochs=1, steps_per_epoch=2, batch_size=2, crop=16, device="cpu")


def slovenia_series(data: Path) -> pipeline.SeriesInput:
    root = data / "slovenia_s2"
    return pipeline.SeriesInput(
        images=sorted(str(p) for p in (root / "ndvi").glob("*.tif")),
        cloud_masks=sorted(str(p) for p in (root / "cloudmask").glob("*.tif")),
    )


def test_slovenia_train_predict_evaluate(shared_data, tmp_path):
    series = slovenia_series(shared_data)
    labels = pipeline.LabelInput(str(shared_data / "slovenia_s2" / "lulc_polygons.gpkg"), "LULC_NAME", layer="LULC")
    trained = pipeline.train(series, labels, str(tmp_path / "model.cropmodel"), pipeline.TrainOptions(**FAST_TRAIN))
    assert set(trained.split) == {"train", "val", "test"}
    assert trained.split["test"]["fields"] > 0

    predicted = pipeline.predict(
        trained.model_path, series, str(tmp_path / "map.tif"), out_confidence=str(tmp_path / "conf.tif"),
        fields=labels.path, fields_layer="LULC", fields_out=str(tmp_path / "fields.gpkg"),
        options=pipeline.PredictOptions(device="cpu"),
    )
    dataset = gdal.Open(predicted.map_path)  # keep it referenced: a band dies with its dataset
    dataset.GetMetadata()  # GDAL 3.6 loads the .aux.xml category names only after a metadata call
    band = dataset.GetRasterBand(1)
    names = band.GetCategoryNames()[1:]  # 0 is "No data"
    assert set(names) == {"artificial surface", "cultivated land", "forest", "grassland", "schrubland"}
    assert band.ReadAsArray().shape == (101, 100)

    source, written = ogr.Open(labels.path), ogr.Open(predicted.fields_path)
    assert written.GetLayer(0).GetFeatureCount() == source.GetLayerByName("LULC").GetFeatureCount()

    report = pipeline.evaluate(predicted.map_path, labels, str(tmp_path / "report"), model_path=trained.model_path)
    metrics = json.loads(Path(report.json_path).read_text())
    test_pixels = trained.split["test"]["pixels"]
    assert 0 < metrics["pixels"] <= test_pixels, "only the test fields are scored"
    assert Path(report.html_path).read_text().count("<svg") >= 1


def test_belgium_pretrain_and_predict(shared_data, tmp_path):
    """Nine-band L2A with nodata 65535: pre-training and mapping with a model fine-tuned on made-up fields."""
    images = sorted(str(p) for p in (shared_data / "belgium_s2_l2a_monthly").glob("*.tif"))
    series = pipeline.SeriesInput(images=images)
    outcome = pipeline.pretrain(
        series, str(tmp_path / "pre.cropmodel"),
        pipeline.PretrainOptions(preset="lite", epochs=1, steps_per_epoch=2, batch_size=2, crop=16, device="cpu"),
    )
    assert np.isfinite(outcome.history[-1]["loss"])

    from engine.bundle import ModelBundle

    pre = ModelBundle.load(outcome.model_path)
    assert pre.kind == "pretrained" and pre.band_names == ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B11", "B12"]
    with pytest.raises(EngineError, match="pre-trained"):
        pipeline.predict(outcome.model_path, series, str(tmp_path / "map.tif"))
    assert not (tmp_path / "map.tif").exists()

    fields = _two_fields(images[0], tmp_path / "fields.geojson")
    trained = pipeline.train(
        series, pipeline.LabelInput(str(fields), "crop"), str(tmp_path / "model.cropmodel"),
        pipeline.TrainOptions(**FAST_TRAIN, val_fraction=0.0, test_fraction=0.0), init_model=outcome.model_path,
    )
    predicted = pipeline.predict(trained.model_path, series, str(tmp_path / "map.tif"), options=pipeline.PredictOptions(device="cpu"))
    dataset = gdal.Open(predicted.map_path)
    classes = dataset.GetRasterBand(1).ReadAsArray()
    assert classes.shape == (100, 100)
    assert set(np.unique(classes)) <= {0, 1, 2}


def _two_fields(image: str, path: Path) -> Path:
    """Two rectangular 'fields' of different classes inside the image, in its CRS."""
    dataset = gdal.Open(image)
    x0, dx, _, y0, _, dy = dataset.GetGeoTransform()
    driver = ogr.GetDriverByName("GeoJSON")
    source = driver.CreateDataSource(str(path))
    srs = dataset.GetSpatialRef()
    layer = source.CreateLayer("fields", srs, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("crop", ogr.OFTString))
    for name, (px0, py0, px1, py1) in (("maize", (10, 10, 40, 40)), ("winter wheat", (55, 55, 90, 90))):
        ring = f"{x0 + px0 * dx} {y0 + py0 * dy},{x0 + px1 * dx} {y0 + py0 * dy},{x0 + px1 * dx} {y0 + py1 * dy},{x0 + px0 * dx} {y0 + py1 * dy},{x0 + px0 * dx} {y0 + py0 * dy}"
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField("crop", name)
        feature.SetGeometry(ogr.CreateGeometryFromWkt(f"POLYGON(({ring}))"))
        layer.CreateFeature(feature)
    source = None
    return path
