"""The machine's best measured matrix-multiply rate (FLOP/s), fp32 and bf16, for fraction-of-peak figures."""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

SHAPES = ((2048, 2048, 2048), (4096, 4096, 4096), (8192, 1024, 1024), (16384, 256, 1024))


def time_median(fn, repeats: int = 5, min_seconds: float = 0.2, clock=time.perf_counter) -> float:
    """Median seconds per call of ``fn`` over ``repeats`` timings, each of enough calls to last ``min_seconds``.

    ``clock=time.process_time`` (with one torch thread) measures CPU time, which other processes on a busy machine
    do not inflate."""
    fn()
    start = clock()
    fn()
    once = max(clock() - start, 1e-6)
    calls = max(1, int(min_seconds / once))
    samples = []
    for _ in range(repeats):
        start = clock()
        for _ in range(calls):
            fn()
        samples.append((clock() - start) / calls)
    return statistics.median(samples)


def matmul_rate(dtype: torch.dtype, shapes=SHAPES, device: str = "cpu", repeats: int = 5,
                clock=time.perf_counter) -> dict:
    """Best median FLOP/s over ``shapes`` ((m, k, n)) for ``dtype``, with every shape's rate.

    On CPUs both of torch's GEMM back-ends are timed: ``torch.mm`` (MKL for fp32) and oneDNN (torch's
    ``mkldnn._linear_pointwise``); on AMD CPUs MKL's fp32 GEMM reaches only about half of oneDNN's rate.
    """
    rates = {}
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for m, k, n in shapes:
        a = torch.randn(m, k, device=device).to(dtype)
        b = torch.randn(k, n, device=device).to(dtype)
        b_t = b.t().contiguous()  # oneDNN linear takes the (out, in) weight layout
        out = torch.empty(m, n, device=device, dtype=dtype)

        def mm() -> None:
            torch.mm(a, b, out=out)
            sync()

        backends = {"mm": mm}
        if device == "cpu" and hasattr(torch.ops.mkldnn, "_linear_pointwise"):
            backends["onednn"] = lambda: torch.ops.mkldnn._linear_pointwise(a, b_t, None, "none", [], "")
        for name, step in backends.items():
            rates[f"{name} {m}x{k}x{n}"] = 2.0 * m * k * n / time_median(step, repeats, clock=clock)
    return {"best_flops": max(rates.values()), "by_shape": rates}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", help="write the result to this JSON file")
    args = parser.parse_args()
    result = {"threads": torch.get_num_threads(), "fp32": matmul_rate(torch.float32),
              "bf16": matmul_rate(torch.bfloat16)}
    for name in ("fp32", "bf16"):
        print(f"{name}: best {result[name]['best_flops'] / 1e9:.1f} GFLOP/s "
              + ", ".join(f"{s} {r / 1e9:.1f}" for s, r in result[name]["by_shape"].items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
