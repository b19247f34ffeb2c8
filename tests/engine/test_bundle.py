"""The model file: round trip, and clear errors for other versions, damaged files and mismatched bands."""

from __future__ import annotations

import datetime as dt
import json
import os

import numpy as np
import pytest
import torch

from engine.bundle import FORMAT_VERSION, ModelBundle
from engine.classes import ClassTable
from engine.errors import EngineError
from engine.model import STCLN, date_positions, make_config

BANDS = ["B02", "B03", "B04"]


def _bundle(kind: str = "classifier") -> ModelBundle:
    config = make_config("lite", 3, 2, spatial_channels=(8, 16), d_model=16, n_heads=2, d_ff=32, sta_channels=8,
                         norm_groups=4)
    torch.manual_seed(0)
    model = STCLN(config)
    return ModelBundle(
        config=config,
        state_dict=model.state_dict(),
        band_names=list(BANDS),
        mean=[0.1, 0.2, 0.3],
        std=[1.0, 2.0, 3.0],
        date_encoding={"mode": "date", "season_start": [3, 1]},
        classes=ClassTable.from_names(["wheat", "maize"]) if kind == "classifier" else None,
        kind=kind,
        provenance={"epochs": 3, "label_pixels": {"wheat": np.int64(12)}, "history": [{"loss": np.float32(0.5)}]},
        split={"train": [1, 2], "val": [3], "test": [4]},
    )


def _inputs():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 3, 9, 9, generator=g)
    valid = torch.rand(2, 4, 9, 9, generator=g) > 0.2
    positions = torch.tensor([[0.0, 10, 20, 30]] * 2)
    return x, positions, valid


def test_save_load_gives_identical_predictions(tmp_path) -> None:
    bundle = _bundle()
    path = tmp_path / "model.cropmodel"
    bundle.save(path)
    assert os.listdir(tmp_path) == ["model.cropmodel"]  # written atomically, nothing else left
    loaded = ModelBundle.load(path)
    x, positions, valid = _inputs()
    with torch.no_grad():
        before = bundle.build_model().forward(x, positions, valid)
        after = loaded.build_model().forward(x, positions, valid)
    assert torch.equal(before, after)
    assert loaded.classes == bundle.classes and loaded.band_names == BANDS
    assert loaded.config == bundle.config and loaded.split == bundle.split
    assert loaded.mean == bundle.mean and loaded.std == bundle.std
    assert loaded.provenance["label_pixels"]["wheat"] == 12
    assert not loaded.build_model().training


def test_loads_with_weights_only_and_header_is_json(tmp_path) -> None:
    path = tmp_path / "m.cropmodel"
    _bundle("pretrained").save(path)
    raw = torch.load(path, weights_only=True)
    header = json.loads(raw["cropmapper"])
    assert header["format_version"] == FORMAT_VERSION and header["kind"] == "pretrained"
    assert header["classes"] is None and header["band_names"] == BANDS
    assert ModelBundle.load(path).classes is None


def test_positions_use_the_stored_date_encoding() -> None:
    dates = [dt.date(2021, 3, 11), dt.date(2021, 4, 1)]
    assert _bundle().positions_for(dates).tolist() == [10.0, 31.0]
    assert np.array_equal(_bundle().positions_for(dates), date_positions(dates, (3, 1)))


def test_another_format_version_is_refused(tmp_path) -> None:
    bundle = _bundle()
    header = bundle.header()
    header["format_version"] = FORMAT_VERSION + 1
    path = tmp_path / "future.cropmodel"
    torch.save({"cropmapper": json.dumps(header), "state_dict": bundle.state_dict}, path)
    with pytest.raises(EngineError, match=rf"format version {FORMAT_VERSION + 1}.*reads version {FORMAT_VERSION}.*update"):
        ModelBundle.load(path)


def test_truncated_file_is_refused(tmp_path) -> None:
    path = tmp_path / "model.cropmodel"
    _bundle().save(path)
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 30):
        path.write_bytes(data[:cut])
        with pytest.raises(EngineError, match="damaged or incomplete"):
            ModelBundle.load(path)


def test_files_that_are_not_models_are_refused(tmp_path) -> None:
    with pytest.raises(EngineError, match="does not exist"):
        ModelBundle.load(tmp_path / "missing.cropmodel")
    with pytest.raises(EngineError, match="folder"):
        ModelBundle.load(tmp_path)
    text = tmp_path / "notes.cropmodel"
    text.write_text("hello")
    with pytest.raises(EngineError, match="not a CropMapper model"):
        ModelBundle.load(text)
    other = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(2)}, other)
    with pytest.raises(EngineError, match="not a CropMapper model"):
        ModelBundle.load(other)


def test_band_mismatch_names_expected_and_found() -> None:
    bundle = _bundle()
    bundle.check_bands(["b02", "B03", "B04"])  # case does not matter
    with pytest.raises(EngineError, match=r"expects 3 bands \(B02, B03, B04\).*have 4 \(B02, B03, B04, B08\)"):
        bundle.check_bands(["B02", "B03", "B04", "B08"])
    with pytest.raises(EngineError, match=r"B02, B03, B04 in this order.*B04, B03, B02"):
        bundle.check_bands(["B04", "B03", "B02"])
