"""Simulated labelling loop on real crop types: fields suggested by ``engine.suggest`` vs fields picked at random,
and the effect of Bayesian smoothing on the final maps.

Data: ``../shared/data/herault_s2_l2a`` (9 dates, 10 bands, SCL masks, 120 declared parcels, class ``EC_hcat_n``).
Per seed the fields are split once (``engine.data.split_fields``, 20 % validation, 20 % test, by field); the loop
starts from 10 % of the training fields (drawn at random) and adds 5 fields per round for 4 rounds, either the top 5
of ``engine.suggest.rank_for_labelling`` on the model's field-averaged probabilities over the remaining training
fields (their labels unseen), or 5 drawn at random. Both loops share the start and the test fields. After every
round: a fresh model (``lite`` preset, small step budget) is trained and mapped; pixel and field mIoU on the test
fields. The final maps are scored again after ``engine.inference.smoothing`` (plain and within parcels).

    python bench/labelling_loop.py --seeds 3 --out bench/results/labelling_loop
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from study import DATASETS, Data, Schedule, load_data, make_scenes, positions_for, score  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "herault_s2_l2a"
START_FRACTION, PER_ROUND, ROUNDS = 0.10, 5, 4
SCHEDULE = Schedule(size="lite", crop=16, batch_size=8, epochs=2, steps_per_epoch=10, lr=1e-3, val_window=24)


def log(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {message}", flush=True)


def train_and_map(data: Data, split, seed: int) -> np.ndarray:
    """Class probabilities (K, H, W) of the whole raster from a model fine-tuned on ``split.train``."""
    from engine.bundle import ModelBundle
    from engine.inference import predict_array
    from engine.model import make_config, season_start_for
    from engine.training import finetune

    positions = positions_for(data, "date")
    train, val = make_scenes(data, split, positions, margin=SCHEDULE.crop // 2, cap=SCHEDULE.val_window)
    config = make_config("lite", len(data.band_names), len(data.classes))
    s = SCHEDULE
    result = finetune(train, val, config, epochs=s.epochs, crop=s.crop, batch_size=s.batch_size,
                      steps_per_epoch=s.steps_per_epoch, lr=s.lr, class_weights=True, seed=seed, device="cpu")
    bundle = ModelBundle(config=config, state_dict=result.state_dict, band_names=data.band_names,
                         mean=[float(v) for v in data.mean], std=[float(v) for v in data.std],
                         date_encoding={"mode": "date", "season_start": list(season_start_for(data.dates))},
                         classes=data.classes, kind="classifier")
    return predict_array(bundle, data.x, data.dates, data.valid, tile=32, overlap=8, batch_size=16, device="cpu")


def field_means(data: Data, probs: np.ndarray, ids: list[int]) -> np.ndarray:
    """(len(ids), K) class probabilities averaged over each field's mapped pixels."""
    k = probs.shape[0]
    size = int(data.field_ids.max()) + 1
    flat = data.field_ids.ravel()
    mapped = probs.max(0).ravel() > 0
    counts = np.bincount(flat[mapped], minlength=size)
    sums = np.stack([np.bincount(flat[mapped], weights=probs[c].ravel()[mapped], minlength=size) for c in range(k)], 1)
    return sums[ids] / np.maximum(counts[ids], 1)[:, None]


def field_miou(data: Data, split, probs: np.ndarray) -> float:
    """mIoU over test fields (one vote per field: the class of its highest mean probability), classes present."""
    from engine.evaluation import confusion_matrix

    ids = list(split.test)
    predicted = field_means(data, probs, ids).argmax(1) + 1
    truth = np.array([data.field_classes[i] for i in ids])
    cm = confusion_matrix(truth, predicted, len(data.classes)).astype(float)
    present = cm.sum(1) > 0
    iou = np.diag(cm) / np.maximum(cm.sum(0) + cm.sum(1) - np.diag(cm), 1)
    return float(iou[present].mean())


def centroids(data: Data, ids: list[int]) -> np.ndarray:
    return np.array([np.argwhere(data.field_ids == i).mean(0)[::-1] for i in ids])


def suggest_next(data: Data, probs: np.ndarray, pool: list[int]) -> list[int]:
    from engine.inference.uncertainty import normalised_entropy
    from engine.suggest import rank_for_labelling

    means = field_means(data, probs, pool)
    picks = rank_for_labelling(normalised_entropy(means.T), means.argmax(1), centroids(data, pool), PER_ROUND)
    return [pool[i] for i in picks]


def scores(data: Data, split, probs: np.ndarray) -> dict[str, float]:
    predicted = np.where(probs.max(0) > 0, probs.argmax(0) + 1, 0)
    return {"pixel_miou": score(data, split, predicted)["miou"], "field_miou": field_miou(data, split, probs)}


def run_seed(data: Data, seed: int, record) -> None:
    """Both loops of one seed, round by round (suggested and random side by side, so a cut-short run compares
    them at the same rounds); ``record(dict)`` gets one line per (strategy, round) and per final smoothing."""
    from engine.data import split_fields
    from engine.inference.smoothing import SmoothingOptions, bayesian_smooth

    base = split_fields(data.field_classes, 0.2, 0.2, 1.0, seed)
    rng = np.random.default_rng(1000 + seed)
    pool_all = list(base.train)
    start = sorted(rng.choice(pool_all, max(1, round(START_FRACTION * len(pool_all))), replace=False).tolist())
    labelled = {"suggested": list(start), "random": list(start)}
    probs: dict[str, np.ndarray] = {}
    for round_ in range(ROUNDS + 1):
        for strategy in ("suggested", "random"):
            split = SimpleNamespace(train=labelled[strategy], val=list(base.val), test=list(base.test))
            began = time.perf_counter()
            if round_ == 0 and strategy == "random":
                probs[strategy] = probs["suggested"]  # the same start
            else:
                probs[strategy] = train_and_map(data, split, seed)
            result = {"kind": "round", "seed": seed, "strategy": strategy, "round": round_,
                      "fields": len(labelled[strategy]), **scores(data, split, probs[strategy]),
                      "seconds": round(time.perf_counter() - began, 1), "train_pool": len(pool_all),
                      "val": len(base.val), "test": len(base.test), "added": None}
            if round_ < ROUNDS:
                pool = [f for f in pool_all if f not in labelled[strategy]]
                if strategy == "suggested":
                    added = suggest_next(data, probs[strategy], pool)
                else:
                    added = rng.choice(pool, min(PER_ROUND, len(pool)), replace=False).tolist()
                result["added"] = [int(f) for f in added]
                labelled[strategy] = labelled[strategy] + [int(f) for f in added]
            record(result)
            log(f"seed {seed} {strategy} round {round_}: {result['fields']} fields, pixel mIoU "
                f"{result['pixel_miou']:.3f}, field mIoU {result['field_miou']:.3f} ({result['seconds']} s)")
    for strategy in ("suggested", "random"):
        split = SimpleNamespace(train=labelled[strategy], val=list(base.val), test=list(base.test))
        line = {"kind": "smoothing", "seed": seed, "strategy": strategy, "none": scores(data, split, probs[strategy])}
        for name, options, parcels in (("plain", SmoothingOptions(), None),
                                       ("by_parcel", SmoothingOptions(by_parcel=True), data.field_ids)):
            began = time.perf_counter()
            smoothed = bayesian_smooth(probs[strategy], options, parcels)
            line[name] = {**scores(data, split, smoothed), "seconds": round(time.perf_counter() - began, 2)}
        record(line)
        log(f"seed {seed} {strategy} final, smoothing: {json.dumps(line)}")


def summarise(lines: list[dict]) -> dict[str, Any]:
    """Mean and sample std over the seeds that finished each round (their number is given)."""
    def stats(values):
        return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                "n": len(values)}

    rounds = [r for r in lines if r.get("kind") == "round"]
    summary: dict[str, Any] = {}
    for strategy in ("suggested", "random"):
        summary[strategy] = []
        for round_ in range(ROUNDS + 1):
            found = [r for r in rounds if r["strategy"] == strategy and r["round"] == round_]
            if found:
                summary[strategy].append({"round": round_, "fields": stats([r["fields"] for r in found]),
                                          "pixel_miou": stats([r["pixel_miou"] for r in found]),
                                          "field_miou": stats([r["field_miou"] for r in found]),
                                          "seeds": sorted(r["seed"] for r in found)})
        smooth = [r for r in lines if r.get("kind") == "smoothing" and r["strategy"] == strategy]
        if smooth:
            summary[f"{strategy}_smoothing"] = {
                name: {m: stats([r[name][m] for r in smooth]) for m in ("pixel_miou", "field_miou")}
                for name in ("none", "plain", "by_parcel")}
    done_random = [r for r in summary["random"] if r["round"] == ROUNDS]
    if done_random:
        target = done_random[0]["pixel_miou"]["mean"]
        reached = [r for r in summary["suggested"] if r["pixel_miou"]["mean"] >= target]
        summary["target"] = {"random_final_pixel_miou": target,
                             "suggested_first_round_reaching_it": reached[0]["round"] if reached else None,
                             "added_fields_needed": reached[0]["round"] * PER_ROUND if reached else None,
                             "added_fields_random": ROUNDS * PER_ROUND}
    return summary


def markdown(summary: dict[str, Any]) -> str:
    """The tables of docs/BENCHMARKS.md: mIoU per round for both loops, and the smoothing of the final maps."""
    def cell(stat):
        return f"{stat['mean']:.3f} +- {stat['std']:.3f} (n={stat['n']})"

    lines = ["| round | fields (mean) | suggested: pixel mIoU | random: pixel mIoU | suggested: field mIoU | "
             "random: field mIoU |", "|---|---|---|---|---|---|"]
    by_round = {s: {r["round"]: r for r in summary[s]} for s in ("suggested", "random")}
    for round_ in range(ROUNDS + 1):
        sug, ran = by_round["suggested"].get(round_), by_round["random"].get(round_)
        if sug is None and ran is None:
            continue
        fields = (sug or ran)["fields"]["mean"]
        lines.append(f"| {round_} | {fields:.1f} | {cell(sug['pixel_miou']) if sug else '-'} | "
                     f"{cell(ran['pixel_miou']) if ran else '-'} | {cell(sug['field_miou']) if sug else '-'} | "
                     f"{cell(ran['field_miou']) if ran else '-'} |")
    for strategy in ("suggested", "random"):
        smooth = summary.get(f"{strategy}_smoothing")
        if smooth:
            lines += ["", f"Final maps of the {strategy} loop:", "", "| smoothing | pixel mIoU | field mIoU |",
                      "|---|---|---|"]
            lines += [f"| {name} | {cell(v['pixel_miou'])} | {cell(v['field_miou'])} |" for name, v in smooth.items()]
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=SCHEDULE.epochs, help="fine-tuning epochs per round")
    parser.add_argument("--steps", type=int, default=SCHEDULE.steps_per_epoch, help="steps per epoch")
    parser.add_argument("--summarise", action="store_true", help="only summarise the runs already in OUT/runs.jsonl")
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "labelling_loop"))
    args = parser.parse_args(argv)
    if not Path(args.data).is_dir():
        print(f"The data folder '{args.data}' does not exist: give --data.", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    SCHEDULE.epochs, SCHEDULE.steps_per_epoch = args.epochs, args.steps
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.summarise:
        args.seeds = 0
    data = load_data(DATASETS["herault"], Path(args.data), None) if args.seeds else None
    if data is not None:
        log(f"{len(data.dates)} dates, {data.labels.shape[1]}x{data.labels.shape[0]} px, {len(data.field_classes)} "
            f"fields, classes {data.classes.names}, invalid {data.cloud_fraction:.0%}")
    runs_path = out / "runs.jsonl"

    def read_lines() -> list[dict]:
        return [json.loads(line) for line in runs_path.read_text().splitlines() if line.strip()] \
            if runs_path.exists() else []

    def record(line: dict) -> None:
        with runs_path.open("a") as handle:
            handle.write(json.dumps(line) + "\n")

    done = {r["seed"] for r in read_lines() if r.get("kind") == "smoothing"}
    started = time.perf_counter()
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        if seed not in done:
            run_seed(data, seed, record)
    chosen = read_lines()
    summary = summarise(chosen)
    summary["setup"] = {"schedule": SCHEDULE.__dict__, "preset": "lite", "start_fraction": START_FRACTION,
                        "per_round": PER_ROUND, "rounds": ROUNDS, "seeds": sorted({r["seed"] for r in chosen}),
                        "threads": args.threads,
                        "seconds": round(time.perf_counter() - started, 1)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    log(f"done -> {out / 'summary.json'}: {json.dumps(summary.get('target'))}")
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
