#!/usr/bin/env python3
"""STCLN throughput on one device, on arrays only: model forward, the array predictor, a fine-tuning step.

Prints a table and, with ``--json FILE``, writes every number (the file is rewritten after each section, so a run cut
short still leaves what it measured, with ``"complete": false``). Needs only torch, numpy, einops and the engine's
model / array-predictor / training modules: no GDAL, no QGIS, so it runs on a bare GPU machine.

    python3 bench/gpu.py --json gpu.json                 # the device machine (CUDA when present)
    python3 bench/gpu.py --device cpu --quick --json x   # a check here, in well under a minute

What is measured
- ``matmul``: the device's bf16 (and fp32) matrix-multiply rate, a large ``torch.matmul``, median of repeats: the
  ceiling that achieved TFLOP/s are compared with.
- ``forward``: ``STCLN.forward`` under ``torch.inference_mode`` with the engine's ``prepare_for_inference`` and
  ``inference_context`` (autocast), presets ``paper``/``lite``, fp32 and bf16, T dates, C = 10 bands, square windows;
  pixels per second = batch x window^2 / median seconds per batch; TFLOP/s from the analytic
  ``engine.model.flops_per_pixel``.
- ``predict_array``: ``engine.inference.tiling.predict_array`` on a raw array (normalisation, tiling with overlap,
  host-to-device copies, blending and the copy back included); pixels per second counts OUTPUT pixels.
- ``host``: the host-side normalisation (numpy) every window goes through before it reaches the device.
- ``training``: one fine-tuning step as ``engine.training.finetune`` takes it (forward under the engine's autocast,
  cross-entropy, backward, gradient clipping, Adam step through ``optimiser_step``), steps per second.
- ``extrapolation``: seconds for a whole Sentinel-2 tile (10980 x 10980 px, 40 dates, 10 bands, ``paper``) against
  the goal of 3 minutes, with the overlap recomputation of the tile grid counted explicitly.

Timing: warm-up calls first; on CUDA every call is bracketed by CUDA events (``predict_array``, which returns to the
host, by ``torch.cuda.synchronize`` and the wall clock); the median of the timed calls is reported. A batch that
runs out of GPU memory is halved and retried; the batch used is recorded.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from engine.model import STCLN, flops_per_pixel, make_config  # noqa: E402
from engine.model.fast import cpu_has_bf16, inference_context, prepare_for_inference  # noqa: E402
from engine.training.precision import resolve_precision as training_precision  # noqa: E402
from engine.training.runtime import optimiser_step  # noqa: E402

SCHEMA = 1
CHANNELS = 10
CLASSES = 20
S2_TILE_PX = 10980
S2_DATES = 40
GOAL_SECONDS = 180.0
OVERLAP = 8
TRAIN_CLIP = 5.0  # finetune's default gradient clipping


# -- timing --------------------------------------------------------------------------------------------------------
class Clock:
    """Times calls on one device: CUDA events on a GPU (or synchronise + wall clock), the wall clock on a CPU."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def once(self, fn: Callable[[], Any], events: bool = True) -> float:
        """Seconds taken by one call of ``fn``."""
        if self.cuda and events:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1000.0
        self.sync()
        began = time.perf_counter()
        fn()
        self.sync()
        return time.perf_counter() - began

    def median(self, fn: Callable[[], Any], warmup: int, repeats: int, budget_s: float,
               events: bool = True) -> tuple[float, int]:
        """Median seconds per call after ``warmup`` calls, over up to ``repeats`` timed calls (at least one) that
        stop early once ``budget_s`` seconds have been spent timing. Returns (median, number of timed calls)."""
        for _ in range(warmup):
            fn()
        self.sync()
        samples: list[float] = []
        spent = 0.0
        while len(samples) < max(1, repeats) and (not samples or spent < budget_s):
            samples.append(self.once(fn, events))
            spent += samples[-1]
        return statistics.median(samples), len(samples)


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def with_halving(batch: int, run: Callable[[int], dict], device: torch.device) -> dict:
    """``run(batch)``, halving the batch on out-of-memory; the result records the batch that fitted."""
    first = batch
    while True:
        try:
            result = run(batch)
            result["batch"] = batch
            if batch != first:
                result["batch_requested"] = first
            return result
        except RuntimeError as exc:
            if not is_oom(exc) or batch == 1:
                raise
        if device.type == "cuda":
            torch.cuda.empty_cache()
        batch //= 2


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device: torch.device) -> Optional[float]:
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)


# -- inputs ----------------------------------------------------------------------------------------------------------
def positions_for(t: int) -> np.ndarray:
    """Days since the season start of ``t`` acquisitions spread over a year (as the date encoding gives)."""
    return np.linspace(0.0, 360.0, t, dtype=np.float32)


def dates_for(t: int) -> list[dt.date]:
    start = dt.date(2024, 1, 1)
    return [start + dt.timedelta(days=int(d)) for d in positions_for(t)]


def model_inputs(batch: int, t: int, window: int, device: torch.device, seed: int = 0):
    """Normalised-looking inputs: ``x (B, T, C, W, W)``, ``positions (B, T)``, ``valid`` with 20 % clouds."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randn(batch, t, CHANNELS, window, window, generator=g)
    valid = torch.rand(batch, t, window, window, generator=g) < 0.8
    positions = torch.from_numpy(positions_for(t))[None].expand(batch, -1).contiguous()
    return x.to(device), positions.to(device), valid.to(device)


# -- device ----------------------------------------------------------------------------------------------------------
def cpu_description() -> str:
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}"


def describe(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "type": device.type,
        "torch_device": str(device),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "cpu": cpu_description(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            name=torch.cuda.get_device_name(device),
            memory_gib=round(props.total_memory / 2**30, 1),
            capability=f"{props.major}.{props.minor}",
            multiprocessors=props.multi_processor_count,
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            bf16_supported=bool(torch.cuda.is_bf16_supported()),
            tf32_matmul=_flag(lambda: torch.backends.cuda.matmul.allow_tf32),
            tf32_cudnn=_flag(lambda: torch.backends.cudnn.allow_tf32),
        )
    else:
        info.update(name=f"CPU: {info['cpu']}", bf16_supported=True, bf16_native=cpu_has_bf16())
    return info


def _flag(read: Callable[[], Any]) -> Optional[bool]:
    """A backend flag, or None where this PyTorch no longer has it (newer releases moved the TF32 switches)."""
    try:
        return bool(read())
    except Exception:
        return None


def git_commit() -> Optional[str]:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


# -- sections --------------------------------------------------------------------------------------------------------
def bench_matmul(device: torch.device, clock: Clock, size: int, quick: bool,
                 precisions: Sequence[str] = ("bf16", "fp32")) -> dict[str, Any]:
    """Median FLOP/s of an ``size`` cubed ``torch.matmul`` in each of ``precisions`` (bf16, fp32)."""
    out: dict[str, Any] = {}
    dtypes = {"bf16": torch.bfloat16, "fp32": torch.float32}
    for name, dtype in ((p, dtypes[p]) for p in precisions):
        a = torch.randn(size, size, device=device).to(dtype)
        b = torch.randn(size, size, device=device).to(dtype)
        seconds, n = clock.median(lambda: torch.matmul(a, b), warmup=1 if quick else 3,
                                  repeats=3 if quick else 20, budget_s=1.0 if quick else 3.0)
        out[name] = {"tflops": 2.0 * size**3 / seconds / 1e12, "size": size, "median_ms": seconds * 1e3, "repeats": n}
        del a, b
    return out


def bench_forward(preset: str, precision: str, t: int, window: int, batch: int, device: torch.device,
                  clock: Clock, args: argparse.Namespace, models: dict[str, torch.nn.Module]) -> dict[str, Any]:
    """Pixels per second of the bare model forward for one setting."""
    config = make_config(preset, CHANNELS, CLASSES)
    # One prepared model per precision: on CPUs the bf16 path converts the weights themselves.
    key = f"{preset}-{precision}"
    if key not in models:
        torch.manual_seed(0)
        models[key] = prepare_for_inference(STCLN(config), device, precision)
    model = models[key]

    def run(b: int) -> dict[str, Any]:
        x, positions, valid = model_inputs(b, t, window, device)

        def step() -> None:
            with torch.inference_mode(), inference_context(device, precision):
                model(x, positions, valid)

        reset_peak(device)
        seconds, n = clock.median(step, args.warmup, args.repeats, args.budget_per_setting)
        return {"median_ms": seconds * 1e3, "repeats": n, "px_per_s": b * window * window / seconds,
                "peak_mib": peak_mib(device)}

    result = {"preset": preset, "precision": precision, "T": t, "C": CHANNELS, "window": window}
    result.update(with_halving(batch, run, device))
    fpp = flops_per_pixel(config, t, window, window)
    result["gflop_per_px"] = fpp / 1e9
    result["tflops"] = fpp * result["px_per_s"] / 1e12
    return result


def bench_training(preset: str, t: int, window: int, batch: int, device: torch.device, clock: Clock,
                   args: argparse.Namespace) -> dict[str, Any]:
    """Fine-tuning steps per second (forward, cross-entropy, backward, clip, Adam) with the engine's precision."""
    config = make_config(preset, CHANNELS, CLASSES)
    precision = training_precision("auto", device)  # bf16 autocast on a bf16 GPU, fp16 + scaler on older, fp32 on CPU
    torch.manual_seed(0)
    model = STCLN(config).to(device).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)

    def run(b: int) -> dict[str, Any]:
        x, positions, valid = model_inputs(b, t, window, device, seed=1)
        g = torch.Generator(device="cpu").manual_seed(2)
        target = (torch.randint(0, CLASSES + 1, (b, window, window), generator=g) - 1).to(device)  # -1 = unlabelled

        def step() -> None:
            with precision.autocast():
                logits = model(x, positions, valid)
            loss = F.cross_entropy(logits.float(), target, ignore_index=-1)
            optimiser_step(loss, optimiser, model, TRAIN_CLIP, precision)

        reset_peak(device)
        seconds, n = clock.median(step, args.warmup, args.repeats, args.budget_per_setting)
        return {"median_ms": seconds * 1e3, "repeats": n, "steps_per_s": 1.0 / seconds,
                "px_per_s": b * window * window / seconds, "peak_mib": peak_mib(device)}

    result = {"preset": preset, "precision": precision.name, "T": t, "C": CHANNELS, "window": window}
    result.update(with_halving(batch, run, device))
    return result


def raw_series(t: int, size: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A raw (not normalised) reflectance-like series ``(T, C, size, size)`` float32 and its valid mask (80 %)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((t, CHANNELS, size, size), dtype=np.float32)
    x *= 800.0
    x += 1500.0
    return x, rng.random((t, size, size), dtype=np.float32) < 0.8


def bench_predict_array(preset: str, precision: str, tile: int, batch: int, series: tuple[np.ndarray, np.ndarray],
                        device: torch.device, clock: Clock, args: argparse.Namespace) -> dict[str, Any]:
    """Output pixels per second of ``predict_array`` on a raw ``size x size`` array (tiling and blending included)."""
    from engine.bundle import ModelBundle
    from engine.classes import ClassTable
    from engine.inference.tiling import predict_array
    from engine.inference.weights import tile_starts

    config = make_config(preset, CHANNELS, CLASSES)
    torch.manual_seed(0)
    bundle = ModelBundle(
        config=config,
        state_dict=STCLN(config).state_dict(),
        band_names=[f"B{i + 1}" for i in range(CHANNELS)],
        mean=[1500.0] * CHANNELS,
        std=[800.0] * CHANNELS,
        classes=ClassTable.from_names([f"crop {i + 1}" for i in range(CLASSES)]),
    )
    x, valid = series
    t, size = x.shape[0], x.shape[-1]
    dates = dates_for(t)
    device_name = str(device)

    def run(b: int) -> dict[str, Any]:
        def call() -> None:
            predict_array(bundle, x, dates, valid, tile=tile, overlap=OVERLAP, batch_size=b, device=device_name,
                          precision=precision)

        reset_peak(device)
        seconds, n = clock.median(call, args.predict_warmup, args.predict_repeats, args.budget_per_setting,
                                  events=False)
        return {"median_ms": seconds * 1e3, "repeats": n, "px_per_s": size * size / seconds,
                "peak_mib": peak_mib(device)}

    tiles_per_axis = len(tile_starts(size, tile, OVERLAP))
    result = {"preset": preset, "precision": precision, "T": t, "C": CHANNELS, "tile": tile, "overlap": OVERLAP,
              "array_px": size, "tiles": tiles_per_axis**2,
              # every output pixel is computed this many times (tiles overlap and the last one pads past the edge)
              "recompute_factor": (tiles_per_axis * tile / size) ** 2}
    result.update(with_halving(batch, run, device))
    result["computed_px_per_s"] = result["px_per_s"] * result["recompute_factor"]
    result["tflops"] = flops_per_pixel(config, t, tile, tile) * result["computed_px_per_s"] / 1e12
    return result


def bench_normalise(series: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    """Pixels per second of the host-side normalisation that ``predict_array`` and the raster predictor run on
    every window before it reaches the device (numpy, in the read-ahead thread)."""
    from engine.data.normalization import normalise

    x, valid = series
    t, size = x.shape[0], x.shape[-1]
    mean, std = np.full(CHANNELS, 1500.0, np.float32), np.full(CHANNELS, 800.0, np.float32)
    cpu_clock = Clock(torch.device("cpu"))
    seconds, n = cpu_clock.median(lambda: normalise(x, valid, mean, std), warmup=1, repeats=3, budget_s=2.0)
    return {"T": t, "C": CHANNELS, "array_px": size, "median_ms": seconds * 1e3, "repeats": n,
            "px_per_s": size * size / seconds}


def extrapolate(forward: list[dict], predict: list[dict], best: str,
                host: Optional[dict] = None) -> list[dict[str, Any]]:
    """Seconds for a whole Sentinel-2 tile with ``paper`` at ``best`` precision, per tile size, from the measured
    rates. A setting measured at another T or window is rescaled by the analytic FLOPs (flagged ``flop_scaled``);
    the host normalisation (``host``, measured at ``host["T"]`` dates) is scaled linearly in T."""
    from engine.inference.weights import tile_starts

    config = make_config("paper", CHANNELS, CLASSES)
    rows = []
    for tile in (32, 64):
        per_axis = len(tile_starts(S2_TILE_PX, tile, OVERLAP))
        computed = float(per_axis * tile) ** 2
        need_fpp = flops_per_pixel(config, S2_DATES, tile, tile)
        row: dict[str, Any] = {
            "tile": tile, "overlap": OVERLAP, "tile_px": S2_TILE_PX, "T": S2_DATES, "C": CHANNELS, "preset": "paper",
            "precision": best, "windows": per_axis**2, "recompute_factor": computed / S2_TILE_PX**2,
            "computed_px": computed, "goal_s": GOAL_SECONDS,
            "required_forward_px_per_s": computed / GOAL_SECONDS,
            "required_output_px_per_s": S2_TILE_PX**2 / GOAL_SECONDS,
            "required_tflops": computed * need_fpp / GOAL_SECONDS / 1e12,
        }
        for source, results, key in (("forward", forward, "window"), ("predict_array", predict, "tile")):
            basis = _closest([r for r in results if r.get("preset") == "paper" and r.get("precision") == best
                              and "px_per_s" in r], S2_DATES, tile, key)
            if basis is None:
                continue
            rate = basis["px_per_s"] if source == "forward" else basis["computed_px_per_s"]
            scaled = basis["T"] != S2_DATES or basis[key] != tile
            if scaled:
                rate *= flops_per_pixel(config, basis["T"], basis[key], basis[key]) / need_fpp
            seconds = computed / rate
            row[source] = {"seconds": seconds, "meets_goal": seconds < GOAL_SECONDS, "computed_px_per_s": rate,
                           "basis": {"T": basis["T"], key: basis[key], "batch": basis["batch"]},
                           "flop_scaled": scaled}
        if host and host.get("px_per_s"):
            # normalised once per read region (plus a small halo), i.e. about once per output pixel
            rate = host["px_per_s"] * host["T"] / S2_DATES
            row["host_normalise"] = {"seconds": S2_TILE_PX**2 / rate, "px_per_s": rate, "threads": 1}
        rows.append(row)
    return rows


def _closest(results: list[dict], t: int, window: int, key: str) -> Optional[dict]:
    if not results:
        return None
    # the same window first (efficiency depends on it beyond the FLOPs), then the nearest T
    return min(results, key=lambda r: (r[key] != window, abs(r["T"] - t), abs(r[key] - window), -r["T"]))


# -- output ----------------------------------------------------------------------------------------------------------
def fmt(value: Optional[float], spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_forward(rows: list[dict], peak_bf16: Optional[float]) -> None:
    print(f"{'preset':6} {'prec':4} {'T':>3} {'win':>4} {'batch':>5} {'px/s':>11} {'ms/batch':>9} {'GFLOP/px':>8} "
          f"{'TFLOP/s':>8} {'%bf16mm':>7} {'peak MiB':>9}")
    for r in rows:
        if "px_per_s" not in r:
            reason = r.get("error", r.get("skipped"))
            print(f"{r['preset']:6} {r['precision']:4} {r['T']:>3} {r['window']:>4}  {reason}")
            continue
        frac = 100 * r["tflops"] / peak_bf16 if peak_bf16 else None
        print(f"{r['preset']:6} {r['precision']:4} {r['T']:>3} {r['window']:>4} {r['batch']:>5} "
              f"{r['px_per_s']:>11,.0f} "
              f"{r['median_ms']:>9.1f} {r['gflop_per_px']:>8.3f} {r['tflops']:>8.3f} {fmt(frac, '>7.1f')} "
              f"{fmt(r['peak_mib'], '>9.0f')}")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cuda, cuda:N or cpu")
    parser.add_argument("--quick", action="store_true",
                        help="T=24, window 32 only, one warm-up, few repeats, small arrays "
                             "(a check, under a minute on a CPU)")
    parser.add_argument("--json", help="write the results to this JSON file")
    parser.add_argument("--max-seconds", type=float, default=170.0,
                        help="stop starting new settings after this many seconds (default 170: the shared GPU check "
                             "gives the benchmark 200)")
    args = parser.parse_args(argv)

    from engine.device import resolve_device

    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        if device.index is None:  # "auto"/"cuda" give an index-less device; set_device and the JSON want the index
            device = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(device)
    quick = args.quick
    args.warmup = 1 if quick else (3 if cuda else 1)
    args.repeats = 1 if quick else (10 if cuda else 3)
    args.budget_per_setting = 0.5 if quick else 2.0
    args.predict_warmup = 0 if quick else 1  # quick: the forward section has already warmed the kernels up
    args.predict_repeats = 1 if quick else 2
    dates = [24] if quick else [24, 40]
    windows = [32] if quick else [32, 64]
    # A CPU without native bf16 (AVX2 only) emulates it at ~1/10 of its fp32 rate: bf16 is then no option to bench.
    bf16_ok = torch.cuda.is_bf16_supported() if cuda else cpu_has_bf16()
    low = "bf16" if bf16_ok else ("fp16" if cuda else "fp32")
    precisions = [low, "fp32"] if low != "fp32" else ["fp32"]
    # pixels per forward batch: enough to fill a GPU, yet under 65536 temporal-attention sequences (B x H x W),
    # the CUDA grid limit of the fused attention kernels in older PyTorch; one window on a CPU
    px_per_batch = 32768 if cuda else (1024 if quick else 4096)
    began = time.perf_counter()
    clock = Clock(device)

    report: dict[str, Any] = {
        "schema": SCHEMA, "complete": False, "quick": quick, "commit": git_commit(),
        "started": dt.datetime.now().isoformat(timespec="seconds"),
        "device": describe(device),
        "settings": {
            "presets": ["paper", "lite"], "precisions": precisions, "dates": dates, "windows": windows,
            "channels": CHANNELS, "classes": CLASSES, "valid_fraction": 0.8, "pixels_per_forward_batch": px_per_batch,
            "warmup": args.warmup, "repeats": args.repeats, "budget_per_setting_s": args.budget_per_setting,
            "note": ("quick: T=24 and window 32 only, one warm-up and one timed call per setting, training on 16 x 16 "
                     "crops (batch 1), predict_array with 16 x 16 tiles on a 24 x 24 array (4 tiles), no warm-up; "
                     "a functional check, not a benchmark")
            if quick else "full: T 24 and 40, windows 32 and 64",
        },
        "matmul": {}, "host": {}, "forward": [], "training": [], "predict_array": [], "extrapolation": [], "errors": [],
    }

    def save() -> None:
        report["elapsed_s"] = time.perf_counter() - began
        if args.json:
            from engine.atomic import atomic_output

            with atomic_output(args.json) as tmp:
                tmp.write_text(json.dumps(report, indent=2))

    def out_of_time() -> bool:
        return time.perf_counter() - began > args.max_seconds

    def attempt(section: str, what: dict[str, Any], fn: Callable[[], dict]) -> dict[str, Any]:
        if out_of_time():
            row = dict(what, skipped=f"time budget of {args.max_seconds:.0f} s spent")
        else:
            try:
                row = fn()
            except Exception as exc:  # one failing setting must not lose the others' numbers
                row = dict(what, error=f"{type(exc).__name__}: {exc}")
                report["errors"].append({"section": section, **row})
                if cuda:
                    torch.cuda.empty_cache()
        report[section].append(row)
        save()
        return row

    dev = report["device"]
    print(f"device: {dev['name']}" + (f" ({dev['memory_gib']} GiB, CUDA {dev['cuda']})" if cuda else ""))
    print(f"torch {dev['torch']}, numpy {dev['numpy']}; mode: {'quick' if quick else 'full'}")

    try:
        report["matmul"] = bench_matmul(device, clock, 8192 if cuda else 2048, quick,
                                        ("bf16", "fp32") if bf16_ok or cuda else ("fp32",))
    except Exception as exc:
        report["errors"].append({"section": "matmul", "error": f"{type(exc).__name__}: {exc}"})
    peak = report["matmul"].get("bf16", {}).get("tflops")
    if peak or "fp32" in report["matmul"]:
        print(f"matmul {report['matmul'].get('fp32', report['matmul'].get('bf16', {})).get('size')}^3: "
              f"bf16 {fmt(peak, '.2f')} TFLOP/s, "
              f"fp32 {report['matmul'].get('fp32', {}).get('tflops', float('nan')):.2f} TFLOP/s")
    save()

    models: dict[str, torch.nn.Module] = {}
    for preset in ("paper", "lite"):
        for precision in precisions:
            for t in dates:
                for window in windows:
                    what = {"preset": preset, "precision": precision, "T": t, "C": CHANNELS, "window": window}
                    row = attempt("forward", what, lambda: bench_forward(
                        preset, precision, t, window, max(1, px_per_batch // window**2), device, clock, args, models))
                    if peak and "tflops" in row:
                        row["fraction_of_bf16_matmul"] = row["tflops"] / peak
        models.pop(preset, None)
    print("\nmodel forward (inference_mode, the engine's inference_context):")
    print_forward(report["forward"], peak)

    train_t, train_window = 24, (16 if quick else 32)
    train_batch = 1 if quick else 8  # finetune's default batch of 32 x 32 crops
    for preset in ("paper", "lite"):
        what = {"preset": preset, "T": train_t, "C": CHANNELS, "window": train_window}
        attempt("training", what,
                lambda: bench_training(preset, train_t, train_window, train_batch, device, clock, args))
    print("\nfine-tuning step (forward, cross-entropy, backward, clip, Adam; AMP on a GPU):")
    for r in report["training"]:
        if "steps_per_s" in r:
            print(f"{r['preset']:6} {r['precision']:4} T={r['T']} crop {r['window']} batch {r['batch']}: "
                  f"{r['steps_per_s']:.2f} steps/s, {r['px_per_s']:,.0f} px/s, peak {fmt(r['peak_mib'], '.0f')} MiB")
        else:
            print(f"{r['preset']:6} {r.get('error', r.get('skipped'))}")

    pa_t = 24 if quick else 40
    pa_size = 24 if quick else 1024  # 1024: four 512-px blocks, so reading ahead overlaps the GPU as on a raster
    pa_tiles = [16] if quick else [32, 64]
    series = raw_series(pa_t, pa_size) if not out_of_time() else None  # 1.7 GB in the full mode
    for preset in ("paper", "lite"):
        for tile in pa_tiles:
            what = {"preset": preset, "precision": low, "T": pa_t, "C": CHANNELS, "tile": tile}
            pa_batch = 4 if quick else max(1, px_per_batch // tile**2)
            attempt("predict_array", what, lambda: bench_predict_array(
                preset, low, tile, pa_batch, series, device, clock, args))
    print(f"\npredict_array ({low}, overlap {OVERLAP}, raw {pa_size} x {pa_size} array; px/s = output pixels):")
    for r in report["predict_array"]:
        if "px_per_s" in r:
            print(f"{r['preset']:6} T={r['T']} tile {r['tile']} batch {r['batch']}: {r['px_per_s']:,.0f} px/s "
                  f"(x{r['recompute_factor']:.2f} computed: {r['computed_px_per_s']:,.0f} px/s, {r['tflops']:.3f} "
                  f"TFLOP/s), peak {fmt(r['peak_mib'], '.0f')} MiB")
        else:
            print(f"{r['preset']:6} tile {r['tile']}: {r.get('error', r.get('skipped'))}")

    try:
        if series is None:
            report["host"] = {"skipped": f"time budget of {args.max_seconds:.0f} s spent"}
        else:
            report["host"] = bench_normalise(tuple(np.ascontiguousarray(a[..., :512, :512]) for a in series))
            print(f"host normalisation (engine.data.normalise, T={pa_t}, C={CHANNELS}, one thread of numpy): "
                  f"{report['host']['px_per_s']:,.0f} px/s")
    except Exception as exc:
        report["errors"].append({"section": "host", "error": f"{type(exc).__name__}: {exc}"})
    try:
        report["extrapolation"] = extrapolate(report["forward"], report["predict_array"], low, report.get("host"))
    except Exception as exc:
        report["errors"].append({"section": "extrapolation", "error": f"{type(exc).__name__}: {exc}"})
    print(f"\nwhole Sentinel-2 tile ({S2_TILE_PX} x {S2_TILE_PX} px, T={S2_DATES}, C={CHANNELS}, paper, {low}); "
          f"goal < {GOAL_SECONDS:.0f} s:")
    for r in report["extrapolation"]:
        print(f"  tile {r['tile']} overlap {r['overlap']}: {r['windows']:,} windows, each pixel computed "
              f"{r['recompute_factor']:.3f} times; goal needs {r['required_forward_px_per_s']:,.0f} computed px/s "
              f"({r['required_tflops']:.1f} TFLOP/s)")
        for source in ("forward", "predict_array"):
            if source in r:
                e = r[source]
                note = " (FLOP-scaled from T={T}, {k} {v})".format(
                    T=e["basis"]["T"], k="window" if source == "forward" else "tile",
                    v=e["basis"].get("window", e["basis"].get("tile"))) if e["flop_scaled"] else ""
                print(f"    from {source}: {e['seconds']:,.0f} s at {e['computed_px_per_s']:,.0f} computed px/s"
                      f"{note} -> {'meets' if e['meets_goal'] else 'misses'} the goal")
        if "host_normalise" in r:
            print(f"    host normalisation alone (one read-ahead thread): {r['host_normalise']['seconds']:,.0f} s")

    sections = ("forward", "training", "predict_array")
    report["complete"] = not any("skipped" in r for name in sections for r in report[name]) and \
        "skipped" not in report["host"]
    save()
    print(f"\n{len(report['errors'])} error(s); {time.perf_counter() - began:.1f} s"
          + (f"; JSON: {args.json}" if args.json else ""))
    for e in report["errors"]:
        print(f"  error in {e['section']}: {e['error']}")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
