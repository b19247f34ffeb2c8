"""Accuracy study on real data: STCLN, STCLN_wp (masked pre-training), a pixel-wise Random Forest and a per-pixel
temporal Transformer, over seeds and training-label fractions, plus ablations of STCLN_wp.

Data (``--dataset``): ``herault`` (the main study: real crop types, 9 Sentinel-2 L2A dates of 2018 with SCL, 10 bands,
120 declared parcels of 8 classes in Lambert-93) or ``slovenia`` (NDVI per date with s2cloudless masks, land-use
polygons ``LULC_NAME``), from ``../shared/data`` (or ``--data``). Splits are by field (``engine.data.split_fields``: stratified by class, seeded); within a seed every
method and fraction is tested on the same test fields, and a smaller label fraction keeps a subset of the training
fields of a larger one. Everything goes through the engine (reading, normalising, rasterising, splitting, training,
tiled prediction, metrics).

Each finished run is appended to ``OUT/runs.jsonl`` at once, and runs already there are skipped, so an interrupted
study continues where it stopped. ``OUT/summary.json`` (and ``--json``) holds mean +- std over seeds.

    python bench/study.py --quick                       # a few minutes: 1 seed, 2 fractions, short schedules
    python bench/study.py --dataset herault --seeds 5 --out bench/results/study_herault
    python bench/study.py --dataset slovenia --seeds 5 --out bench/results/study
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

SHARED_DATA = ROOT.parent / "shared" / "data"
FRACTIONS = (0.10, 0.25, 0.50, 1.00)
ABLATION_FRACTION = 0.25
VAL_FRACTION = 0.2
TEST_FRACTION = 0.2
# stcln_matched: from scratch with as many optimiser steps in all as stcln_wp gets (pre-training + fine-tuning), so
# that pre-training is not just extra training.
METHODS = ("rf", "pixel_transformer", "stcln", "stcln_matched", "stcln_wp")
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


@dataclass(frozen=True)
class Dataset:
    """Where one sample's files are, relative to its folder: images, their validity (cloud masks or SCL), fields."""

    folder: str
    images: str
    labels: str
    class_field: str
    layer: Optional[str] = None
    cloud_masks: Optional[str] = None  # 1 = cloud
    scl: Optional[str] = None  # Sentinel-2 scene classification
    years_from_name: bool = False  # file names ``S2_<YYYY...>_...``: ``--years`` filters on them


DATASETS: dict[str, Dataset] = {
    "herault": Dataset("herault_s2_l2a", "geotiff/*.tif", "parcels/france_data_2018.shp", "EC_hcat_n",
                       scl="geotiff/scl/*_SCL.tif"),
    "slovenia": Dataset("slovenia_s2", "ndvi/*.tif", "lulc_polygons.gpkg", "LULC_NAME", layer="LULC",
                        cloud_masks="cloudmask/*.tif", years_from_name=True),
}


def series_files(spec: Dataset, data_dir: Path, years: Optional[set[int]]) -> tuple[list[str], Optional[list[str]]]:
    """The images and their cloud masks or SCL rasters (None: neither), optionally only those of ``years``."""
    images = sorted(glob.glob(str(data_dir / spec.images)))
    pattern = spec.cloud_masks or spec.scl
    masks = sorted(glob.glob(str(data_dir / pattern))) if pattern else None
    if years and spec.years_from_name:
        def keep(path: str) -> bool:
            return int(Path(path).name.split("_")[1][:4]) in years
        images = [p for p in images if keep(p)]
        masks = [p for p in masks if keep(p)] if masks is not None else None
    return images, masks


def load_data(spec: Dataset, data_dir: Path, years: Optional[set[int]], use_clouds: bool = True) -> Data:
    """Reads the series (with or without its validity layers) and rasterises the polygons, with the engine."""
    from engine.data import band_statistics, normalise, rasterize_fields
    from engine.pipeline import SeriesInput, open_series

    images, masks = series_files(spec, data_dir, years)
    masks = masks if use_clouds else None
    series = SeriesInput(images=images, cloud_masks=masks if spec.cloud_masks else None,
                         scl=masks if spec.scl else None)
    with open_series(series) as ts:
        w, h = ts.grid.width, ts.grid.height
        x, valid = ts.read(0, 0, w, h)
        mean, std = band_statistics(ts, seed=0)
        fields = rasterize_fields(str(data_dir / spec.labels), ts.grid, spec.class_field, layer=spec.layer)
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


def score(data: Data, split, probs: np.ndarray) -> dict[str, Any]:
    """Engine metrics on the test fields' pixels (label 0 ignored) from class probabilities ``probs (K, H, W)`` (all
    0 where nothing was mapped); mIoU and macro-F1 over the classes present in the test reference (the engine's own
    means, over classes in the reference or the map, are kept too); and field-level scores: each test parcel's class
    from the mean probability of its mapped pixels, against its label (how users read a map of parcels)."""
    from engine.evaluation import confusion_matrix, metrics_from_confusion

    predicted = np.where(probs.sum(0) > 0, probs.argmax(0) + 1, 0)
    test = np.isin(data.field_ids, split.test) & (data.labels > 0)
    k = len(data.classes)
    cm = confusion_matrix(data.labels[test], predicted[test], k)
    m = metrics_from_confusion(cm, data.classes, data.pixel_area)
    present = [c for c in m["per_class"] if c["support"] > 0]
    fields = field_scores(data, split, probs)
    return {
        "oa": m["overall_accuracy"],
        "miou": float(np.mean([c["iou"] or 0.0 for c in present])),
        "macro_f1": float(np.mean([c["f1"] or 0.0 for c in present])),
        "kappa": m["kappa"],
        "engine_miou": m["miou"],
        "engine_macro_f1": m["macro_f1"],
        **fields,
        "test_pixels": int(test.sum()),
        "unmapped_test_pixels": int((predicted[test] == 0).sum()),
        "per_class_iou": {c["name"]: c["iou"] for c in present},
        "confusion_matrix": m["confusion_matrix"],
    }


def field_scores(data: Data, split, probs: np.ndarray) -> dict[str, Any]:
    """``field_oa`` and ``field_macro_f1`` (over the classes of the test fields): a test field's class is the argmax
    of the mean probability over its labelled, mapped pixels; a field with no mapped pixel counts as wrong."""
    mapped = probs.sum(0) > 0
    truth, guess = [], []
    for fid in split.test:
        inside = (data.field_ids == fid) & (data.labels > 0)
        if not inside.any():
            continue
        truth.append(data.field_classes[int(fid)])
        pixels = inside & mapped
        guess.append(int(probs[:, pixels].mean(1).argmax()) + 1 if pixels.any() else 0)
    if not truth:
        return {"field_oa": None, "field_macro_f1": None, "test_fields": 0}
    t, g = np.asarray(truth), np.asarray(guess)
    f1 = []
    for c in np.unique(t):
        tp, fp, fn = int(((t == c) & (g == c)).sum()), int(((t != c) & (g == c)).sum()), int(((t == c) & (g != c)).sum())
        f1.append(2 * tp / (2 * tp + fp + fn))
    return {"field_oa": float((t == g).mean()), "field_macro_f1": float(np.mean(f1)), "test_fields": len(truth)}


def predict_probabilities(bundle, data: Data, schedule: Schedule) -> np.ndarray:
    """Class probabilities ``(K, H, W)`` (0 where nothing was predicted) of the whole raster, with the engine's tiled
    predictor."""
    from engine.inference import predict_array

    return predict_array(bundle, data.x, data.dates, data.valid, tile=schedule.crop, overlap=schedule.crop // 4,
                         batch_size=16, device="cpu")


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
                init_state: Optional[dict] = None, encoding: str = "date", use_sta: bool = True,
                extra_steps: int = 0) -> dict[str, Any]:
    """Fine-tunes STCLN (or the per-pixel Transformer) with ``engine.training.finetune`` and scores the map.

    ``extra_steps`` adds whole epochs until at least that many more optimiser steps were taken (the step-matched
    scratch run)."""
    from baselines import PixelTransformerBundle, make_pixel_transformer
    from engine.bundle import ModelBundle
    from engine.model import season_start_for
    from engine.training import finetune

    positions = positions_for(data, encoding)
    train, val = make_scenes(data, split, positions, margin=schedule.crop // 2, cap=schedule.val_window)
    config = config_for(data, schedule, date_encoding=encoding, use_sta=use_sta)
    result = finetune(
        train, val, config, init_state=init_state,
        epochs=schedule.epochs + -(-extra_steps // schedule.steps_per_epoch), crop=schedule.crop,
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
    out = score(data, split, predict_probabilities(bundle, data, schedule))
    out["optimiser_steps"] = len(result.history) * schedule.steps_per_epoch
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
    k = len(data.classes)
    probs = np.zeros((k, flat_labels.size), np.float32)
    rows = forest.model.classes_.astype(int) - 1  # the classes the forest saw, in its column order
    probs[np.ix_(rows, np.flatnonzero(test))] = forest.model.predict_proba(features[test]).T
    out = score(data, split, probs.reshape(k, *data.labels.shape))
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

    spec = DATASETS[args.dataset]
    log(f"loading {args.dataset} from {args.data} (years {args.years})")
    data = load_data(spec, Path(args.data), years)
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
            f"field OA {metrics['field_oa'] or 0:.3f} "
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
                "stcln_matched": lambda: run_network(data, split, schedule, seed,
                                                     extra_steps=schedule.pretrain_epochs * schedule.pretrain_steps),
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
                cloudless = load_data(spec, Path(args.data), years, use_clouds=False)
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
        "dataset": args.dataset, "data": str(args.data), "years": args.years, "dates": len(data.dates),
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


def _stats(values: list[float]) -> Optional[dict[str, Any]]:
    if not values:  # e.g. field scores of runs made before they existed
        return None
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
        out = {m: _stats([r[m] for r in found if r.get(m) is not None])
               for m in ("oa", "miou", "macro_f1", "field_oa", "field_macro_f1")}
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
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="herault",
                        help="herault (real crop types, the main study) or slovenia (land use, NDVI)")
    parser.add_argument("--seeds", type=int, default=None, help="number of split seeds (default 5, quick 1)")
    parser.add_argument("--fractions", default=None, help="training-label fractions (default 0.1,0.25,0.5,1)")
    parser.add_argument("--years", default=None,
                        help="slovenia: acquisition years to use, e.g. 2016 or 2016,2017, or all (default 2016)")
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
    parser.add_argument("--data", default=None, help="the dataset's folder (default: in ../shared/data)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "study"), help="results folder")
    parser.add_argument("--json", default=None, help="also write the summary to this file")
    args = parser.parse_args(argv)
    if args.seeds is None:
        args.seeds = 1 if args.quick else 5
    if args.data is None:
        args.data = str(SHARED_DATA / DATASETS[args.dataset].folder)
    if args.years is None:
        args.years = "2016" if DATASETS[args.dataset].years_from_name else "all"
    if args.fractions is None:
        args.fractions = "0.25,1" if args.quick else ",".join(f"{f:g}" for f in FRACTIONS)
    if not Path(args.data).is_dir():
        print(f"The data folder '{args.data}' does not exist: give --data.", file=sys.stderr)
        return 2
    study(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
