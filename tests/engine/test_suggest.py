"""Which fields to label next: the diverse uncertainty ranking, and the GeoPackage from parcels or map segments."""

from __future__ import annotations

import json

import numpy as np
import pytest
from osgeo import ogr

from engine.cli import main
from engine.errors import EngineError
from engine.pipeline import SeriesInput
from engine.suggest import LAYER_NAME, rank_for_labelling, suggest_fields
from tests.engine.test_predict_raster import make_bundle, rect, write_polygons, write_scene


def test_ranking_prefers_uncertain_but_spreads_over_classes_and_space():
    # Ten very uncertain candidates of class 0 packed in one corner, and less uncertain ones elsewhere.
    xy = np.array([[i * 1.0, 0.0] for i in range(10)] + [[500.0, 500.0], [900.0, 100.0], [100.0, 900.0]])
    unc = np.array([0.9] * 10 + [0.6, 0.5, 0.4])
    cls = np.array([0] * 10 + [1, 2, 1])
    picks = rank_for_labelling(unc, cls, xy, 4)
    assert picks[0] < 10  # the most uncertain comes first
    assert sum(p < 10 for p in picks) == 1 and set(picks[1:]) == {10, 11, 12}
    # without diversity it would be the corner only
    assert set(rank_for_labelling(unc, cls, xy, 4, class_factor=1.0, spacing=1e-9)) <= set(range(10))
    assert len(rank_for_labelling(unc, cls, xy, 50)) == 13 and rank_for_labelling(unc, cls, xy, 0) == []


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("suggest")
    scene = write_scene(folder)
    model = folder / "model.cropmodel"
    make_bundle().save(model)
    parcels = folder / "parcels.gpkg"
    boxes = [(x, y, x + 10, y + 10) for x in range(0, 70, 10) for y in range(0, 50, 10)]
    write_polygons(parcels, boxes)
    ds = ogr.Open(str(parcels), 1)  # label every second parcel
    layer = ds.GetLayer(0)
    for feature in layer:
        if feature.GetFID() % 2 == 0:
            feature.SetFieldNull("parcel")
        layer.SetFeature(feature)
    ds = None
    return folder, scene, model, parcels


def read_layer(path):
    ds = ogr.Open(str(path))
    layer = ds.GetLayerByName(LAYER_NAME)
    rows = [{k: f.GetField(k) for k in ("rank", "crop_class", "crop_prob", "uncertainty", "area_ha", "source_fid")}
            for f in layer]
    return rows


def test_suggest_from_unlabelled_parcels(setup, tmp_path):
    folder, scene, model, parcels = setup
    out = tmp_path / "suggested.gpkg"
    outcome = suggest_fields(str(model), SeriesInput(images=scene), str(out), parcels=str(parcels),
                             unlabelled_field="parcel", count=5, options=None)
    rows = read_layer(out)
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5] and outcome.candidates <= 18
    assert all(r["source_fid"] % 2 == 0 for r in rows)  # only unlabelled parcels
    assert all(0 <= r["uncertainty"] <= 1 and 0 < r["crop_prob"] <= 1 for r in rows)
    assert all(r["area_ha"] == pytest.approx(1.0) for r in rows)  # 10 x 10 pixels of 10 m
    assert [r["source_fid"] for r in rows] == [s["source_fid"] for s in outcome.suggestions]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_suggest_from_segments_excluding_labelled_fields(setup, tmp_path, capsys):
    folder, scene, model, parcels = setup
    exclude = tmp_path / "labelled.gpkg"
    write_polygons(exclude, [(0, 0, 70, 25)])
    out = tmp_path / "seg.gpkg"
    code = main(["suggest", "--model", str(model), "--images", *scene, "--exclude", str(exclude), "--count", "3",
                 "--out", str(out), "--device", "cpu", "--tile", "16", "--overlap", "4", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(result["suggestions"]) == len(read_layer(out)) >= 1
    ds = ogr.Open(str(out))
    upper = rect(0, 0, 70, 25)
    for feature in ds.GetLayerByName(LAYER_NAME):
        geometry = feature.GetGeometryRef()
        assert geometry.Intersection(upper).GetArea() <= 0.5 * geometry.GetArea()


def test_suggest_errors(setup, tmp_path, capsys):
    folder, scene, model, parcels = setup
    with pytest.raises(EngineError, match="no field 'crop'"):
        suggest_fields(str(model), SeriesInput(images=scene), str(tmp_path / "a.gpkg"), parcels=str(parcels),
                       unlabelled_field="crop")
    with pytest.raises(EngineError, match="at least 1"):
        suggest_fields(str(model), SeriesInput(images=scene), str(tmp_path / "a.gpkg"), count=0)
    everything = tmp_path / "all.gpkg"
    write_polygons(everything, [(0, 0, 70, 50)])
    code = main(["suggest", "--model", str(model), "--images", *scene, "--parcels", str(parcels), "--exclude",
                 str(everything), "--out", str(tmp_path / "b.gpkg")])
    assert code == 1 and "No candidate" in capsys.readouterr().err
    assert not (tmp_path / "a.gpkg").exists() and not (tmp_path / "b.gpkg").exists()
