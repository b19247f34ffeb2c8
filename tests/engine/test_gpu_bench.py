"""bench/gpu.py: the quick CPU run finishes without GDAL/QGIS and writes a consistent JSON; the extrapolation."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.inference.weights import tile_starts
from engine.model import flops_per_pixel, make_config
from engine.model.fast import cpu_has_bf16

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "gpu.py"

# Runs the script as the device machine would, but with osgeo and qgis made unimportable (that machine has neither).
NO_GDAL_RUNNER = """
import importlib.abc, runpy, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('osgeo', 'qgis', 'PyQt5'):
            raise ImportError('blocked for the test: ' + name)
sys.meta_path.insert(0, Block())
sys.argv = [sys.argv[1]] + sys.argv[2:]
runpy.run_path(sys.argv[0], run_name='__main__')
"""


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _close(a: float, b: float, rel: float = 1e-6) -> bool:
    return math.isclose(a, b, rel_tol=rel)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_cpu_run_writes_consistent_json(tmp_path):
    out = tmp_path / "bench.json"
    # One torch thread: this checks the script and its JSON, not the speed, and on the 2 shared cores two spinning
    # OpenMP threads run several times slower than one while other tests run.
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", NO_GDAL_RUNNER, str(BENCH), "--device", "cpu", "--quick", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=280, env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "whole Sentinel-2 tile" in proc.stdout
    report = json.loads(out.read_text())
    assert report["quick"] is True and report["complete"] is True and report["errors"] == []
    assert report["device"]["type"] == "cpu" and report["device"]["name"].startswith("CPU")
    assert report["settings"]["dates"] == [24] and report["settings"]["windows"] == [32]
    assert "quick" in report["settings"]["note"]

    native_bf16 = cpu_has_bf16()  # without it bf16 is emulated (~1/10 of fp32): not benched
    assert ("bf16" in report["matmul"]) is native_bf16
    assert report["matmul"]["fp32"]["tflops"] > 0
    peak = report["matmul"]["bf16"]["tflops"] if native_bf16 else None

    forward = report["forward"]
    precisions = ["bf16", "fp32"] if native_bf16 else ["fp32"]
    assert sorted((r["preset"], r["precision"]) for r in forward) == [
        (preset, p) for preset in ("lite", "paper") for p in precisions]
    for r in forward:
        assert (r["T"], r["C"], r["window"]) == (24, 10, 32) and r["batch"] >= 1 and r["peak_mib"] is None
        assert r["px_per_s"] > 0 and math.isfinite(r["px_per_s"])
        assert _close(r["px_per_s"], r["batch"] * 32 * 32 / (r["median_ms"] / 1e3))
        fpp = flops_per_pixel(make_config(r["preset"], 10, 20), 24, 32, 32)
        assert _close(r["gflop_per_px"], fpp / 1e9)
        assert _close(r["tflops"], fpp * r["px_per_s"] / 1e12)
        if peak:
            assert _close(r["fraction_of_bf16_matmul"], r["tflops"] / peak)
        else:
            assert "fraction_of_bf16_matmul" not in r

    training = report["training"]
    assert sorted(r["preset"] for r in training) == ["lite", "paper"]
    for r in training:
        assert r["precision"] == "fp32"  # the engine's "auto" on a CPU
        assert r["steps_per_s"] > 0
        assert _close(r["px_per_s"], r["steps_per_s"] * r["batch"] * r["window"] ** 2)

    predict = report["predict_array"]
    assert sorted(r["preset"] for r in predict) == ["lite", "paper"]
    for r in predict:
        per_axis = len(tile_starts(r["array_px"], r["tile"], r["overlap"]))
        assert r["tiles"] == per_axis**2 > 1  # several tiles, so blending runs
        assert _close(r["recompute_factor"], (per_axis * r["tile"] / r["array_px"]) ** 2)
        assert r["px_per_s"] > 0 and _close(r["computed_px_per_s"], r["px_per_s"] * r["recompute_factor"])

    host = report["host"]
    assert host["T"] == 24 and host["px_per_s"] > 0

    rows = {r["tile"]: r for r in report["extrapolation"]}
    assert sorted(rows) == [32, 64]
    for tile, r in rows.items():
        assert _close(r["computed_px"], (len(tile_starts(10980, tile, 8)) * tile) ** 2)
        assert 1.0 < r["recompute_factor"] < (tile / (tile - 8)) ** 2 * 1.01
        assert _close(r["required_forward_px_per_s"] * 180, r["computed_px"])
        for source in ("forward", "predict_array"):
            e = r[source]
            assert e["flop_scaled"] is True  # quick measured T=24 only; the tile needs T=40
            assert _close(e["seconds"], r["computed_px"] / e["computed_px_per_s"])
            assert e["meets_goal"] is (e["seconds"] < 180)
        assert _close(r["host_normalise"]["seconds"], 10980**2 / (host["px_per_s"] * 24 / 40))


def test_extrapolation_uses_the_exact_setting_and_counts_the_overlap():
    bench = _load_bench()
    cfg = make_config("paper", 10, 20)
    forward = [
        {"preset": "paper", "precision": "bf16", "T": 40, "window": 64, "batch": 16, "px_per_s": 1.0e6},
        {"preset": "paper", "precision": "bf16", "T": 24, "window": 32, "batch": 64, "px_per_s": 5.0e6},
        {"preset": "paper", "precision": "fp32", "T": 40, "window": 64, "batch": 16, "px_per_s": 9.0e9},
        {"preset": "lite", "precision": "bf16", "T": 40, "window": 64, "batch": 16, "px_per_s": 9.0e9},
    ]
    rows = {r["tile"]: r for r in bench.extrapolate(forward, [], "bf16")}
    exact = rows[64]["forward"]
    assert exact["flop_scaled"] is False and exact["basis"] == {"T": 40, "window": 64, "batch": 16}
    per_axis = len(tile_starts(10980, 64, 8))
    assert per_axis == math.ceil((10980 - 64) / 56) + 1
    assert _close(exact["seconds"], (per_axis * 64) ** 2 / 1.0e6)
    assert "predict_array" not in rows[64]
    # window 32 at T=40 was not measured: the same window at T=24 is rescaled by the analytic FLOPs
    scaled = rows[32]["forward"]
    assert scaled["flop_scaled"] is True and scaled["basis"] == {"T": 24, "window": 32, "batch": 64}
    rate = 5.0e6 * flops_per_pixel(cfg, 24, 32, 32) / flops_per_pixel(cfg, 40, 32, 32)
    assert _close(scaled["seconds"], (len(tile_starts(10980, 32, 8)) * 32) ** 2 / rate)
