"""``make bench``: the CPU benchmarks and the accuracy study, then ``docs/BENCHMARKS.md`` with tables and plots.

    python bench/run_all.py                 # everything (about an hour on a 2-core machine)
    python bench/run_all.py --quick         # smoke test: short benchmarks, a 1-seed study -> bench/results/BENCHMARKS_quick.md
    python bench/run_all.py --skip-study    # benchmarks only; the study section uses earlier results if present
    python bench/run_all.py --report-only   # only rewrite docs/BENCHMARKS.md from bench/results/

Results go to ``bench/results/`` (not in git): ``throughput.json``, ``study/summary.json`` (and ``runs.jsonl``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DOCS = ROOT / "docs"
PY = sys.executable

sys.path.insert(0, str(ROOT / "bench"))


def run(command: list[str], what: str) -> bool:
    """Runs a benchmark from the repository root; a failure is reported, not fatal (the report says it)."""
    print(f"== {what}: {' '.join(command)}", flush=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run(command, cwd=ROOT, env=env)
    if done.returncode:
        print(f"!! {what} failed with exit code {done.returncode}", flush=True)
    return done.returncode == 0


def machine() -> dict[str, Any]:
    """CPU model and cores (lscpu), memory, Python and torch versions."""
    info: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform()}
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        info["cpu"] = fields.get("Model name", "?")
        info["cpus"] = fields.get("CPU(s)", "?")
        info["threads_per_core"] = fields.get("Thread(s) per core", "?")
        flags = fields.get("Flags", "")
        info["avx512"] = "avx512f" in flags
        info["amx"] = "amx_tile" in flags
    except (OSError, subprocess.CalledProcessError):
        info["cpu"] = platform.processor() or "?"
        info["cpus"] = str(os.cpu_count())
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        info["torch"] = "not installed"
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        info["memory_gib"] = round(pages / 2**30, 1)
    except (ValueError, OSError):
        pass
    return info


def read_json(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def pm(stats: Optional[dict], scale: float = 100.0, digits: int = 1) -> str:
    """``mean +- std`` (percent by default)."""
    if not stats:
        return "–"
    return f"{stats['mean'] * scale:.{digits}f} ± {stats['std'] * scale:.{digits}f}"


def included(path: Path, top: int = 3) -> list[str]:
    """Another engineer's section with its headings shifted so the highest is level ``top``, or a note."""
    if not path.exists():
        return [f"_Not available: `{path.relative_to(ROOT)}` has not been written on this machine._", ""]
    text = path.read_text().splitlines()
    fenced, levels = False, []
    for line in text:
        if line.startswith("```"):
            fenced = not fenced
        elif line.startswith("#") and not fenced:
            levels.append(len(line) - len(line.lstrip("#")))
    shift = top - min(levels) if levels else 0
    lines, fenced = [], False
    for line in text:
        if line.startswith("```"):
            fenced = not fenced
        elif line.startswith("#") and not fenced:
            level = len(line) - len(line.lstrip("#"))
            line = "#" * max(1, level + shift) + line[level:]
        lines.append(line)
    return [f"_Included from [`{path.relative_to(ROOT)}`]({path.name}):_", ""] + lines + [""]


# ---------------------------------------------------------------------------------------------------------------


def throughput_section(data: Optional[dict]) -> list[str]:
    out = ["## CPU inference throughput", ""]
    if not data:
        return out + ["_No throughput results (`bench/results/throughput.json`); run `make bench`._", ""]
    presets = {k: v for k, v in data.items() if isinstance(v, dict) and "pixels_per_second" in v}
    out += [
        "Command: `.venv/bin/python bench/throughput.py --json bench/results/throughput.json` "
        "(STCLN, T=24 dates, C=10 bands, 32x32 windows; median of the timed forward passes: the machine is shared, "
        "so medians, not means).",
        "",
        "| preset | pixels/s | MFLOP per pixel | fraction of measured peak | class agreement with fp32 |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, v in presets.items():
        out.append(
            f"| {name} | {v['pixels_per_second']:,.0f} | {v['flops_per_pixel'] / 1e6:,.1f} | "
            f"{v['fraction_of_peak'] * 100:.1f} % | {v['agreement_with_fp32'] * 100:.2f} % |"
        )
    details = []
    if "peak_flops" in data:
        details.append(f"measured matmul peak {data['peak_flops'] / 1e9:,.0f} GFLOP/s (best of fp32 and bf16, measured before and after the models)")
    setting = data.get("setting") or {}
    if setting:
        details.append("setting " + ", ".join(f"{k} = {v}" for k, v in setting.items()))
    if data.get("machine"):
        details.append(f"torch threads {data['machine'].get('threads', '?')}")
    if data.get("command"):
        details.append(f"command `{data['command']}`")
    if details:
        out += ["", "Run details: " + "; ".join(details) + "."]
    return out + [""]


def study_section(summary: Optional[dict]) -> list[str]:
    out = ["## Accuracy study: does masked pre-training help when labels are scarce?", ""]
    if not summary:
        return out + ["_No study results (`bench/results/study/summary.json`); run `make bench`._", ""]
    s = summary["setup"]
    sch = s["schedule"]
    net = s["network"]
    seeds = len(s["seeds"])
    out += [
        "### Set-up",
        "",
        f"- **Data**: `slovenia_s2`, Sentinel-2 NDVI (1 band), {s['size_px'][0]} x {s['size_px'][1]} px at 10 m, "
        f"the {s['dates']} acquisitions of {s['years']} ({s['first_date']} .. {s['last_date']}; one season, to fit "
        f"the time budget: `--years all` uses all 68 dates of 2015-2017), s2cloudless masks "
        f"({s['cloudy_observations'] * 100:.0f} % of observations cloudy or nodata). Labels: {s['fields']} land-use "
        f"polygons with a pixel (`LULC_NAME`), classes and labelled pixels: "
        + ", ".join(f"{k} {v}" for k, v in s["class_pixels"].items()) + ".",
        f"- **Splits** by field with `engine.data.split_fields` (stratified by class, seeded): "
        f"{s['val_fraction'] * 100:g} % validation, {s['test_fraction'] * 100:g} % test fields, the rest for "
        f"training, of which a label fraction of {', '.join(f'{f * 100:g} %' for f in s['fractions'])} is used "
        f"(a smaller fraction keeps a subset of the fields of a larger one). Seeds {s['seeds']}: within a seed all "
        "methods and fractions share the same test and validation fields.",
        f"- **Metrics** on every labelled pixel of the test fields (`engine.evaluation`): OA, mIoU and macro-F1, "
        f"mIoU and F1 averaged over the classes present in the test reference. Mean ± sample std over {seeds} seeds.",
        f"- **Networks** (`engine.model.make_config('lite', ..., **overrides)`): {json.dumps({k: v for k, v in net.items() if k != 'preset'})}. "
        f"Fine-tuning (`engine.training.finetune`): {sch['epochs']} epochs x {sch['steps_per_epoch']} steps, "
        f"batch {sch['batch_size']} crops of {sch['crop']} x {sch['crop']} px around labelled pixels, Adam lr "
        f"{sch['lr']:g}, inverse-frequency class weights, the epoch with the best validation mIoU kept. Maps by "
        f"`engine.inference.predict_array` over the whole raster (tiles of {sch['crop']} px, overlap "
        f"{sch['crop'] // 4}).",
        f"- **STCLN_wp**: `engine.training.pretrain` with spatiotemporal masking (ratio {sch['mask_ratio']:g}) on "
        f"every pixel of the series, no labels: {sch['pretrain_epochs']} epochs x {sch['pretrain_steps']} steps, "
        f"batch {sch['pretrain_batch_size']} crops of {sch['pretrain_crop']} px, lr {sch['pretrain_lr']:g}; "
        + ("pre-trained once per seed" if s["pretrain_per_seed"] else
           "pre-trained **once** (seed 0) per pre-training variant and reused for every seed and fraction "
           "(pre-training sees no labels, so it does not depend on the split)")
        + ", then fine-tuned exactly as STCLN from scratch.",
        f"- **Random Forest** (scikit-learn, as dzetsaka and the SCP plugin): one sample per labelled pixel, features "
        f"= the normalised NDVI of every date (0 where cloudy, as the networks see it) plus the valid flag of every "
        f"date; {sch['rf_trees']} trees, balanced class weights, `max_features` x `min_samples_leaf` grid chosen on "
        "the validation fields' mIoU (the networks likewise keep their best validation epoch).",
        "- **Per-pixel Transformer**: STCLN without the spatial branch (1x1 per-pixel embedding, no STA; same "
        "temporal encoder, max-pool, head, training loop and budget).",
        f"- Budget: the run and pre-training times add up to {summary['seconds'] / 60:.0f} min on the "
        f"machine below ({s['threads']} torch thread(s) per process"
        + (", the ablations in a second process alongside the main comparison" if summary.get("merged_from") else "")
        + "; the machine was shared with other work, so times are indicative).",
        "",
        "### Results",
        "",
    ]
    for metric, title in (("miou", "mIoU (%)"), ("oa", "Overall accuracy (%)"), ("macro_f1", "Macro F1 (%)"),
                          ("field_oa", "Field-level accuracy (%): each test parcel from its pixels' mean probability")):
        fractions = [f"{f:g}" for f in s["fractions"]]
        out += [f"**{title}**, test fields, mean ± std over seeds", "",
                "| method | " + " | ".join(f"{float(f) * 100:g} % of fields" for f in fractions) + " |",
                "|---|" + "---:|" * len(fractions)]
        for method, by_fraction in summary["main"].items():
            out.append(f"| {label(method)} | " + " | ".join(pm((by_fraction.get(f) or {}).get(metric)) for f in fractions) + " |")
        out.append("")
    out += ["Training fields and labelled training pixels per fraction (mean over seeds): " + "; ".join(
        f"{float(f) * 100:g} %: {v['train_fields']['mean']:.0f} fields, {v['train_pixels']['mean']:.0f} px"
        for f, v in summary["main"]["stcln"].items() if v) + ".", ""]
    out += ["![mIoU against label fraction](img/study_miou.png)", "", "![OA against label fraction](img/study_oa.png)", ""]
    out += ["### Ablations of STCLN_wp", "", f"At {s['ablation_fraction'] * 100:g} % of the training fields, same seeds "
            "and splits. Each variant changes one thing against the reference; a masking or encoding variant is "
            "pre-trained with that setting, and 'cloud mask ignored' reads the series without the masks (cloudy "
            "NDVI counted as observations, in pre-training, fine-tuning and prediction); 'STA off' fine-tunes "
            "from the reference's pre-trained backbone.", "",
            "| variant | mIoU (%) | OA (%) | macro F1 (%) |", "|---|---:|---:|---:|"]
    names = {"reference": "STCLN_wp reference: spatiotemporal masking, STA on, date encoding, cloud mask used",
             "scratch": "STCLN from scratch (no pre-training)"}
    for name, v in summary["ablations"].items():
        if v:
            out.append(f"| {names.get(name, label(name))} | {pm(v['miou'])} | {pm(v['oa'])} | {pm(v['macro_f1'])} |")
    out += ["", "![Ablations](img/study_ablations.png)", ""]
    out += findings(summary)
    out += budget_check(summary, read_json(RESULTS / "study_short" / "summary.json"))
    out += caveats(summary)
    if summary.get("pretraining"):
        out += ["", "Pre-training runs (reconstruction MSE on masked valid observations, first -> last epoch):", ""]
        for name, p in summary["pretraining"].items():
            h = p["history"]
            out.append(f"- {name}: {h[0]['loss']:.4f} -> {h[-1]['loss']:.4f} in {p['seconds']:.0f} s")
    per_class = per_class_table(summary)
    if per_class:
        out += ["", *per_class]
    return out + [""]


def label(name: str) -> str:
    from plots import LABELS

    return LABELS.get(name, name)


def per_class_table(summary: dict) -> list[str]:
    """Per-class test IoU at 100 % of the fields, mean over seeds (shows which classes carry the mIoU)."""
    runs = [r for r in summary.get("runs", []) if r["fraction"] == 1.0 and r["method"] in summary["main"]]
    if not runs:
        return []
    classes = summary["setup"]["classes"]
    out = ["Per-class test IoU (%) at 100 % of the training fields, mean over seeds (– where the class had no test "
           "pixel in any seed):", "", "| method | " + " | ".join(classes) + " |", "|---|" + "---:|" * len(classes)]
    for method in summary["main"]:
        mine = [r for r in runs if r["method"] == method]
        cells = []
        for c in classes:
            values = [r["per_class_iou"][c] or 0.0 for r in mine if c in r["per_class_iou"]]
            cells.append(f"{100 * sum(values) / len(values):.1f}" if values else "–")
        out.append(f"| {label(method)} | " + " | ".join(cells) + " |")
    return out


def findings(summary: dict) -> list[str]:
    """What the numbers say, computed from them (the difference in mean mIoU and whether it exceeds the spread)."""
    main = summary["main"]
    out = ["### What the numbers say", ""]
    for f, wp in main["stcln_wp"].items():
        scratch = main["stcln"].get(f)
        if not (wp and scratch):
            continue
        diffs = [a - b for a, b in zip(wp["miou"]["values"], scratch["miou"]["values"])]
        mean = sum(diffs) / len(diffs)
        wins, losses = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
        if wins == losses == 0:
            verdict = "changes nothing (the same test scores in every seed)"
        elif wins == len(diffs):
            verdict = "helps"
        elif losses == len(diffs):
            verdict = "hurts"
        else:
            verdict = "is within the seed-to-seed spread"
        out.append(f"- {float(f) * 100:g} % of fields: pre-training {verdict}: STCLN_wp - STCLN = {mean * 100:+.1f} "
                   f"mIoU points on average, better in {wins} of {len(diffs)} seeds.")
    best = {}
    for f in next(iter(main.values())):
        scored = [(v[f]["miou"]["mean"], m) for m, v in main.items() if v.get(f)]
        if scored:
            best[f] = max(scored)
    if best:
        out.append("- Best mean mIoU per fraction: " + "; ".join(
            f"{float(f) * 100:g} %: {label(m)} ({v * 100:.1f})" for f, (v, m) in best.items()) + ".")
    ref = summary["ablations"].get("reference")
    if ref:
        parts = []
        for name, v in summary["ablations"].items():
            if name == "reference" or not v:
                continue
            diffs = [a - b for a, b in zip(v["miou"]["values"], ref["miou"]["values"])]
            worse = sum(d < 0 for d in diffs)
            parts.append(f"{label(name)} {sum(diffs) / len(diffs) * 100:+.1f} (below the reference in {worse} of "
                         f"{len(diffs)} seeds)")
        out.append(f"- Ablations, mIoU points against the STCLN_wp reference at "
                   f"{summary['setup']['ablation_fraction'] * 100:g} %: " + "; ".join(parts) + ".")
    collapsed = single_class_runs(summary)
    if collapsed:
        out.append("- Runs whose map of the test fields holds a single class (the network fell back to one class): "
                   + "; ".join(f"{label(m)} {n} of {total}" for m, (n, total) in collapsed.items()) + ".")
    return out + [""]


def single_class_runs(summary: dict) -> dict[str, tuple[int, int]]:
    """Per method (main comparison and ablations): runs whose test predictions use one class only, and all runs."""
    out: dict[str, tuple[int, int]] = {}
    for r in summary.get("runs", []):
        columns = [sum(row[j] for row in r["confusion_matrix"]) for j in range(len(r["confusion_matrix"]))]
        n, total = out.get(r["method"], (0, 0))
        out[r["method"]] = (n + (sum(c > 0 for c in columns) <= 1), total + 1)
    order = list(summary["main"]) + list(summary["ablations"])
    return {m: out[m] for m in sorted(out, key=lambda m: order.index(m) if m in order else len(order))}


def budget_check(summary: dict, short: Optional[dict]) -> list[str]:
    """The same study with a tenth of the training steps (kept from an earlier run), to show what the budget buys."""
    if not short:
        return []
    a, b = summary["setup"]["schedule"], short["setup"]["schedule"]
    out = ["### What the training budget buys", "",
           f"The same study (same seeds, splits and networks) run earlier with {b['epochs']} x {b['steps_per_epoch']} "
           f"fine-tuning steps and {b['pretrain_epochs']} x {b['pretrain_steps']} pre-training steps, against "
           f"{a['epochs']} x {a['steps_per_epoch']} and {a['pretrain_epochs']} x {a['pretrain_steps']} above "
           f"(results in `bench/results/study_short/`; its run times add up to {short['seconds'] / 60:.0f} min, "
           f"with {short['setup']['threads']} torch threads per process while the machine's load was 8 to 10: an epoch "
           "took 15 to 80 times longer than on the quieter machine later; we suspect two threads spin-waiting for a "
           "busy core, hence 1 thread now). The short run also predates the cap on class weights, so its networks "
           "differ in that too. Test mIoU (%), mean over seeds, short -> full budget:", "",
           "| method | " + " | ".join(f"{f * 100:g} %" for f in summary["setup"]["fractions"]) + " |",
           "|---|" + "---:|" * len(summary["setup"]["fractions"])]
    for method, by_fraction in summary["main"].items():
        cells = []
        for f in summary["setup"]["fractions"]:
            new, old = by_fraction.get(f"{f:g}"), short["main"].get(method, {}).get(f"{f:g}")
            cells.append(f"{old['miou']['mean'] * 100:.1f} -> {new['miou']['mean'] * 100:.1f}" if new and old else "–")
        out.append(f"| {label(method)} | " + " | ".join(cells) + " |")
    collapsed = single_class_runs(short)
    if collapsed:
        out += ["", "With the short budget, runs mapping the test fields as one class: " + "; ".join(
            f"{label(m)} {n} of {t}" for m, (n, t) in collapsed.items()) + "."]
    return out + [""]


def caveats(summary: dict) -> list[str]:
    """Why these numbers may not carry over (facts of the set-up, stated whatever the results)."""
    s = summary["setup"]
    sch = s["schedule"]
    pixels = s["size_px"][0] * s["size_px"][1]
    smallest = min(s["class_pixels"].items(), key=lambda kv: kv[1])
    steps = sch["epochs"] * sch["steps_per_epoch"]
    pre_steps = sch["pretrain_epochs"] * sch["pretrain_steps"]
    return [
        "### Why this is weak evidence either way",
        "",
        f"- **The unlabelled pool is tiny.** Masked pre-training is meant for much more unlabelled imagery than "
        f"labels. Here the unlabelled series is the same {pixels:,} pixels x {s['dates']} dates x "
        f"{len(s['bands'])} band(s) that hold the labels (pre-training sees the test fields' imagery, never their "
        "labels), and one NDVI band gives the reconstruction task little to learn from. Whatever pre-training "
        "does here says little about a large area.",
        f"- **Pre-training is also extra training.** STCLN_wp's backbone gets {pre_steps} pre-training steps on top "
        f"of the {steps} fine-tuning steps that STCLN from scratch gets, and the networks are budget-limited (see "
        "'What the training budget buys'). Part of any gain may come from the extra optimisation, not from the "
        "masked-reconstruction task itself; a from-scratch run with as many steps in all was not made.",
        "- **At 10 % of the fields** there are about 7 training fields (one or two per class), too few for "
        "either STCLN variant; the per-pixel Transformer, with fewer parameters to fit and no spatial context to "
        "learn, does best there.",
        f"- **The budget is small.** To fit all {len(s['seeds']) * len(s['fractions']) * 4} main runs and the "
        f"ablations into the 60-minute CPU budget of a shared 2-core machine, each network is fine-tuned for {steps} "
        f"steps of {sch['batch_size']} crops ({steps * sch['batch_size'] * sch['crop'] ** 2:,} crop pixels) and "
        f"pre-trained for {pre_steps} steps, with a network far smaller than the `lite` preset. The networks are "
        "likely under-trained; the Random Forest trains to completion in seconds. The comparison is fair in inputs "
        "and model selection, not in how far each method is from convergence.",
        f"- **The labels are land use, few and very unequal.** The classes are not crops; '{smallest[0]}' has "
        f"{smallest[1]} labelled pixels in all. A seed's test split holds about 15 fields, and a single large "
        "forest or grassland field can hold most of its pixels, so OA swings with the split; mIoU and macro-F1 "
        "are averaged over the classes present in each test split, so a class with a handful of test pixels "
        "weighs as much in them as forest.",
        "- Within a seed, every method sees the same fields, so the paired differences (above) are more telling "
        "than the overlapping ± ranges.",
    ] + ([
        "- **Networks that fall back to one class.** Fine-tuning uses the engine's default inverse-frequency class "
        "weights (capped at 20 times the smallest since this study's first run, where uncapped weights of classes "
        "with a few dozen training pixels made many short runs collapse); a short schedule can still end with a "
        "network that maps everything as one class, and the best-validation-epoch rule then keeps it when no epoch "
        "does better. The Random Forest (balanced class weights too) does not show this.",
    ] if any(n for n, _ in single_class_runs(summary).values()) else []) + [""]


def write_report(info: dict, study_dir: Path, path: Path) -> Path:
    """The report at ``path`` (plots in ``img/`` beside it) from the results in ``bench/results``."""
    summary = read_json(study_dir / "summary.json")
    throughput = read_json(RESULTS / "throughput.json")
    img = path.parent / "img"
    if summary:
        from plots import ablation_bars, metric_vs_fraction

        metric_vs_fraction(summary, "miou", img / "study_miou.png")
        metric_vs_fraction(summary, "oa", img / "study_oa.png")
        if any(summary["ablations"].values()):
            ablation_bars(summary, img / "study_ablations.png")
    lines = [
        "# CropMapper benchmarks",
        "",
        f"Written by `make bench` (`bench/run_all.py`) on {dt.date.today().isoformat()}. Every number below comes "
        "from the result files in `bench/results/` that these commands write; rerun them to reproduce.",
        "",
        "## Machine",
        "",
        f"- CPU: {info.get('cpu', '?')}, {info.get('cpus', '?')} logical CPUs ({info.get('threads_per_core', '?')} "
        f"threads per core), AVX-512: {'yes' if info.get('avx512') else 'no'}, AMX: {'yes' if info.get('amx') else 'no'}"
        + (f", {info['memory_gib']} GiB memory" if "memory_gib" in info else ""),
        f"- Python {info['python']}, torch {info.get('torch', '?')}, {info['platform']}",
        "- The machine is shared with other work while these ran: timings are medians of repeats where repeated, "
        "and the study's run times are indicative only.",
        "",
        "## Commands",
        "",
        "```",
        "make bench                                  # = .venv/bin/python bench/run_all.py",
        ".venv/bin/python bench/throughput.py --json bench/results/throughput.json",
        ".venv/bin/python bench/memory.py --markdown docs/BENCHMARKS_memory.md",
        ".venv/bin/python bench/training.py --json bench/results/training.json",
        ".venv/bin/python bench/time_to_map.py --json bench/results/time_to_map.json",
        ".venv/bin/python bench/study.py --seeds 3 --out bench/results/study --json bench/results/study.json",
        "# as run for the numbers below: the main comparison and the ablations side by side, then merged",
        ".venv/bin/python bench/study.py --seeds 3 --no-ablations --out bench/results/study &",
        ".venv/bin/python bench/study.py --seeds 3 --methods none --out bench/results/study_abl &",
        ".venv/bin/python bench/study.py --seeds 3 --out bench/results/study --json bench/results/study.json "
        "--merge bench/results/study_abl",
        "# the short-budget comparison run (its ablations likewise in a second process, merged with --merge)",
        ".venv/bin/python bench/study.py --seeds 3 --epochs 2 --steps 15 --pretrain-epochs 3 --pretrain-steps 10 "
        "--threads 2 --out bench/results/study_short",
        ".venv/bin/python bench/gpu.py --json bench/results/gpu.json   # on a CUDA machine (section below)",
        ".venv/bin/python bench/run_all.py --report-only   # rewrite this page from bench/results/",
        "```",
        "",
        *study_section(summary),
        *(throughput_section(throughput) if throughput or not (DOCS / "BENCHMARKS_throughput.md").exists()
          else ["## CPU inference throughput", ""]),
        *included(DOCS / "BENCHMARKS_throughput.md"),
        "## Memory against raster size",
        "",
        *included(DOCS / "BENCHMARKS_memory.md"),
        "## CPU training and time to a map",
        "",
        *included(DOCS / "BENCHMARKS_training.md"),
        "## GPU",
        "",
        *included(DOCS / "BENCHMARKS_gpu.md"),
        "## Labelling loop",
        "",
        *included(DOCS / "BENCHMARKS_labelling.md"),
    ]
    path.write_text("\n".join(lines).rstrip() + "\n")
    print(f"wrote {path}", flush=True)
    return path


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short benchmarks and a 1-seed study (smoke test)")
    parser.add_argument("--skip-study", action="store_true", help="do not run the accuracy study")
    parser.add_argument("--skip-throughput", action="store_true", help="do not run bench/throughput.py")
    parser.add_argument("--skip-memory", action="store_true", help="do not run bench/memory.py")
    parser.add_argument("--skip-training", action="store_true",
                        help="do not run bench/training.py and bench/time_to_map.py")
    parser.add_argument("--report-only", action="store_true", help="only rewrite docs/BENCHMARKS.md from results")
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    info = machine()
    (RESULTS / "machine.json").write_text(json.dumps(info, indent=1))
    ok = True
    if not args.report_only:
        if not args.skip_throughput:
            ok &= run([PY, "bench/throughput.py", "--json", str(RESULTS / "throughput.json")]
                      + (["--quick"] if args.quick else []), "CPU throughput")
        memory = ROOT / "bench" / "memory.py"
        if args.skip_memory:
            pass
        elif memory.exists():
            ok &= run([PY, "bench/memory.py", "--markdown", str(DOCS / "BENCHMARKS_memory.md")]
                      + (["--sizes", "256", "512"] if args.quick else []), "memory scaling")
        else:
            print("== memory scaling: bench/memory.py is missing, skipped", flush=True)
        if not args.skip_training:
            ok &= run([PY, "bench/training.py", "--json", str(RESULTS / "training.json")]
                      + (["--quick"] if args.quick else []), "CPU training speed")
            ok &= run([PY, "bench/time_to_map.py", "--json", str(RESULTS / "time_to_map.json")]
                      + (["--quick"] if args.quick else []), "time to a crop map")
        if not args.skip_study:
            study_out = RESULTS / ("study_quick" if args.quick else "study")
            # The published section describes the Slovenia study; the Herault crop study is run on its own for now.
            ok &= run([PY, "bench/study.py", "--dataset", "slovenia", "--seeds", "3", "--out", str(study_out),
                       "--json", str(RESULTS / "study.json")]
                      + (["--quick"] if args.quick else []), "accuracy study")
    if args.quick:  # a smoke test does not overwrite the published page
        write_report(info, RESULTS / "study_quick", RESULTS / "BENCHMARKS_quick.md")
    else:
        write_report(info, RESULTS / "study", DOCS / "BENCHMARKS.md")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
