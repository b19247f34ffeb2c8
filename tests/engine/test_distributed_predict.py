"""Mapping under torchrun with 2 CPU processes: one GeoTIFF identical, pixel by pixel, to the single-process map."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from osgeo import gdal, ogr, osr

from engine.bundle import ModelBundle
from engine.classes import ClassTable
from engine.model import STCLN, make_config

REPO = Path(__file__).resolve().parents[2]
BANDS = ["B04", "B08", "B11"]
W, H = 60, 45

SCRIPT = """
import json, sys
import numpy as np
import torch
sys.path.insert(0, {repo!r})
torch.set_num_threads(1)
from engine.bundle import ModelBundle
from engine.data import open_time_series
from engine.inference import predict_raster

args = json.loads(sys.argv[1])
out = args["out"]
fail_rank = args.get("fail_rank")
rank = int(__import__("os").environ.get("RANK", "0"))
bundle = ModelBundle.load(args["model"])
with open_time_series(args["images"]) as series:
    result = predict_raster(bundle, series, out + "/map.tif", out + "/conf.tif", out + "/probs.tif",
                            tile=16, overlap=4, block=16, batch_size=4, device="cpu", precision="fp32",
                            field_vector=args["fields"], cancelled=(lambda: rank == fail_rank))
if result.rank == 0:
    np.savez(out + "/stats.npz", sums=result.field_stats.sums, counts=result.field_stats.counts)
print("RESULT " + json.dumps({{"rank": result.rank, "world": result.world_size, "mapped": result.mapped_pixels}}))
"""


def write_inputs(folder: Path) -> dict:
    rng = np.random.default_rng(2)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    images = []
    patches = np.kron(rng.uniform(0.05, 0.4, (3, 5, 6)), np.ones((9, 10)))
    for t in range(3):
        date = dt.date(2022, 5, 1) + dt.timedelta(days=25 * t)
        data = (patches * (1 + 0.3 * t) + rng.normal(0, 0.01, (3, H, W))).astype(np.float32)
        data[:, 30:40, 5:15] = np.nan  # nodata on every date there
        path = folder / f"S2_{date:%Y%m%d}.tif"
        ds = gdal.GetDriverByName("GTiff").Create(str(path), W, H, 3, gdal.GDT_Float32)
        ds.SetGeoTransform((400000.0, 10.0, 0.0, 5100000.0, 0.0, -10.0))
        ds.SetProjection(srs.ExportToWkt())
        for b, name in enumerate(BANDS):
            ds.GetRasterBand(b + 1).WriteArray(data[b])
            ds.GetRasterBand(b + 1).SetDescription(name)
        ds = None
        images.append(str(path))
    fields = folder / "fields.gpkg"
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(fields))
    layer = ds.CreateLayer("fields", srs, ogr.wkbPolygon)
    for x0, y0, x1, y1 in [(2, 2, 20, 12), (25, 10, 58, 40), (0, 28, 18, 44)]:
        f = ogr.Feature(layer.GetLayerDefn())
        left, right, top, bottom = 400000 + 10 * x0, 400000 + 10 * x1, 5100000 - 10 * y0, 5100000 - 10 * y1
        f.SetGeometry(ogr.CreateGeometryFromWkt(
            f"POLYGON(({left} {top},{right} {top},{right} {bottom},{left} {bottom},{left} {top}))"))
        layer.CreateFeature(f)
    ds = None
    torch.manual_seed(1)
    config = make_config("lite", 3, 4)
    model = STCLN(config)
    with torch.no_grad():
        model.head.weight.mul_(4.0)
    bundle = ModelBundle(config, model.state_dict(), BANDS, [0.2, 0.3, 0.25], [0.1, 0.15, 0.1],
                         classes=ClassTable.from_names(["maize", "soybean", "winter wheat", "grassland"]))
    bundle.save(folder / "model.cropmodel")
    script = folder / "map_script.py"
    script.write_text(SCRIPT.format(repo=str(REPO)))
    return {"images": images, "fields": str(fields), "model": str(folder / "model.cropmodel"), "script": str(script)}


def run(inputs: dict, out: Path, processes: int, fail_rank=None) -> subprocess.CompletedProcess:
    out.mkdir()
    args = json.dumps({**inputs, "out": str(out), "fail_rank": fail_rank})
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", CUDA_VISIBLE_DEVICES="")
    if processes == 1:
        command = [sys.executable, inputs["script"], args]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
                   inputs["script"], args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=240, cwd=str(out))


def results(proc: subprocess.CompletedProcess) -> list[dict]:
    # The ranks share one stdout, so their lines may run together.
    return sorted((json.loads(m) for m in re.findall(r"RESULT (\{[^}]*\})", proc.stdout)), key=lambda r: r["rank"])


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    return write_inputs(tmp_path_factory.mktemp("dist"))


@pytest.mark.slow
def test_two_ranks_give_the_single_process_map(tmp_path, inputs):
    single = run(inputs, tmp_path / "single", 1)
    assert single.returncode == 0, single.stderr[-3000:]
    double = run(inputs, tmp_path / "double", 2)
    assert double.returncode == 0, double.stderr[-3000:]
    assert [(r["rank"], r["world"]) for r in results(double)] == [(0, 2), (1, 2)]
    assert results(double)[0]["mapped"] == results(single)[0]["mapped"] > 0
    for name in ("map.tif", "conf.tif", "probs.tif"):
        a = gdal.Open(str(tmp_path / "single" / name)).ReadAsArray()
        b = gdal.Open(str(tmp_path / "double" / name)).ReadAsArray()
        assert np.array_equal(a, b), f"{name} differs between 1 and 2 processes"
    labels = gdal.Open(str(tmp_path / "double" / "map.tif")).ReadAsArray()
    assert (labels[30:40, 5:15] == 0).all() and (labels[:30] > 0).all()
    one, two = np.load(tmp_path / "single" / "stats.npz"), np.load(tmp_path / "double" / "stats.npz")
    assert np.array_equal(one["counts"], two["counts"]) and np.allclose(one["sums"], two["sums"], rtol=1e-12)
    # Only the map, its sidecars and the script's own file remain: the per-rank parts are gone.
    assert sorted(p.name for p in (tmp_path / "double").iterdir()) == sorted(
        p.name for p in (tmp_path / "single").iterdir())


@pytest.mark.slow
def test_a_failing_rank_leaves_no_map(tmp_path, inputs):
    proc = run(inputs, tmp_path / "fail", 2, fail_rank=1)
    assert proc.returncode != 0
    assert "Another process of the distributed run failed" in proc.stderr
    assert list((tmp_path / "fail").iterdir()) == []
