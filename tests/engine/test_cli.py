"""The command line end to end on a small synthetic scene, and its answers to bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, ogr, osr

from engine.cli import main
from engine.demo import make_demo_scene

REPO = Path(__file__).resolve().parents[2]
QUICK = ["--preset", "lite", "--batch-size", "2", "--crop", "16", "--device", "cpu"]


def cli(args: list) -> int:
    return main([str(a) for a in args])


def run_cli(args: list, capsys) -> tuple[int, str, str]:
    code = cli(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_demo_scene(tmp_path_factory.mktemp("scene"), size=48, dates=6, label_share=0.6, seed=3)


def series_args(scene) -> list[str]:
    return ["--images", *scene.images, "--cloud-masks", *scene.cloud_masks]


@pytest.fixture(scope="module")
def trained(scene, tmp_path_factory):
    """pretrain -> train through the CLI once for the module."""
    out = tmp_path_factory.mktemp("models")
    pre, model = out / "pre.cropmodel", out / "model.cropmodel"
    assert cli(["pretrain", *series_args(scene), *QUICK, "--epochs", "1", "--steps-per-epoch", "2", "--out", pre, "--quiet"]) == 0
    assert cli([
        "train", *series_args(scene), *QUICK, "--labels", str(scene.fields), "--layer", "labelled", "--class-field", "crop",
        "--init", pre, "--epochs", "1", "--steps-per-epoch", "2", "--out", model, "--quiet",
    ]) == 0
    return pre, model


def test_train_writes_models_and_info_describes_them(trained, capsys):
    pre, model = trained
    assert pre.is_file() and model.is_file()
    assert not list(model.parent.glob("*.checkpoint")), "checkpoints are removed once the model is written"
    code, out, _ = run_cli(["info", model, "--json"], capsys)
    info = last_json(out)
    assert code == 0
    assert info["kind"] == "classifier" and info["preset"] == "lite"
    assert {c["name"] for c in info["classes"]} <= {"winter wheat", "maize", "sugar beet", "potato", "grassland", "rapeseed"}
    assert info["provenance"]["pretrained"] is True
    assert info["parameters"] > 0


def test_predict_and_evaluate(scene, trained, tmp_path, capsys):
    _, model = trained
    out_map, conf, fields_out = tmp_path / "map.tif", tmp_path / "conf.tif", tmp_path / "parcels.gpkg"
    code, out, err = run_cli([
        "predict", "--model", model, *series_args(scene), "--out", out_map, "--confidence", conf,
        "--fields", scene.fields, "--fields-layer", "parcels", "--fields-out", fields_out, "--device", "cpu", "--json",
    ], capsys)
    assert code == 0, err
    result = last_json(out)
    assert result["map"] == str(out_map) and result["pixels"] == 48 * 48

    dataset = gdal.Open(str(out_map))
    reference = gdal.Open(str(scene.images[0]))
    assert dataset.GetGeoTransform() == reference.GetGeoTransform()
    dataset.GetMetadata()  # GDAL 3.6 loads the .aux.xml category names only after a metadata call
    band = dataset.GetRasterBand(1)
    classes = band.ReadAsArray()
    names = band.GetCategoryNames()
    assert band.DataType == gdal.GDT_Byte and band.GetColorTable() is not None
    assert set(np.unique(classes)) - {0} <= set(range(1, len(names)))
    confidence = gdal.Open(str(conf))
    assert confidence.GetRasterBand(1).ReadAsArray().max() <= 1.0
    assert Path(str(out_map)[:-4] + ".qml").is_file() or Path(str(out_map) + ".qml").is_file() or list(tmp_path.glob("*.qml"))

    # Keep the datasets referenced: an OGR layer dies with its dataset.
    written, source = ogr.Open(str(fields_out)), ogr.Open(str(scene.fields))
    layer, parcels = written.GetLayer(0), source.GetLayerByName("parcels")
    assert layer.GetFeatureCount() == parcels.GetFeatureCount()
    assert layer.GetLayerDefn().GetFieldIndex("parcel_id") >= 0, "original attributes are kept"

    report = tmp_path / "report"
    code, out, err = run_cli([
        "evaluate", "--map", out_map, "--labels", scene.fields, "--layer", "labelled", "--class-field", "crop",
        "--model", model, "--split", "test", "--report", report, "--json",
    ], capsys)
    assert code == 0, err
    metrics = last_json(out)["metrics"]
    assert 0.0 <= metrics["overall_accuracy"] <= 1.0
    assert sum(map(sum, metrics["confusion_matrix"])) == metrics["pixels"] > 0
    assert (report / Path(last_json(out)["html"]).name).is_file()


# ---------------------------------------------------------------------------------------------------- bad input


def _assert_user_error(code: int, err: str, *words: str) -> None:
    assert code == 1
    lines = [line for line in err.strip().splitlines() if line]
    assert lines and lines[-1].startswith("error:"), err
    assert "Traceback" not in err
    for word in words:
        assert word.lower() in err.lower(), err


def test_missing_image(tmp_path, capsys):
    code, _, err = run_cli(["pretrain", "--images", tmp_path / "nope.tif", tmp_path / "nope2.tif", "--out", tmp_path / "m.cropmodel"], capsys)
    _assert_user_error(code, err, "nope.tif")
    assert not list(tmp_path.iterdir())


def test_single_date(scene, tmp_path, capsys):
    code, _, err = run_cli(["pretrain", "--images", scene.images[0], "--out", tmp_path / "m.cropmodel"], capsys)
    _assert_user_error(code, err)
    assert not list(tmp_path.iterdir())


def test_unknown_class_field(scene, tmp_path, capsys):
    code, _, err = run_cli([
        "train", *series_args(scene), "--labels", scene.fields, "--layer", "labelled", "--class-field", "cultivar",
        "--out", tmp_path / "m.cropmodel",
    ], capsys)
    _assert_user_error(code, err, "cultivar")
    assert not list(tmp_path.iterdir())


def test_polygons_outside_the_images(scene, tmp_path, capsys):
    vector = tmp_path / "far.geojson"
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32631)
    source = ogr.GetDriverByName("GeoJSON").CreateDataSource(str(vector))
    layer = source.CreateLayer("far", srs, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("crop", ogr.OFTString))
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetField("crop", "maize")
    feature.SetGeometry(ogr.CreateGeometryFromWkt("POLYGON((0 0,100 0,100 100,0 100,0 0))"))
    layer.CreateFeature(feature)
    source = None
    code, _, err = run_cli([
        "train", *series_args(scene), "--labels", vector, "--class-field", "crop", "--out", tmp_path / "m.cropmodel",
    ], capsys)
    _assert_user_error(code, err)
    assert not (tmp_path / "m.cropmodel").exists()


def test_band_count_not_matching_the_model(scene, trained, tmp_path, capsys):
    _, model = trained
    one_band = []
    for image in scene.images:
        path = tmp_path / Path(image).name
        gdal.Translate(str(path), str(image), bandList=[1])
        one_band.append(path)
    out_map = tmp_path / "map.tif"
    code, _, err = run_cli(["predict", "--model", model, "--images", *one_band, "--out", out_map], capsys)
    _assert_user_error(code, err, "band")
    assert not out_map.exists()


def test_output_folder_not_writable(scene, trained, capsys):
    _, model = trained
    # /proc refuses new files even to root, unlike a folder with its write bits cleared.
    code, _, err = run_cli(["predict", "--model", model, *series_args(scene), "--out", "/proc/map.tif"], capsys)
    _assert_user_error(code, err, "not writable")


def test_output_under_a_file_is_a_user_error(scene, trained, tmp_path, capsys):
    _, model = trained
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, _, err = run_cli(["predict", "--model", model, *series_args(scene), "--out", blocker / "map.tif"], capsys)
    _assert_user_error(code, err)


def test_bad_arguments_exit_with_1(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--tile", "many"])
    assert exit_info.value.code == 1


def test_help_has_an_example():
    for command in ("pretrain", "train", "predict", "evaluate", "demo", "info"):
        out = subprocess.run([sys.executable, "-m", "engine", command, "--help"], cwd=REPO, capture_output=True, text=True)
        assert out.returncode == 0 and "example:" in out.stdout and "python -m engine" in out.stdout


def test_info_preset_json(capsys):
    code, out, _ = run_cli(["info", "--preset", "paper", "--bands", "10", "--classes", "20", "--json"], capsys)
    data = last_json(out)
    assert code == 0 and data["preset"] == "paper"
    assert 3_000_000 <= data["parameters"] <= 3_500_000
