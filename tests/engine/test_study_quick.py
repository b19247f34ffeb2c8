"""The accuracy study's pieces on a tiny synthetic scene: RF features and fit, the per-pixel Transformer, splits."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from baselines import PixelTransformer, fit_random_forest, make_pixel_transformer, miou_of, pixel_features  # noqa: E402
from engine.data import split_fields  # noqa: E402
from engine.model import make_config  # noqa: E402
from engine.training import Scene, finetune  # noqa: E402
from tests.engine.synthetic import make_scene  # noqa: E402

TINY = dict(spatial_channels=(8, 16), d_model=16, n_heads=2, n_layers=1, d_ff=32, sta_channels=8)


def test_pixel_features_hold_each_pixels_series_and_valid_flags():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 2, 3, 4)).astype(np.float32)
    valid = rng.random((5, 3, 4)) > 0.3
    features = pixel_features(x, valid)
    assert features.shape == (12, 5 * 2 + 5)
    r, c = 2, 1
    row = features[r * 4 + c]
    expected = np.where(valid[:, None, r, c], x[:, :, r, c], 0.0).ravel()
    np.testing.assert_allclose(row[:10], expected)
    np.testing.assert_array_equal(row[10:], valid[:, r, c].astype(np.float32))


def test_random_forest_on_field_split_beats_chance_and_keeps_test_fields_across_fractions():
    scene = make_scene(size=48, field=8, dates=8, bands=2, classes=3, seed=1)
    field_classes = {int(f): int(scene.labels[scene.field_ids == f][0]) for f in np.unique(scene.field_ids)}
    splits = [split_fields(field_classes, 0.2, 0.2, fraction, seed=3) for fraction in (0.25, 1.0)]
    assert splits[0].test == splits[1].test and splits[0].val == splits[1].val
    assert set(splits[0].train) < set(splits[1].train)
    assert not set(splits[1].train) & set(splits[1].test)

    features = pixel_features(scene.x, scene.valid)
    ids, labels = scene.field_ids.ravel(), scene.labels.ravel()
    split = splits[1]
    part = {name: np.isin(ids, getattr(split, name)) for name in ("train", "val", "test")}
    forest = fit_random_forest(features[part["train"]], labels[part["train"]], features[part["val"]],
                               labels[part["val"]], 3, seed=0, trees=20, n_jobs=1)
    assert len(forest.tried) == 4 and forest.val_miou == max(t["val_miou"] for t in forest.tried)
    score = miou_of(labels[part["test"]], forest.model.predict(features[part["test"]]), 3)
    assert score > 0.6


def test_pixel_transformer_sees_no_neighbour_and_trains_with_the_finetune_loop():
    config = make_config("lite", 2, 3, **TINY)
    torch.manual_seed(0)
    model = PixelTransformer(config).eval()
    assert model.sta is None
    x = torch.randn(1, 6, 2, 5, 5)
    valid = torch.ones(1, 6, 5, 5, dtype=torch.bool)
    positions = torch.arange(6.0)[None] * 10
    before = model(x, positions, valid)
    changed = x.clone()
    changed[0, :, :, 2, 2] += 3.0
    after = model(changed, positions, valid)
    assert before.shape == (1, 3, 5, 5)
    differs = (before - after).abs().amax(1)[0] > 1e-6
    assert differs[2, 2] and differs.sum() == 1

    scene = make_scene(size=16, field=8, dates=6, bands=2, classes=3, seed=0)
    train = Scene(scene.x, scene.valid, scene.positions, scene.labels, scene.field_ids)
    result = finetune([train], [], config, epochs=1, crop=8, batch_size=2, steps_per_epoch=2, device="cpu",
                      model_factory=make_pixel_transformer)
    assert "sta.gamma" not in result.state_dict
    assert result.state_dict["spatial.0.weight"].shape == (8, 2, 1, 1)  # the per-pixel (1x1) embedding
    rebuilt = PixelTransformer(config)
    rebuilt.load_state_dict(result.state_dict)


def test_field_scores_take_each_test_parcels_class_from_its_mean_probability():
    import study
    from engine.classes import ClassTable

    # Three test fields on a 1 x 6 strip: field 1 (class 1) has two pixels voting class 2 weakly and one voting class
    # 1 strongly (the mean says 1, the pixel majority 2); field 2 (class 2) is right; field 3 is not mapped at all.
    field_ids = np.array([[1, 1, 1, 2, 2, 3]], np.int32)
    labels = np.array([[1, 1, 1, 2, 2, 2]], np.int64)
    probs = np.zeros((2, 1, 6), np.float32)
    probs[:, 0, 0] = (0.45, 0.55)
    probs[:, 0, 1] = (0.45, 0.55)
    probs[:, 0, 2] = (0.95, 0.05)
    probs[:, 0, 3:5] = np.array([[0.2], [0.8]])
    classes = ClassTable.from_names(["a", "b"])
    data = study.Data(x=None, valid=None, xn=None, mean=None, std=None, dates=[], band_names=[], labels=labels,
                      field_ids=field_ids, field_classes={1: 1, 2: 2, 3: 2}, classes=classes, pixel_area=1.0,
                      cloud_fraction=0.0)

    class Split:
        test = [1, 2, 3]

    scores = study.field_scores(data, Split, probs)
    assert scores["test_fields"] == 3
    assert scores["field_oa"] == 2 / 3  # fields 1 and 2 right, the unmapped field 3 wrong
    assert scores["field_macro_f1"] == (1.0 + 2 / 3) / 2  # class a: 1 of 1; class b: tp 1, fn 1
    pixel = study.score(data, Split, probs)
    # pixels 0 and 1 wrong (class 2), 2 right, 3-4 right; the unmapped pixel 5 is counted apart, as the engine does
    assert pixel["oa"] == 3 / 5 and pixel["unmapped_test_pixels"] == 1
