"""CPU inference throughput of STCLN ``paper`` and ``lite`` (T=24, C=10, 32 x 32 windows) against the machine's
best measured matrix-multiply rate.

    python bench/throughput.py [--json FILE] [--quick]

FLOPs per pixel are counted analytically (``engine.model.flops_per_pixel``: 2 x the multiply-accumulates of every
convolution, linear layer and attention matrix product). ``fraction_of_peak`` is achieved FLOP/s over the best of
the fp32 and bf16 matmul rates measured in the same run; ``agreement_with_fp32`` is the share of pixels whose class
(argmax) from the fast path equals the plain fp32 eager model's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine.model import STCLN, flops_per_pixel, make_config  # noqa: E402
from engine.model.fast import inference_context, prepare_for_inference, resolve_precision  # noqa: E402
from matmul_peak import matmul_rate  # noqa: E402

T, C, WINDOW, CLASSES = 24, 10, 32, 20


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def make_inputs(batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Normalised-looking inputs with about 20 % of (date, pixel) steps invalid, dates every ~15 days."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, T, C, WINDOW, WINDOW, generator=g)
    valid = torch.rand(batch, T, WINDOW, WINDOW, generator=g) > 0.2
    positions = (torch.arange(T, dtype=torch.float32) * 15.0 + 5.0)[None].repeat(batch, 1)
    return x, positions, valid


def build_model(preset: str, seed: int = 0) -> STCLN:
    """A randomly initialised model with ``gamma`` non-zero, so STA's affinity counts as in a trained model."""
    torch.manual_seed(seed)
    model = STCLN(make_config(preset, in_channels=C, num_classes=CLASSES)).eval()
    with torch.no_grad():
        model.sta.gamma.fill_(0.5)
    return model


CLOCK = time.perf_counter


def time_runs(fn, repeats: int) -> list[float]:
    fn()  # warm-up: oneDNN primitive creation, allocator
    samples = []
    for _ in range(repeats):
        start = CLOCK()
        fn()
        samples.append(CLOCK() - start)
    return samples


def bench_preset(preset: str, batch: int, repeats: int) -> dict:
    model = build_model(preset)
    x, positions, valid = make_inputs(batch)
    device = torch.device("cpu")
    with torch.inference_mode():
        reference = model(x, positions, valid).argmax(1)
        fp32_times = time_runs(lambda: model(x, positions, valid), max(1, repeats // 2))
    fast = prepare_for_inference(model, device)
    with torch.inference_mode(), inference_context(device, "auto"):
        predictions = fast(x, positions, valid).argmax(1)
        times = time_runs(lambda: fast(x, positions, valid), repeats)
    pixels = batch * WINDOW * WINDOW
    flops = flops_per_pixel(model.config, T, WINDOW, WINDOW)
    pps = pixels / statistics.median(times)
    return {
        "pixels_per_second": pps,
        "flops_per_pixel": flops,
        "achieved_flops": pps * flops,
        "agreement_with_fp32": (predictions == reference).float().mean().item(),
        "precision": str(resolve_precision(device, "auto")).replace("torch.", ""),
        "pixels_per_second_fp32_eager": pixels / statistics.median(fp32_times),
        "seconds_per_batch": times,
        "batch_windows": batch,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="write the results to this JSON file")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and a smaller batch (a smoke test)")
    parser.add_argument("--batch", type=int, default=None, help="windows per forward pass (default 8, quick 2)")
    parser.add_argument("--repeats", type=int, default=None, help="timed forward passes (default 7, quick 2)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--cpu-time", action="store_true",
                        help="one thread, timed in CPU seconds (per-core figures that a busy machine does not skew)")
    args = parser.parse_args()
    global CLOCK
    if args.cpu_time:
        args.threads = 1
        CLOCK = time.process_time
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    batch = args.batch or (2 if args.quick else 8)
    repeats = args.repeats or (2 if args.quick else 7)

    shapes = ((2048, 2048, 2048),) if args.quick else ((2048, 2048, 2048), (4096, 4096, 4096), (16384, 256, 1024))

    def measure_matmul() -> dict:
        return {name: matmul_rate(dtype, shapes, repeats=3 if args.quick else 5, clock=CLOCK)
                for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}

    # measured before and after the models and the better of the two kept: a rate depressed for a while by another
    # process would otherwise inflate the fractions
    before = measure_matmul()
    print(f"matmul before: fp32 {before['fp32']['best_flops'] / 1e9:.0f} GFLOP/s, "
          f"bf16 {before['bf16']['best_flops'] / 1e9:.0f} GFLOP/s ({torch.get_num_threads()} threads)")
    result: dict = {
        "command": " ".join(["python"] + sys.argv),
        "machine": {"cpu": _cpu_name(), "cores": os.cpu_count(), "threads": torch.get_num_threads(),
                    "torch": torch.__version__, "load_average_before": load_before},
        "setting": {"T": T, "C": C, "window": WINDOW, "classes": CLASSES, "batch_windows": batch,
                    "repeats": repeats, "statistic": "median",
                    "clock": "cpu time, one thread" if args.cpu_time else "wall clock"},
    }
    for preset in ("paper", "lite"):
        result[preset] = bench_preset(preset, batch, repeats)
    after = measure_matmul()
    matmul = {name: {"best_flops": max(before[name]["best_flops"], after[name]["best_flops"]),
                     "before": before[name], "after": after[name]} for name in before}
    peak = max(m["best_flops"] for m in matmul.values())
    result["matmul"] = matmul
    result["peak_flops"] = peak
    print(f"matmul after: fp32 {after['fp32']['best_flops'] / 1e9:.0f} GFLOP/s, "
          f"bf16 {after['bf16']['best_flops'] / 1e9:.0f} GFLOP/s; peak (best of both) {peak / 1e9:.0f} GFLOP/s")
    for preset in ("paper", "lite"):
        r = result[preset]
        r["fraction_of_peak"] = r["achieved_flops"] / peak
        print(f"{preset:5s} {r['pixels_per_second']:8.0f} px/s ({r['precision']}), "
              f"{r['flops_per_pixel'] / 1e6:.1f} MFLOP/px, {r['achieved_flops'] / 1e9:.0f} GFLOP/s = "
              f"{100 * r['fraction_of_peak']:.1f} % of peak, agreement with fp32 {100 * r['agreement_with_fp32']:.2f} %"
              f"; fp32 eager {r['pixels_per_second_fp32_eager']:.0f} px/s")
    result["machine"]["load_average_after"] = os.getloadavg()
    print(f"load average (1, 5, 15 min) before {load_before}, after {result['machine']['load_average_after']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
