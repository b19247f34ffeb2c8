"""CPU training speed of STCLN ``lite`` and ``paper``: fine-tuning and pre-training steps against the machine's best
measured matrix-multiply rate, with peak resident memory.

    python bench/training.py [--json FILE] [--quick] [--cpu-time] [--dates 70] [--presets lite]

One step = the engine's own ``finetune_step`` / ``pretrain_step`` (forward, loss, backward, gradient clipping,
Adam) on a batch of 8 crops of 32 x 32 px, T = 24 dates, C = 10 bands, 20 classes, 20 % of (date, pixel)
observations invalid, with the micro-batches, recomputation, allocator settings and precision that training uses.
Training FLOPs are counted as 3 x the analytic forward count (``engine.model.flops_per_pixel``; the backward
taken as twice the forward), whatever recomputation adds. ``fraction_of_peak`` is achieved FLOP/s over the best of
the fp32 and bf16 matmul rates measured in the same run (before and after the models; the better kept). Each
preset and step kind runs in a child process, so ``peak_rss_mib`` (``ru_maxrss``) is that step's alone.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from engine.model import STCLN, flops_per_pixel, make_config  # noqa: E402
from engine.model.fast import cpu_has_bf16  # noqa: E402
from engine.training.allocator import training_allocator  # noqa: E402
from engine.training.precision import resolve_precision  # noqa: E402
from engine.training.pretrain import MaskedPretrainer  # noqa: E402
from engine.training.masking import make_pretraining_mask  # noqa: E402
from engine.training.sampling import make_batch  # noqa: E402
from engine.training.scene import Scene  # noqa: E402
from engine.training.steps import finetune_step, plan_step, pretrain_step  # noqa: E402
from matmul_peak import matmul_rate, time_median  # noqa: E402

C, CLASSES, INVALID = 10, 20, 0.2


def synthetic_scene(dates: int, size: int = 96, seed: int = 0) -> Scene:
    """A normalised-looking scene with 20 % invalid observations and labels on about 70 % of the pixels."""
    rng = np.random.default_rng(seed)
    valid = rng.random((dates, size, size)) > INVALID
    x = rng.standard_normal((dates, C, size, size), dtype=np.float32) * valid[:, None]
    labels = rng.integers(0, CLASSES + 1, (size, size))
    labels[rng.random((size, size)) < 0.3] = 0
    return Scene(x, valid, np.arange(dates, dtype=np.float32) * 365.0 / dates, labels)


def child(preset: str, kind: str, dates: int, crop: int, batch: int, repeats: int, precision: str,
          cpu_time: bool, budget_mib: float | None = None) -> dict:
    """Times ``repeats`` steps (after one warm-up) of one kind in this process; returns medians and peak RSS."""
    if cpu_time:
        torch.set_num_threads(1)
    clock = time.process_time if cpu_time else time.perf_counter
    device = torch.device("cpu")
    config = make_config(preset, C, CLASSES)
    torch.manual_seed(0)
    model = STCLN(config)
    module = model if kind == "finetune" else MaskedPretrainer(model, config)
    optimiser = torch.optim.Adam(module.parameters(), lr=1e-4)
    prec = resolve_precision(precision, device)
    scene = synthetic_scene(dates)
    rng = np.random.default_rng(1)
    weight = torch.ones(CLASSES)
    plan = plan_step(config, dates, crop * crop, batch, **({"budget": budget_mib * 2**20} if budget_mib else {}))
    model.recompute_chunk = plan.recompute_chunk
    module.train()
    samples = []
    with training_allocator():
        for i in range(repeats + 1):
            crops = [(0, int(rng.integers(96 - crop)), int(rng.integers(96 - crop))) for _ in range(batch)]
            b = make_batch([scene], crops, crop, with_labels=kind == "finetune")
            start = clock()
            if kind == "finetune":
                finetune_step(module, module, b, weight, optimiser, 5.0, prec, 1, plan.micro_batch)
            else:
                mask = make_pretraining_mask((batch, dates, crop, crop), 0.4, "spatiotemporal", rng)
                pretrain_step(module, module, b, mask, optimiser, 5.0, prec, 1, plan.micro_batch)
            if i:
                samples.append(clock() - start)
    seconds = statistics.median(samples)
    return {
        "seconds_per_step": seconds,
        "step_seconds": samples,
        "pixels_per_second": batch * crop * crop / seconds,
        "training_flops_per_pixel": 3.0 * flops_per_pixel(config, dates, crop, crop),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "precision": prec.name,
        "micro_batch": plan.micro_batch,
        "recompute_chunk": plan.recompute_chunk,
        "threads": torch.get_num_threads(),
    }


def run_child(args: argparse.Namespace, preset: str, kind: str) -> dict:
    command = [sys.executable, __file__, "--child", preset, kind, "--dates", str(args.dates), "--crop", str(args.crop),
               "--batch", str(args.batch), "--repeats", str(args.repeats), "--precision", args.precision]
    if args.cpu_time:
        command.append("--cpu-time")
    if args.budget_mib:
        command += ["--budget-mib", str(args.budget_mib)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"{preset} {kind} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_matmul(quick: bool, cpu_time: bool) -> dict:
    """Best fp32 and bf16 rates; emulated bf16 (no AVX-512 BF16 / AMX) is timed on one small shape only."""
    if cpu_time:
        torch.set_num_threads(1)
    clock = time.process_time if cpu_time else time.perf_counter
    fp32_shapes = ((2048, 2048, 2048),) if quick else ((2048, 2048, 2048), (4096, 4096, 4096), (16384, 256, 1024))
    fp32 = matmul_rate(torch.float32, fp32_shapes, repeats=3 if quick else 5, clock=clock)
    if cpu_has_bf16():
        return {"fp32": fp32, "bf16": matmul_rate(torch.bfloat16, fp32_shapes, repeats=3 if quick else 5, clock=clock)}
    # emulated: oneDNN has no bf16 GEMM for this CPU at all (it raises), torch.mm's runs at ~1 GFLOP/s
    a, b = torch.randn(512, 512).bfloat16(), torch.randn(512, 512).bfloat16()
    rate = 2.0 * 512**3 / time_median(lambda: torch.mm(a, b), 3, clock=clock)
    return {"fp32": fp32, "bf16": {"best_flops": rate, "by_shape": {"mm 512x512x512": rate}}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="write the results to this JSON file")
    parser.add_argument("--quick", action="store_true", help="a smoke test: lite only, batch 2, 2 repeats")
    parser.add_argument("--presets", nargs="+", default=None, choices=("lite", "paper"))
    parser.add_argument("--dates", type=int, default=24, help="T (default 24)")
    parser.add_argument("--crop", type=int, default=32)
    parser.add_argument("--batch", type=int, default=None, help="crops per step (default 8, quick 2)")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps (default 5, quick 2)")
    parser.add_argument("--precision", default="auto", help="training precision (default auto, as training)")
    parser.add_argument("--cpu-time", action="store_true",
                        help="one thread, timed in CPU seconds (per-core figures that a busy machine skews less)")
    parser.add_argument("--budget-mib", type=float, default=None,
                        help="activation memory budget of a step (default: the engine's, engine/training/steps.py)")
    parser.add_argument("--child", nargs=2, metavar=("PRESET", "KIND"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.batch = args.batch or (2 if args.quick else 8)
    args.repeats = args.repeats or (2 if args.quick else 5)
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.dates, args.crop, args.batch, args.repeats,
                               args.precision, args.cpu_time, args.budget_mib)))
        return
    presets = args.presets or (["lite"] if args.quick else ["lite", "paper"])
    load_before = os.getloadavg()
    before = measure_matmul(args.quick, args.cpu_time)
    result: dict = {
        "command": " ".join(["python"] + sys.argv),
        "machine": {"cores": os.cpu_count(), "torch": torch.__version__, "cpu_has_bf16": cpu_has_bf16(),
                    "load_average_before": load_before},
        "setting": {"T": args.dates, "C": C, "crop": args.crop, "batch": args.batch, "classes": CLASSES,
                    "invalid_fraction": INVALID, "repeats": args.repeats, "statistic": "median",
                    "clock": "cpu time, one thread" if args.cpu_time else "wall clock, all cores",
                    "training_flops": "3 x the analytic forward count"},
    }
    for preset in presets:
        fine = run_child(args, preset, "finetune")
        pre = run_child(args, preset, "pretrain")
        result[preset] = {"finetune": fine, "pretrain": pre,
                          "finetune_pixels_per_second": fine["pixels_per_second"],
                          "pretrain_pixels_per_second": pre["pixels_per_second"],
                          "peak_rss_mib": fine["peak_rss_mib"], "pretrain_peak_rss_mib": pre["peak_rss_mib"]}
        print(f"{preset}: fine-tuning {fine['seconds_per_step']:.2f} s/step, pre-training "
              f"{pre['seconds_per_step']:.2f} s/step", flush=True)
    after = measure_matmul(args.quick, args.cpu_time)
    matmul = {k: {"best_flops": max(before[k]["best_flops"], after[k]["best_flops"]), "before": before[k],
                  "after": after[k]} for k in before}
    peak = max(m["best_flops"] for m in matmul.values())
    result["matmul"], result["peak_flops"] = matmul, peak
    print(f"matmul peak: fp32 {matmul['fp32']['best_flops'] / 1e9:.1f}, bf16 {matmul['bf16']['best_flops'] / 1e9:.1f}"
          f" GFLOP/s ({'native' if cpu_has_bf16() else 'emulated'} bf16)")
    for preset in presets:
        r = result[preset]
        for kind in ("finetune", "pretrain"):
            k = r[kind]
            k["achieved_flops"] = k["pixels_per_second"] * k["training_flops_per_pixel"]
            k["fraction_of_fp32_peak"] = k["achieved_flops"] / matmul["fp32"]["best_flops"]
            k["fraction_of_bf16_peak"] = k["achieved_flops"] / matmul["bf16"]["best_flops"]
            k["fraction_of_peak"] = k["achieved_flops"] / peak
        r["fraction_of_peak"] = r["finetune"]["fraction_of_peak"]
        r["pretrain_fraction_of_peak"] = r["pretrain"]["fraction_of_peak"]
        f, p = r["finetune"], r["pretrain"]
        print(f"{preset:5s} fine-tuning {f['pixels_per_second']:7.0f} px/s {f['achieved_flops'] / 1e9:6.1f} GFLOP/s"
              f" = {100 * f['fraction_of_peak']:.1f} % of peak ({f['precision']}, micro-batch {f['micro_batch']},"
              f" recompute {f['recompute_chunk']}), peak RSS {f['peak_rss_mib']:.0f} MiB; pre-training "
              f"{p['pixels_per_second']:7.0f} px/s = {100 * p['fraction_of_peak']:.1f} %, {p['peak_rss_mib']:.0f} MiB")
    result["machine"]["load_average_after"] = os.getloadavg()
    print(f"load average before {load_before}, after {result['machine']['load_average_after']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
