"""Issue 15, "nothing lost, nothing silently wrong": each test is one bad input or fault, named after its point.

Full disks are real (a small tmpfs mounted for the test, skipped where mounting is impossible); nothing is mocked.
docs/RELIABILITY.md lists these cases with what each gets.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, ogr, osr

from engine import pipeline
from engine.cli import main
from engine.demo import make_demo_scene
from engine.errors import CancelledError, EngineError
from engine.outputs import OutputLock
from reliability_helpers import fill, file_state, files_under, float_copies, small_disk, truncated_copy

REPO = Path(__file__).resolve().parents[2]
QUICK = ["--preset", "lite", "--batch-size", "2", "--crop", "16", "--device", "cpu", "--quiet"]
TRAIN_QUICK = pipeline.TrainOptions(epochs=1, batch_size=2, crop=16, steps_per_epoch=2, device="cpu")


def cli(args: list, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def user_error(code: int, err: str, *words: str) -> None:
    assert code == 1, err
    assert "Traceback" not in err, err
    for word in words:
        assert word.lower() in err.lower(), err


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_demo_scene(tmp_path_factory.mktemp("scene"), size=48, dates=6, label_share=0.6, seed=3)


@pytest.fixture(scope="module")
def model(scene, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("model") / "model.cropmodel"
    pipeline.train(pipeline.SeriesInput(scene.images, cloud_masks=scene.cloud_masks),
                   pipeline.LabelInput(str(scene.fields), "crop", layer="labelled"), str(out), TRAIN_QUICK)
    return out


def series_args(scene, images=None) -> list:
    return ["--images", *(images or scene.images), "--cloud-masks", *scene.cloud_masks]


def copied_images(scene, folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    return [str(shutil.copy(p, folder / Path(p).name)) for p in scene.images]


def labels_args(scene) -> list:
    return ["--labels", scene.fields, "--layer", "labelled", "--class-field", "crop"]


# ------------------------------------------------------------------ 1. an output never replaces an input


def test_1_predict_out_naming_an_input_image_is_refused(scene, model, tmp_path, capsys):
    images = copied_images(scene, tmp_path / "s2")
    os.chmod(images[2], 0o444)
    before = file_state(images[2])
    code, _, err = cli(["predict", "--model", model, *series_args(scene, images), "--out", images[2]], capsys)
    user_error(code, err, "is the input", Path(images[2]).name)
    assert file_state(images[2]) == before


def test_1_predict_confidence_through_a_symlink_or_hard_link_to_an_input_is_refused(scene, model, tmp_path, capsys):
    images = copied_images(scene, tmp_path / "s2")
    os.symlink(images[0], tmp_path / "link.tif")
    os.link(images[1], tmp_path / "hard.tif")
    before = [file_state(images[0]), file_state(images[1])]
    for out in ("link.tif", "hard.tif"):
        code, _, err = cli(["predict", "--model", model, *series_args(scene, images), "--out", tmp_path / "map.tif",
                            "--confidence", tmp_path / out], capsys)
        user_error(code, err, "is the input")
    assert [file_state(images[0]), file_state(images[1])] == before
    assert not (tmp_path / "map.tif").exists()


def test_1_predict_out_naming_the_model_is_refused(scene, model, tmp_path, capsys):
    copy = shutil.copy(model, tmp_path / "model.tif")
    before = file_state(copy)
    code, _, err = cli(["predict", "--model", copy, *series_args(scene), "--out", copy], capsys)
    user_error(code, err, "is the input")
    assert file_state(copy) == before


def test_1_train_out_naming_an_input_image_is_refused(scene, tmp_path, capsys):
    images = copied_images(scene, tmp_path / "s2")
    before = file_state(images[0])
    code, _, err = cli(["train", *series_args(scene, images), *labels_args(scene), *QUICK, "--epochs", "1",
                        "--out", images[0]], capsys)
    user_error(code, err, "is the input")
    assert file_state(images[0]) == before


def test_1_fields_out_naming_the_fields_is_refused_before_mapping(scene, model, tmp_path):
    messages = []
    with pytest.raises(EngineError, match="is the input"):
        pipeline.predict(str(model), pipeline.SeriesInput(scene.images), str(tmp_path / "map.tif"),
                         fields=str(scene.fields), fields_out=str(scene.fields),
                         progress=lambda f, m: messages.append(m))
    assert not any("Mapping" in m for m in messages)  # refused before the map was computed (point 5)
    assert files_under(tmp_path) == []


# ------------------------------------------------------------------ 2. and 4. full disks


def test_2_fields_out_on_a_full_disk_is_an_error_and_leaves_nothing(scene, model, tmp_path, capsys):
    with small_disk(2048) as disk:
        fill(disk, leave_kib=60)  # the map and the confidence fit; the GeoPackage (~100 KiB) does not
        code, out, err = cli(["predict", "--model", model, *series_args(scene), "--out", disk / "map.tif",
                              "--confidence", disk / "conf.tif", "--fields", scene.fields,
                              "--fields-out", disk / "fields.gpkg"], capsys)
        user_error(code, err, "no space left on", str(disk))
        assert "written" not in out
        assert files_under(disk) == []


def test_4_map_on_a_full_disk_is_exit_1_and_leaves_nothing(scene, model, capsys):
    with small_disk(256) as disk:
        fill(disk, leave_kib=8)
        code, _, err = cli(["predict", "--model", model, *series_args(scene), "--out", disk / "map.tif",
                            "--confidence", disk / "conf.tif"], capsys)
        user_error(code, err, "no space left on")
        assert files_under(disk) == []


def test_4_report_on_a_full_disk_leaves_none_of_its_three_files(scene, model, tmp_path, capsys):
    out_map = tmp_path / "map.tif"
    assert cli(["predict", "--model", model, *series_args(scene), "--out", out_map], capsys)[0] == 0
    with small_disk(512) as disk:
        fill(disk, leave_kib=12)  # room for the JSON, not for the HTML page
        code, _, err = cli(["evaluate", "--map", out_map, *labels_args(scene), "--model", model, "--report",
                            disk / "report"], capsys)
        user_error(code, err, "no space left on")
        assert files_under(disk) == []


@pytest.mark.slow
def test_4_full_disk_at_a_checkpoint_keeps_the_last_one_and_resume_continues(scene, tmp_path, capsys):
    train = ["train", *series_args(scene), *labels_args(scene), *QUICK, "--steps-per-epoch", "1"]
    # The size of one checkpoint, from a run that is cancelled once its first checkpoint is written.
    probe = Path(str(tmp_path / "probe.cropmodel") + ".checkpoint")
    options = pipeline.TrainOptions(epochs=2, batch_size=2, crop=16, steps_per_epoch=1, device="cpu")
    with pytest.raises(CancelledError):
        pipeline.train(pipeline.SeriesInput(scene.images, cloud_masks=scene.cloud_masks),
                       pipeline.LabelInput(str(scene.fields), "crop", "labelled"), str(tmp_path / "probe.cropmodel"),
                       options, cancelled=probe.is_file)
    # Room for one checkpoint but not for the second beside it (it is written whole before replacing the first).
    with small_disk(int(probe.stat().st_size * 1.5 / 1024)) as disk:
        out = disk / "model.cropmodel"
        code, _, err = cli([*train, "--epochs", "3", "--out", out], capsys)
        user_error(code, err, "no space left on", "checkpoint", "is kept", "resume")
        checkpoint = Path(str(out) + ".checkpoint")
        assert checkpoint.is_file() and not out.exists()
        assert [p for p in files_under(disk) if p != checkpoint.name] == []
        elsewhere = tmp_path / "resumed"
        elsewhere.mkdir()
        shutil.copy(checkpoint, elsewhere / checkpoint.name)
    code, out_text, err = cli([*train, "--epochs", "3", "--out", elsewhere / "model.cropmodel", "--resume",
                               "--json"], capsys)
    assert code == 0, err
    import json

    history = json.loads(out_text.strip().splitlines()[-1])["history"]
    assert len(history) == 3 and "no checkpoint" not in err


# ------------------------------------------------------------------ 3. extreme finite values


def test_3_untagged_float32_minimum_is_invalid_in_statistics_and_map(scene, tmp_path):
    clean = float_copies(scene.images, tmp_path / "clean")
    dirty = float_copies(scene.images, tmp_path / "dirty", extreme=-3.4e38)
    labels = pipeline.LabelInput(str(scene.fields), "crop", layer="labelled")
    pipeline.train(pipeline.SeriesInput(dirty), labels, str(tmp_path / "m.cropmodel"), TRAIN_QUICK)
    from engine.bundle import ModelBundle

    from engine.data import band_statistics, open_time_series

    with open_time_series(clean) as ts:
        mean, std = band_statistics(ts)
    bundle = ModelBundle.load(tmp_path / "m.cropmodel")
    assert np.all(np.abs(np.asarray(bundle.mean)) < 1e5) and np.all(np.asarray(bundle.std) < 1e5)
    np.testing.assert_allclose(bundle.mean, mean, rtol=0.02)
    maps = {}
    for name, images in (("clean", clean), ("dirty", dirty)):
        outcome = pipeline.predict(str(tmp_path / "m.cropmodel"), pipeline.SeriesInput(images),
                                   str(tmp_path / f"{name}.tif"), options=pipeline.PredictOptions(device="cpu"))
        maps[name] = gdal.Open(str(outcome.map_path)).ReadAsArray()
        if name == "dirty":
            warning = [w for w in outcome.warnings if "standard deviations" in w]
            assert warning and int(warning[0].split()[0]) >= 25 * len(bundle.band_names)
    # The extreme pixels are one invalid date, not a blank 32 x 32 tile: the map stays mapped everywhere.
    assert (maps["dirty"] > 0).sum() == (maps["clean"] > 0).sum()
    assert (maps["dirty"] != maps["clean"]).sum() < 50


# ------------------------------------------------------------------ 5. outputs committed together


def test_5_cancel_while_writing_field_results_leaves_no_map(scene, model, tmp_path):
    state = {"stop": False}

    def progress(fraction, message):
        if "field-level" in message:
            state["stop"] = True

    with pytest.raises(CancelledError):
        pipeline.predict(str(model), pipeline.SeriesInput(scene.images, cloud_masks=scene.cloud_masks),
                         str(tmp_path / "map.tif"), out_confidence=str(tmp_path / "conf.tif"),
                         fields=str(scene.fields), fields_out=str(tmp_path / "fields.gpkg"),
                         progress=progress, cancelled=lambda: state["stop"])
    assert state["stop"]
    assert files_under(tmp_path) == []


def test_5_a_failing_field_output_leaves_no_map_and_says_so(scene, model, tmp_path, capsys):
    bad_fields = tmp_path / "parcels.gpkg"
    shutil.copy(scene.fields, bad_fields)
    out_dir = tmp_path / "out"
    code, out, err = cli(["predict", "--model", model, *series_args(scene), "--out", out_dir / "map.tif",
                          "--fields", bad_fields, "--fields-layer", "nope", "--fields-out", out_dir / "f.gpkg"], capsys)
    user_error(code, err, "nope")
    assert not out_dir.exists() and "written" not in out


# ------------------------------------------------------------------ 6. messages, not tracebacks


def test_6_truncated_geotiff_is_a_message(scene, model, tmp_path, capsys):
    images = copied_images(scene, tmp_path / "s2")
    truncated_copy(scene.images[3], Path(images[3]), keep=0.6)
    code, _, err = cli(["predict", "--model", model, *series_args(scene, images), "--out", tmp_path / "map.tif"],
                       capsys)
    user_error(code, err, Path(images[3]).name)
    assert "damaged" in err or "cannot be read" in err
    assert not (tmp_path / "map.tif").exists()


@pytest.mark.parametrize("option,value,word", [("--crop", "0", "crop"), ("--lr", "nan", "learning rate"),
                                               ("--lr", "-1", "learning rate"), ("--batch-size", "0", "batch"),
                                               ("--steps-per-epoch", "0", "steps")])
def test_6_bad_training_numbers_are_messages(scene, tmp_path, capsys, option, value, word):
    code, _, err = cli(["pretrain", *series_args(scene), *QUICK, option, value, "--out", tmp_path / "m.cropmodel"],
                       capsys)
    user_error(code, err, word)
    assert files_under(tmp_path) == []


@pytest.mark.slow
def test_6_ctrl_c_in_the_first_fraction_of_a_second_is_no_traceback():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for delay in (0.05, 0.15, 0.3, 0.6, 1.0, 1.5):
        process = subprocess.Popen([sys.executable, "-m", "engine", "info", "--preset", "lite"], cwd=REPO, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        if "init_import_site" in err:
            continue  # Python itself was still starting (its own site module): no code of ours ran yet
        assert "Traceback" not in err, (delay, err)
        assert process.returncode in (0, 130, -signal.SIGINT), (delay, process.returncode, err)


# ------------------------------------------------------------------ 7. empty results are said


def _write_like(path: Path, like: str, array: np.ndarray, shrink: int = 0) -> str:
    source = gdal.Open(str(like))
    gt = list(source.GetGeoTransform())
    height, width = array.shape
    out = gdal.GetDriverByName("GTiff").Create(str(path), width - shrink, height - shrink, 1, gdal.GDT_Byte)
    out.SetGeoTransform(gt)
    out.SetProjection(source.GetProjection())
    out.GetRasterBand(1).WriteArray(array[: height - shrink, : width - shrink])
    out = None
    return str(path)


def test_7_cloud_masks_on_a_smaller_grid_are_refused(scene, model, tmp_path, capsys):
    masks = [_write_like(tmp_path / f"clm_{i}.tif", scene.cloud_masks[i], np.zeros((48, 48), np.uint8), shrink=16)
             for i in range(len(scene.cloud_masks))]
    code, _, err = cli(["predict", "--model", model, "--images", *scene.images, "--cloud-masks", *masks,
                        "--out", tmp_path / "map.tif"], capsys)
    user_error(code, err, "covers only", "cloud mask")


def test_7_every_date_cloudy_says_the_map_is_empty(scene, model, tmp_path, capsys):
    masks = [_write_like(tmp_path / Path(p).name, p, np.ones((48, 48), np.uint8)) for p in scene.cloud_masks]
    code, _, err = cli(["predict", "--model", model, "--images", *scene.images, "--cloud-masks", *masks,
                        "--out", tmp_path / "map.tif"], capsys)
    assert code == 0
    assert "whole map is no data" in err and "cloud" in err


def test_7_extent_outside_the_raster_says_the_map_is_empty(scene, model, tmp_path):
    source = gdal.Open(str(scene.images[0]))
    srs = osr.SpatialReference(wkt=source.GetProjection())
    gt = source.GetGeoTransform()
    vector = ogr.GetDriverByName("GPKG").CreateDataSource(str(tmp_path / "far.gpkg"))
    layer = vector.CreateLayer("far", srs, ogr.wkbPolygon)
    x, y = gt[0] + 1e6, gt[3] + 1e6
    polygon = ogr.CreateGeometryFromWkt(f"POLYGON(({x} {y},{x + 100} {y},{x + 100} {y - 100},{x} {y - 100},{x} {y}))")
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetGeometry(polygon)
    layer.CreateFeature(feature)
    vector = None
    outcome = pipeline.predict(str(model), pipeline.SeriesInput(scene.images), str(tmp_path / "map.tif"),
                               extent=str(tmp_path / "far.gpkg"))
    assert any("whole map is no data" in w and "area to map" in w for w in outcome.warnings), outcome.warnings


def test_7_duplicate_dates_and_a_date_off_the_grid_are_warned(scene, model, tmp_path):
    images = copied_images(scene, tmp_path / "s2")
    far = tmp_path / "s2" / "far_20210915.tif"
    gdal.Translate(str(far), str(images[-1]), options=gdal.TranslateOptions(
        outputBounds=_shifted_bounds(images[-1], 10_000)))
    dup = tmp_path / "dup" / Path(images[1]).name
    dup.parent.mkdir()
    shutil.copy(images[1], dup)
    outcome = pipeline.predict(str(model), pipeline.SeriesInput([*images[:-1], str(far), str(dup)]),
                               str(tmp_path / "map.tif"))
    assert any("covers only 0%" in w and "far_20210915" in w for w in outcome.warnings), outcome.warnings
    assert any("more than once" in w for w in outcome.warnings), outcome.warnings


def _shifted_bounds(path: str, shift: float) -> list[float]:
    dataset = gdal.Open(str(path))
    gt = dataset.GetGeoTransform()
    x0, y1 = gt[0] + shift, gt[3] + shift
    return [x0, y1, x0 + gt[1] * dataset.RasterXSize, y1 + gt[5] * dataset.RasterYSize]


# ------------------------------------------------------------------ 8. useless models are refused


@pytest.mark.parametrize("epochs", ["0", "-3"])
def test_8_zero_or_negative_epochs_are_refused(scene, tmp_path, capsys, epochs):
    code, _, err = cli(["train", *series_args(scene), *labels_args(scene), *QUICK, "--epochs", epochs,
                        "--out", tmp_path / "m.cropmodel"], capsys)
    user_error(code, err, "epochs", "untrained")
    assert files_under(tmp_path) == []


def test_8_one_class_only_is_refused(scene, tmp_path, capsys):
    source = ogr.Open(str(scene.fields))
    layer = source.GetLayerByName("labelled")
    one = ogr.GetDriverByName("GPKG").CreateDataSource(str(tmp_path / "one.gpkg"))
    target = one.CreateLayer("one", layer.GetSpatialRef(), ogr.wkbPolygon)
    target.CreateField(ogr.FieldDefn("crop", ogr.OFTString))
    first = None
    for feature in layer:
        first = first or feature.GetField("crop")
        if feature.GetField("crop") == first:
            out = ogr.Feature(target.GetLayerDefn())
            out.SetField("crop", first)
            out.SetGeometry(feature.GetGeometryRef().Clone())
            target.CreateFeature(out)
    one = None
    code, _, err = cli(["train", *series_args(scene), "--labels", tmp_path / "one.gpkg", "--class-field", "crop",
                        *QUICK, "--epochs", "1", "--out", tmp_path / "m.cropmodel"], capsys)
    user_error(code, err, "only the class", "two classes")
    assert not (tmp_path / "m.cropmodel").exists()


# ------------------------------------------------------------------ 9. leftovers


def test_9_interrupt_between_epochs_says_the_checkpoint_is_kept(scene, tmp_path):
    out = tmp_path / "m.cropmodel"
    checkpoint = Path(str(out) + ".checkpoint")
    options = pipeline.TrainOptions(epochs=3, batch_size=2, crop=16, steps_per_epoch=1, device="cpu")
    with pytest.raises(CancelledError) as caught:
        pipeline.train(pipeline.SeriesInput(scene.images), pipeline.LabelInput(str(scene.fields), "crop", "labelled"),
                       str(out), options, cancelled=checkpoint.is_file)
    assert caught.value.kept == [str(checkpoint)] and checkpoint.is_file()
    from engine.errors import cancelled_message

    text = cancelled_message(caught.value, "Interrupted")
    assert "is kept" in text and "resume" in text and "nothing was written" not in text


def test_9_stale_partials_of_a_killed_run_are_removed_and_others_kept(scene, model, tmp_path, capsys):
    stale = [tmp_path / ".map.0123abcd.partial.tif", tmp_path / ".map.0123abcd.partial.tif.aux.xml",
             tmp_path / ".map.89abcdef.partial.qml"]
    other = tmp_path / ".mapx.0123abcd.partial.tif"  # another output's: not ours to remove
    for path in [*stale, other]:
        path.write_bytes(b"left by SIGKILL")
        os.utime(path, (time.time() - 60, time.time() - 60))
    code, _, err = cli(["predict", "--model", model, *series_args(scene), "--out", tmp_path / "map.tif"], capsys)
    assert code == 0, err
    assert not any(p.exists() for p in stale) and other.exists()


@pytest.mark.slow
def test_9_sigterm_cleans_up_like_ctrl_c(scene, model, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [sys.executable, "-m", "engine", "predict", "--model", str(model), "--images", *scene.images,
            "--out", str(tmp_path / "map.tif"), "--tile", "8", "--overlap", "2", "--batch-size", "1",
            "--device", "cpu"]
    process = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(tmp_path.glob(".map.*.partial.tif")) and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    if process.returncode == 0:
        pytest.skip("the map was finished before SIGTERM arrived")
    assert process.returncode == 130 and "Traceback" not in err, err
    assert files_under(tmp_path) == []


def test_9_resume_without_a_checkpoint_says_so(scene, tmp_path, capsys):
    code, _, err = cli(["pretrain", *series_args(scene), *QUICK, "--epochs", "1", "--steps-per-epoch", "1",
                        "--resume", "--out", tmp_path / "p.cropmodel"], capsys)
    assert code == 0
    assert "no checkpoint" in err and "first epoch" in err


# ------------------------------------------------------------------ 10. smaller ones


def _polygons(path: Path, wkts: list[str], classes: list[str], like: str) -> None:
    srs = osr.SpatialReference(wkt=gdal.Open(str(like)).GetProjection())
    dataset = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = dataset.CreateLayer("fields", srs, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("crop", ogr.OFTString))
    for wkt, name in zip(wkts, classes):
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField("crop", name)
        feature.SetGeometry(ogr.CreateGeometryFromWkt(wkt) if wkt else None)
        layer.CreateFeature(feature)
    dataset = None


def test_10_self_intersecting_polygons_are_repaired_and_empty_ones_counted(scene, tmp_path):
    from engine.data import rasterize_fields
    from engine.data.grid import RasterGrid

    gt = gdal.Open(str(scene.images[0])).GetGeoTransform()
    x0, y0, px = gt[0], gt[3], gt[1]

    def square(i, j, n=8):
        a, b = x0 + i * px, y0 - j * px
        return f"POLYGON(({a} {b},{a + n * px} {b},{a + n * px} {b - n * px},{a} {b - n * px},{a} {b}))"

    a, b = x0 + 20 * px, y0 - 20 * px
    bowtie = f"POLYGON(({a} {b},{a + 10 * px} {b - 10 * px},{a + 10 * px} {b},{a} {b - 10 * px},{a} {b}))"
    _polygons(tmp_path / "f.gpkg", [square(2, 2), bowtie, "POLYGON EMPTY", None, square(30, 30)],
              ["wheat", "maize", "maize", "maize", "maize"], scene.images[0])
    fields = rasterize_fields(str(tmp_path / "f.gpkg"), RasterGrid.from_dataset(gdal.Open(str(scene.images[0]))), "crop")
    text = " ".join(fields.warnings)
    assert "repaired" in text and "fid 2" in text
    assert "2 feature(s) without a geometry" in text
    assert "smaller than a pixel" not in text
    assert (fields.labels == 2).sum() > 40  # the bowtie's two triangles are labelled


def test_10_a_failed_run_leaves_no_folder_tree_it_created(scene, tmp_path, capsys):
    out = tmp_path / "a" / "b" / "c" / "map.tif"
    code, _, err = cli(["predict", "--model", tmp_path / "missing.cropmodel", *series_args(scene), "--out", out],
                       capsys)
    assert code == 1, err
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("name", ["map.png", "map.jpg", "map"])
def test_10_a_map_name_that_is_not_geotiff_is_refused(scene, model, tmp_path, capsys, name):
    code, _, err = cli(["predict", "--model", model, *series_args(scene), "--out", tmp_path / name], capsys)
    user_error(code, err, "GeoTIFF", ".tif")
    assert files_under(tmp_path) == []


def test_10_a_second_run_on_the_same_output_is_refused_and_names_the_holder(scene, model, tmp_path, capsys):
    lock = OutputLock(tmp_path / "map.tif")
    lock.acquire()
    try:
        code, _, err = cli(["predict", "--model", model, *series_args(scene), "--out", tmp_path / "map.tif"], capsys)
        user_error(code, err, "being written by another", f"process {os.getpid()}")
    finally:
        lock.release()
    assert not (tmp_path / "map.tif").exists()
    # A lock file left by a killed run (no process holds it) does not block.
    (tmp_path / ".map.tif.lock").write_text('{"pid": 999999, "host": "gone", "started": "then"}')
    assert cli(["predict", "--model", model, *series_args(scene), "--out", tmp_path / "map.tif"], capsys)[0] == 0
    assert not (tmp_path / ".map.tif.lock").exists()
