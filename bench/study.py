"""Accuracy study on real data: STCLN, STCLN_wp (masked pre-training), a pixel-wise Random Forest and a per-pixel
temporal Transformer, over seeds and training-label fractions, plus ablations of STCLN_wp.

Data: ``/work/shared/data/slovenia_s2`` (or ``--data``): NDVI per date with s2cloudless masks, land-use polygons
(``LULC_NAME``). Splits are by field (``engine.data.split_fields``: stratified by class, seeded); within a seed every
method and fraction is tested on the same test fields, and a smaller label fraction keeps a subset of the training
fields of a larger one. Everything goes through the engine (reading, normalising, rasterising, splitting, training,
tiled prediction, metrics).

Each finished run is appended to ``OUT/runs.jsonl`` at once, and runs already there are skipped, so an interrupted
study continues where it stopped. ``OUT/summary.json`` (and ``--json``) holds mean +- std over seeds.

    python bench/study.py --quick                # a few minutes: 1 seed, 2 fractions, short schedules
    python bench/study.py --seeds 3 --out bench/results/study --json bench/results/study.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "slovenia_s2"
FRACTIONS = (0.10, 0.25, 0.50, 1.00)
ABLATION_FRACTION = 0.25
VAL_FRACTION = 0.2
TEST_FRACTION = 0.2
METHODS = ("rf", "pixel_transformer", "stcln", "stcln_wp")
ABLATIONS = ("mask_temporal", "mask_spatial", "sta_off", "index_encoding", "cloud_ignored")

# Network sizes (overrides of the ``lite`` preset). The study's budget (<= 60 min on a shared 2-core CPU, 12 runs
# per seed plus ablations) rules out the full ``lite`` network on 68 dates; ``micro`` is what fits.
SIZES: dict[str, dict[str, Any]] = {
    "micro": dict(spatial_channels=(8, 16), d_model=16, n_heads=2, n_layers=1, d_ff=32, sta_channels=8),
    "small": dict(spatial_channels=(16, 32), d_model=32, n_heads=4, n_layers=1, d_ff=64, sta_channels=8),
    "lite": {},
}


@dataclass
class Schedule:
    """Training budget of one study (stated in the report). Crops are small because the fields are (median about
    10 pixels) and every pixel of a crop costs the same whether labelled or not."""

    size: str = "micro"
    crop: int = 8
    batch_size: int = 16
    epochs: int = 10
    steps_per_epoch: int = 30
    lr: float = 2e-3
    pretrain_crop: int = 8
    pretrain_batch_size: int = 32
    pretrain_epochs: int = 10
    pretrain_steps: int = 30
    pretrain_lr: float = 2e-3
    mask_ratio: float = 0.4
    rf_trees: int = 200
    val_window: int = 24  # a validation field's window is at most this many pixels a side (the model choice only)


QUICK = Schedule(epochs=2, steps_per_epoch=3, pretrain_epochs=1, pretrain_steps=4, rf_trees=50)


def log(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {message}", flush=True)


# ---------------------------------------------------------------------------------------------------------------
# Data


@dataclass
class Data:
    """The whole (small) raster in memory: raw and normalised series, labels, fields, dates."""

    x: np.ndarray  # raw (T, C, H, W)
    valid: np.ndarray  # (T, H, W)
    xn: np.ndarray  # normalised, invalid 0
    mean: np.ndarray
    std: np.ndarray
    dates: list
    band_names: list[str]
    labels: np.ndarray  # (H, W) 0..K on the full grid
    field_ids: np.ndarray  # (H, W)
    field_classes: dict[int, int]
    classes: Any  # ClassTable
    pixel_area: float
    cloud_fraction: float  # invalid observations (clouds, nodata)


def series_files(data_dir: Path, years: Optional[set[int]]) -> tuple[list[str], list[str]]:
    """NDVI rasters and their cloud masks, optionally only those of ``years`` (from the file names)."""
    images = sorted(glob.glob(str(data_dir / "ndvi" / "*.tif")))
    masks = sorted(glob.glob(str(data_dir / "cloudmask" / "*.tif")))
    if years:
        def keep(path: str) -> bool:
            return int(Path(path).name.split("_")[1][:4]) in years
        images, masks = [p for p in images if keep(p)], [p for p in masks if keep(p)]
    return images, masks


def load_data(data_dir: Path, years: Optional[set[int]], use_clouds: bool = True) -> Data:
    """Reads the series (with or without the cloud masks) and rasterises the polygons, with the engine."""
    from engine.data import band_statistics, normalise, rasterize_fields
    from engine.pipeline import SeriesInput, open_series

    images, masks = series_files(data_dir, years)
    series = SeriesInput(images=images, cloud_masks=masks if use_clouds else None)
    with open_series(series) as ts:
        w, h = ts.grid.width, ts.grid.height
        x, valid = ts.read(0, 0, w, h)
        mean, std = band_statistics(ts, seed=0)
        fields = rasterize_fields(str(data_dir / "lulc_polygons.gpkg"), ts.grid, "LULC_NAME", layer="LULC")
        dates, bands, area = list(ts.dates), list(ts.band_names), ts.grid.pixel_area_m2
    labels = np.zeros((h, w), np.int64)
    field_ids = np.zeros((h, w), np.int32)
    x0, y0, fw, fh = fields.window
    labels[y0 : y0 + fh, x0 : x0 + fw] = fields.labels
    field_ids[y0 : y0 + fh, x0 : x0 + fw] = fields.field_ids
    return Data(
        x=x, valid=valid, xn=normalise(x, valid, mean, std), mean=mean, std=std, dates=dates, band_names=bands,
        labels=labels, field_ids=field_ids, field_classes=dict(fields.field_classes), classes=fields.classes,
        pixel_area=area, cloud_fraction=float(1.0 - valid.mean()),
    )


def positions_for(data: Data, encoding: str) -> np.ndarray:
    from engine.model import date_positions, season_start_for

    return date_positions(data.dates, season_start_for(data.dates), mode=encoding)


def field_windows(data: Data, ids: list[int], margin: int, cap: int) -> list[tuple[int, int, int, int, int]]:
    """``(field, y0, y1, x0, x1)``: each field's bounding box grown by ``margin`` pixels (its spatial context), at
    most ``cap`` pixels a side (centred on the field's middle pixel), so a large field does not dominate the cost."""
    h, w = data.labels.shape
    out = []
    for fid in ids:
        ys, xs = np.nonzero(data.field_ids == fid)
        if not len(ys):
            continue
        y0, y1 = max(0, ys.min() - margin), min(h, ys.max() + 1 + margin)
        x0, x1 = max(0, xs.min() - margin), min(w, xs.max() + 1 + margin)
        cy, cx = int(np.median(ys)), int(np.median(xs))
        if y1 - y0 > cap:
            y0 = min(max(0, cy - cap // 2), h - cap)
            y1 = y0 + cap
        if x1 - x0 > cap:
            x0 = min(max(0, cx - cap // 2), w - cap)
            x1 = x0 + cap
        out.append((fid, y0, y1, x0, x1))
    return out


def make_scenes(data: Data, split, positions: np.ndarray, margin: int, cap: int):
    """The training scene (the whole raster, labels of the training fields only) and one validation scene per
    validation field (its box plus ``margin``, capped, labels of that field only)."""
    from engine.training import Scene

    train_labels = np.where(np.isin(data.field_ids, split.train), data.labels, 0)
    train = [Scene(data.xn, data.valid, positions, train_labels, data.field_ids)]
    val = []
    for fid, y0, y1, x0, x1 in field_windows(data, list(split.val), margin, cap):
        ids = data.field_ids[y0:y1, x0:x1]
        val.append(Scene(data.xn[:, :, y0:y1, x0:x1], data.valid[:, y0:y1, x0:x1], positions,
                         np.where(ids == fid, data.labels[y0:y1, x0:x1], 0), ids))
    return train, val


# ---------------------------------------------------------------------------------------------------------------
# Scoring


def score(data: Data, split, predicted: np.ndarray) -> dict[str, Any]:
    """Engine metrics on the test fields' pixels (label 0 ignored); mIoU and macro-F1 over the classes present in
    the test reference (the engine's own means, over classes in the reference or the map, are kept too)."""
    from engine.evaluation import confusion_matrix, metrics_from_confusion

    test = np.isin(data.field_ids, split.test) & (data.labels > 0)
    k = len(data.classes)
    cm = confusion_matrix(data.labels[test], predicted[test], k)
    m = metrics_from_confusion(cm, data.classes, data.pixel_area)
    present = [c for c in m["per_class"] if c["support"] > 0]
    return {
        "oa": m["overall_accuracy"],
        "miou": float(np.mean([c["iou"] or 0.0 for c in present])),
        "macro_f1": float(np.mean([c["f1"] or 0.0 for c in present])),
        "kappa": m["kappa"],
        "engine_miou": m["miou"],
        "engine_macro_f1": m["macro_f1"],
        "test_pixels": int(test.sum()),
        "unmapped_test_pixels": int((predicted[test] == 0).sum()),
        "per_class_iou": {c["name"]: c["iou"] for c in present},
        "confusion_matrix": m["confusion_matrix"],
    }


def predict_map(bundle, data: Data, schedule: Schedule) -> np.ndarray:
    """Class map (0 where nothing was predicted) of the whole raster with the engine's tiled predictor."""
    from engine.inference import predict_array

    probs = predict_array(bundle, data.x, data.dates, data.valid, tile=schedule.crop, overlap=schedule.crop // 4,
                          batch_size=16, device="cpu")
    return np.where(probs.sum(0) > 0, probs.argmax(0) + 1, 0)


# ---------------------------------------------------------------------------------------------------------------
# Methods


def config_for(data: Data, schedule: Schedule, **overrides: Any):
    from engine.model import make_config

    return make_config("lite", len(data.band_names), len(data.classes), **{**SIZES[schedule.size], **overrides})


def run_pretrain(data: Data, schedule: Schedule, mask_mode: str, encoding: str, seed: int) -> dict:
    """Masked pre-training on every pixel of the series (no labels); returns the backbone state and history."""
    from engine.training import Scene, pretrain

    scene = Scene(data.xn, data.valid, positions_for(data, encoding))
    result = pretrain(
        [scene], config_for(data, schedule, date_encoding=encoding), epochs=schedule.pretrain_epochs,
        mask_ratio=schedule.mask_ratio, mask_mode=mask_mode, crop=schedule.pretrain_crop,
        batch_size=schedule.pretrain_batch_size,
        steps_per_epoch=schedule.pretrain_steps, lr=schedule.pretrain_lr, seed=seed, device="cpu",
    )
    return {"state": result.state_dict, "history": result.history}


def run_network(data: Data, split, schedule: Schedule, seed: int, *, pixel: bool = False,
                init_state: Optional[dict] = None, encoding: str = "date", use_sta: bool = True) -> dict[str, Any]:
    """Fine-tunes STCLN (or the per-pixel Transformer) with ``engine.training.finetune`` and scores the map."""
    from baselines import PixelTransformerBundle, make_pixel_transformer
    from engine.bundle import ModelBundle
    from engine.model import season_start_for
    from engine.training import finetune

    positions = positions_for(data, encoding)
    train, val = make_scenes(data, split, positions, margin=schedule.crop // 2, cap=schedule.val_window)
    config = config_for(data, schedule, date_encoding=encoding, use_sta=use_sta)
    result = finetune(
        train, val, config, init_state=init_state, epochs=schedule.epochs, crop=schedule.crop,
        batch_size=schedule.batch_size, steps_per_epoch=schedule.steps_per_epoch, lr=schedule.lr,
        class_weights=True, seed=seed, device="cpu", model_factory=make_pixel_transformer if pixel else None,
    )
    bundle_type = PixelTransformerBundle if pixel else ModelBundle
    bundle = bundle_type(
        config=config, state_dict=result.state_dict, band_names=data.band_names,
        mean=[float(v) for v in data.mean], std=[float(v) for v in data.std],
        date_encoding={"mode": encoding, "season_start": list(season_start_for(data.dates))},
        classes=data.classes, kind="classifier",
    )
    out = score(data, split, predict_map(bundle, data, schedule))
    out["best_epoch"] = result.best_epoch
    out["val_miou"] = result.val_metrics.get("miou")
    out["history"] = result.history
    return out


def run_forest(data: Data, split, schedule: Schedule, seed: int) -> dict[str, Any]:
    """Pixel-wise Random Forest on the same normalised series and valid mask, grid chosen on the validation fields."""
    from baselines import fit_random_forest, pixel_features

    features = pixel_features(data.xn, data.valid)
    flat_ids, flat_labels = data.field_ids.ravel(), data.labels.ravel()

    def pick(ids):
        where = np.isin(flat_ids, ids) & (flat_labels > 0)
        return features[where], flat_labels[where]

    (tx, ty), (vx, vy) = pick(split.train), pick(split.val)
    forest = fit_random_forest(tx, ty, vx, vy, len(data.classes), seed=seed, trees=schedule.rf_trees)
    test = np.isin(flat_ids, split.test) & (flat_labels > 0)
    predicted = np.zeros(flat_labels.shape, np.int64)
    predicted[test] = forest.model.predict(features[test])
    out = score(data, split, predicted.reshape(data.labels.shape))
    out["val_miou"] = forest.val_miou
    out["rf_params"] = forest.params
    out["rf_grid"] = forest.tried
    return out


# ---------------------------------------------------------------------------------------------------------------
# The study


def run_key(seed: int, fraction: float, method: str) -> str:
    return f"seed={seed} fraction={fraction:g} method={method}"


def load_runs(path: Path) -> dict[str, dict]:
    runs = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                runs[record["key"]] = record
    return runs


def append_run(path: Path, record: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def split_summary(data: Data, split) -> dict[str, Any]:
    def pixels(ids):
        return int((np.isin(data.field_ids, ids) & (data.labels > 0)).sum())

    return {name: {"fields": len(getattr(split, name)), "pixels": pixels(getattr(split, name))}
            for name in ("train", "val", "test")}


def study(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from engine.data import split_fields

    torch.set_num_threads(args.threads)
    schedule = QUICK if args.quick else Schedule()
    if args.size:
        schedule.size = args.size
    if args.epochs:
        schedule.epochs = args.epochs
    if args.steps:
        schedule.steps_per_epoch = args.steps
    if args.pretrain_epochs:
        schedule.pretrain_epochs = args.pretrain_epochs
    if args.pretrain_steps:
        schedule.pretrain_steps = args.pretrain_steps
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs_path = out / "runs.jsonl"
    runs = load_runs(runs_path)
    merged_pretraining: dict[str, Any] = {}
    for other in args.merge or []:
        # Runs made by another process of the same study (e.g. the ablations run alongside): taken as done.
        for key, record in load_runs(Path(other) / "runs.jsonl").items():
            if key not in runs:
                append_run(runs_path, record)
                runs[key] = record
        other_summary = Path(other) / "summary.json"
        if other_summary.exists():
            merged_pretraining.update(json.loads(other_summary.read_text()).get("pretraining", {}))
    years = None if args.years == "all" else {int(y) for y in args.years.split(",")}
    fractions = tuple(float(f) for f in args.fractions.split(","))
    seeds = list(range(args.seeds))
    ablations = () if args.no_ablations else ABLATIONS
    started = time.perf_counter()

    log(f"loading {args.data} (years {args.years})")
    data = load_data(Path(args.data), years)
    log(f"{len(data.dates)} dates {data.dates[0]}..{data.dates[-1]}, {data.labels.shape[1]}x{data.labels.shape[0]} px, "
        f"{len(data.field_classes)} fields, classes {data.classes.names}, cloudy {data.cloud_fraction:.0%}")
    cloudless: Optional[Data] = None

    pretrained: dict[tuple, dict] = {}
    pretrain_log: dict[str, Any] = {}

    def backbone(mode: str, encoding: str, clouds: bool, seed: int) -> dict:
        """Pre-trained once per variant (seed 0), or per seed with --pretrain-per-seed; cached in memory."""
        pseed = seed if args.pretrain_per_seed else 0
        key = (mode, encoding, clouds, pseed)
        if key not in pretrained:
            began = time.perf_counter()
            source = data if clouds else cloudless
            pretrained[key] = run_pretrain(source, schedule, mode, encoding, pseed)
            name = f"mask={mode} encoding={encoding} clouds={'used' if clouds else 'ignored'} seed={pseed}"
            pretrain_log[name] = {"seconds": round(time.perf_counter() - began, 1),
                                  "history": pretrained[key]["history"]}
            log(f"pre-trained {name} in {pretrain_log[name]['seconds']} s, "
                f"loss {pretrained[key]['history'][0]['loss']:.4f} -> {pretrained[key]['history'][-1]['loss']:.4f}")
        return pretrained[key]["state"]

    def do(seed: int, fraction: float, method: str, split, fn) -> None:
        key = run_key(seed, fraction, method)
        if key in runs:
            return
        began = time.perf_counter()
        metrics = fn()
        record = {"key": key, "seed": seed, "fraction": fraction, "method": method,
                  "seconds": round(time.perf_counter() - began, 1), "split": split_summary(data, split), **metrics}
        append_run(runs_path, record)
        runs[key] = record
        log(f"{key}: OA {metrics['oa']:.3f} mIoU {metrics['miou']:.3f} F1 {metrics['macro_f1']:.3f} "
            f"({record['seconds']} s, total {time.perf_counter() - started:.0f} s)")

    def split_for(seed: int, fraction: float):
        return split_fields(data.field_classes, VAL_FRACTION, TEST_FRACTION, fraction, seed)

    # Main comparison, seed by seed (each seed complete before the next, so a cut-short study is still usable).
    methods = METHODS if not args.methods else tuple(m for m in METHODS if m in args.methods.split(","))
    for seed in seeds:
        for fraction in fractions:
            split = split_for(seed, fraction)
            jobs = {
                "rf": lambda: run_forest(data, split, schedule, seed),
                "pixel_transformer": lambda: run_network(data, split, schedule, seed, pixel=True),
                "stcln": lambda: run_network(data, split, schedule, seed),
                "stcln_wp": lambda: run_network(data, split, schedule, seed,
                                                init_state=backbone("spatiotemporal", "date", True, seed)),
            }
            for method in methods:
                do(seed, fraction, method, split, jobs[method])

    # Ablations of STCLN_wp at one label fraction (the reference is stcln_wp at that fraction above).
    fraction = ABLATION_FRACTION if ABLATION_FRACTION in fractions else fractions[0]
    for seed in seeds:
        split = split_for(seed, fraction)
        for name in ablations:
            if name == "cloud_ignored" and cloudless is None and run_key(seed, fraction, name) not in runs:
                log("loading the series without cloud masks")
                cloudless = load_data(Path(args.data), years, use_clouds=False)
            variants = {
                "mask_temporal": lambda: run_network(data, split, schedule, seed,
                                                     init_state=backbone("temporal", "date", True, seed)),
                "mask_spatial": lambda: run_network(data, split, schedule, seed,
                                                    init_state=backbone("spatial", "date", True, seed)),
                "sta_off": lambda: run_network(data, split, schedule, seed, use_sta=False,
                                               init_state=backbone("spatiotemporal", "date", True, seed)),
                "index_encoding": lambda: run_network(data, split, schedule, seed, encoding="index",
                                                      init_state=backbone("spatiotemporal", "index", True, seed)),
                "cloud_ignored": lambda: run_network(cloudless, split, schedule, seed,
                                                     init_state=backbone("spatiotemporal", "date", False, seed)),
            }
            do(seed, fraction, name, split, variants[name])

    summary = summarise(runs, seeds, fractions, fraction, ablations)
    summary["setup"] = {
        "data": str(args.data), "years": args.years, "dates": len(data.dates),
        "first_date": str(data.dates[0]), "last_date": str(data.dates[-1]),
        "size_px": [int(data.labels.shape[1]), int(data.labels.shape[0])], "bands": data.band_names,
        "classes": data.classes.names, "fields": len(data.field_classes),
        "class_pixels": {n: int((data.labels == i + 1).sum()) for i, n in enumerate(data.classes.names)},
        "cloudy_observations": round(data.cloud_fraction, 3),
        "seeds": seeds, "fractions": list(fractions), "ablation_fraction": fraction,
        "val_fraction": VAL_FRACTION, "test_fraction": TEST_FRACTION,
        "schedule": schedule.__dict__, "network": {"preset": "lite", **SIZES[schedule.size]},
        "pretrain_per_seed": bool(args.pretrain_per_seed), "quick": bool(args.quick),
        "threads": args.threads, "python": platform.python_version(), "torch": torch.__version__,
    }
    summary["pretraining"] = {**merged_pretraining, **pretrain_log}
    summary["merged_from"] = list(args.merge or [])
    # Compute time of the runs and pre-trainings (processes may have run side by side); wall time of this process.
    summary["seconds"] = round(sum(r["seconds"] for r in runs.values())
                               + sum(p["seconds"] for p in summary["pretraining"].values()), 1)
    summary["wall_seconds"] = round(time.perf_counter() - started, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary, indent=1))
    log(f"study done: {summary['seconds']} s of runs, {summary['wall_seconds']} s here -> {out / 'summary.json'}")
    return summary


def _stats(values: list[float]) -> dict[str, Any]:
    a = np.asarray(values, np.float64)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "n": int(len(a)),
            "values": [float(v) for v in a]}


def summarise(runs: dict[str, dict], seeds: list[int], fractions: tuple, ablation_fraction: float,
              ablations: tuple) -> dict[str, Any]:
    """Mean +- std (sample std over seeds) of OA, mIoU and macro-F1 per method and fraction, and per ablation."""
    def collect(method: str, fraction: float) -> Optional[dict[str, Any]]:
        found = [runs[k] for k in (run_key(s, fraction, method) for s in seeds) if k in runs]
        if not found:
            return None
        out = {m: _stats([r[m] for r in found]) for m in ("oa", "miou", "macro_f1")}
        out["seconds"] = _stats([r["seconds"] for r in found])
        out["train_fields"] = _stats([r["split"]["train"]["fields"] for r in found])
        out["train_pixels"] = _stats([r["split"]["train"]["pixels"] for r in found])
        return out

    main = {m: {f"{f:g}": collect(m, f) for f in fractions} for m in METHODS}
    ablation = {"reference": collect("stcln_wp", ablation_fraction), "scratch": collect("stcln", ablation_fraction)}
    ablation.update({name: collect(name, ablation_fraction) for name in ablations})
    return {"main": main, "ablations": ablation, "runs": [runs[k] for k in sorted(runs)]}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 seed, fractions 0.25 and 1, short schedules")
    parser.add_argument("--seeds", type=int, default=None, help="number of split seeds (default 3, quick 1)")
    parser.add_argument("--fractions", default=None, help="training-label fractions (default 0.1,0.25,0.5,1)")
    parser.add_argument("--years", default="2016", help="acquisition years to use, e.g. 2016 or 2016,2017, or all")
    parser.add_argument("--size", choices=sorted(SIZES), default=None, help="network size (default micro)")
    parser.add_argument("--epochs", type=int, default=None, help="fine-tuning epochs")
    parser.add_argument("--steps", type=int, default=None, help="fine-tuning steps per epoch")
    parser.add_argument("--pretrain-epochs", type=int, default=None, help="pre-training epochs")
    parser.add_argument("--pretrain-steps", type=int, default=None, help="pre-training steps per epoch")
    parser.add_argument("--pretrain-per-seed", action="store_true", help="pre-train once per seed (default: once)")
    parser.add_argument("--no-ablations", action="store_true", help="only the main comparison")
    parser.add_argument("--methods", default=None, help=f"a subset of {','.join(METHODS)} (default all)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: on the loaded shared machine, 2 threads were 15-80x slower per epoch)")
    parser.add_argument("--merge", nargs="*", default=None,
                        help="result folders of other processes of this study whose runs count as done")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="the slovenia_s2 folder")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "study"), help="results folder")
    parser.add_argument("--json", default=None, help="also write the summary to this file")
    args = parser.parse_args(argv)
    if args.seeds is None:
        args.seeds = 1 if args.quick else 3
    if args.fractions is None:
        args.fractions = "0.25,1" if args.quick else ",".join(f"{f:g}" for f in FRACTIONS)
    if not Path(args.data).is_dir():
        print(f"The data folder '{args.data}' does not exist: give --data.", file=sys.stderr)
        return 2
    study(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
