"""``map_crops``, all steps in one call, on a tiny synthetic scene."""

from __future__ import annotations

import pytest

from engine import pipeline
from engine.demo import make_demo_scene
from engine.errors import CancelledError

FAST = dict(preset="lite", epochs=1, steps_per_epoch=2, batch_size=2, crop=16, device="cpu")


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_demo_scene(tmp_path_factory.mktemp("scene"), size=40, dates=5, label_share=0.7, seed=5)


def _inputs(scene):
    series = pipeline.SeriesInput([str(p) for p in scene.images], cloud_masks=[str(p) for p in scene.cloud_masks])
    return series, pipeline.LabelInput(str(scene.fields), "crop", layer="labelled")


def test_map_crops_writes_every_output(scene, tmp_path):
    series, labels = _inputs(scene)
    result = pipeline.map_crops(
        series, labels, str(tmp_path / "out"), train_options=pipeline.TrainOptions(**FAST),
        pretrain_options=pipeline.PretrainOptions(**{k: v for k, v in FAST.items()}),
        predict_options=pipeline.PredictOptions(device="cpu"),
    )
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"pretrained.cropmodel", "model.cropmodel", "crop_map.tif", "confidence.tif", "fields.gpkg", "report"} <= names
    assert result.report is not None and result.report.metrics["split"] == "test"
    assert result.train is not None and result.predict.fields_path


def test_staged_run_names_its_final_paths_and_the_fields_split(scene, tmp_path):
    """A caller writing into a staging folder (the dialog, Processing) gets reports and provenance naming the final
    folder; the field-level output says which polygons were training, validation and test fields."""
    import json

    from osgeo import ogr

    from engine.bundle import ModelBundle

    series, labels = _inputs(scene)
    staging, final = tmp_path / ".run.partial", tmp_path / "run"
    result = pipeline.map_crops(
        series, labels, str(staging), train_options=pipeline.TrainOptions(**FAST),
        pretrain_options=pipeline.PretrainOptions(**FAST), predict_options=pipeline.PredictOptions(device="cpu"),
        final_dir=str(final), outputs=("map", "confidence", "fields", "report", "probabilities"),
    )
    from osgeo import gdal

    assert gdal.Open(str(staging / "probabilities.tif")).RasterCount == len(result.report.metrics["per_class"])
    metrics = json.loads((staging / "report" / "metrics.json").read_text())
    assert metrics["map"] == str(final / "crop_map.tif")
    assert "partial" not in (staging / "report" / "report.html").read_text()
    provenance = ModelBundle.load(str(staging / "model.cropmodel")).provenance
    assert provenance["init_model"] == str(final / "pretrained.cropmodel")
    assert all("fields" in c for c in result.report.metrics["per_class"])
    assert sum(c["fields"] for c in result.report.metrics["per_class"]) == result.train.split["test"]["fields"]
    dataset = ogr.Open(str(staging / "fields.gpkg"))
    splits = [f.GetField("crop_split") for f in dataset.GetLayer(0)]
    counts = {name: splits.count(name) for name in ("train", "val", "test")}
    assert counts == {name: result.train.split[name]["fields"] for name in ("train", "val", "test")}


def test_cancel_after_training_leaves_no_output(scene, tmp_path):
    """Cancelled while mapping: the models already written go too, and files that were there stay."""
    series, labels = _inputs(scene)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    seen = []

    def progress(fraction: float, message: str) -> None:
        seen.append(fraction)

    with pytest.raises(CancelledError):
        pipeline.map_crops(
            series, labels, str(out), train_options=pipeline.TrainOptions(**FAST),
            pretrain_options=pipeline.PretrainOptions(**FAST), predict_options=pipeline.PredictOptions(device="cpu"),
            progress=progress, cancelled=lambda: bool(seen) and seen[-1] > 0.8,
        )
    assert max(seen) > 0.8, "the cancel came after the models were written"
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def _mixed_layer(scene, path):
    """The labelled fields plus the other parcels with an empty class, in one layer (as a user digitises)."""
    from osgeo import ogr

    source = ogr.Open(str(scene.fields))
    labelled, parcels = source.GetLayerByName("labelled"), source.GetLayerByName("parcels")
    done = {f.GetField("parcel_id") for f in labelled}
    target_ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    target = target_ds.CreateLayer("mixed", labelled.GetSpatialRef(), ogr.wkbPolygon)
    target.CreateField(ogr.FieldDefn("parcel_id", ogr.OFTInteger))
    target.CreateField(ogr.FieldDefn("crop", ogr.OFTString))
    for layer in (labelled, parcels):
        layer.ResetReading()
        for f in layer:
            if layer is parcels and f.GetField("parcel_id") in done:
                continue
            out = ogr.Feature(target.GetLayerDefn())
            out.SetField("parcel_id", f.GetField("parcel_id"))
            if layer is labelled:
                out.SetField("crop", f.GetField("crop"))
            out.SetGeometry(f.GetGeometryRef().Clone())
            target.CreateFeature(out)
    target_ds = None
    return pipeline.LabelInput(str(path), "crop", layer="mixed"), len(done)


@pytest.mark.slow
def test_map_crops_with_uncertainty_and_suggestions(scene, tmp_path):
    series, _ = _inputs(scene)
    labels, labelled = _mixed_layer(scene, tmp_path / "mixed.gpkg")
    result = pipeline.map_crops(
        series, labels, str(tmp_path / "out"), train_options=pipeline.TrainOptions(**FAST),
        predict_options=pipeline.PredictOptions(device="cpu"),
        outputs=("map", "uncertainty", "suggestions", "report"),
    )
    assert result.predict.uncertainty_path and (tmp_path / "out" / "uncertainty.tif").exists()
    suggestions = result.suggestions
    assert suggestions is not None and (tmp_path / "out" / "suggested_fields.gpkg").exists()
    assert 1 <= len(suggestions.suggestions) <= 20
    # only polygons without a class were candidates: their fids come after the labelled ones
    assert all(row["source_fid"] > labelled for row in suggestions.suggestions)
    assert "area_estimates" in result.report.metrics
