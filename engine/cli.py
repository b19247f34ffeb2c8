"""``python -m engine``: pretrain, train, predict, evaluate, demo and info from the command line.

Exit status: 0 done, 1 user error (one clear line on stderr), 2 internal error, 130 interrupted.
With ``--json`` the last line printed is one JSON object with the results.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import glob
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

from . import pipeline, search_cli
from .errors import CancelledError, EngineError, cancelled_message
from .suggest import DEFAULT_COUNT

EXAMPLES = {
    "pretrain": "python -m engine pretrain --images s2/*.tif --cloud-masks clm/*.tif --preset lite --epochs 10 --out pre.cropmodel",
    "train": "python -m engine train --images s2/*.tif --labels fields.gpkg --layer fields --class-field crop "
    "--init pre.cropmodel --epochs 30 --out crops.cropmodel",
    "predict": "python -m engine predict --model crops.cropmodel --images s2/*.tif --out map.tif --confidence conf.tif "
    "--fields parcels.gpkg --fields-out parcels_crops.gpkg",
    "evaluate": "python -m engine evaluate --map map.tif --labels fields.gpkg --class-field crop --model crops.cropmodel "
    "--split test --report report/",
    "suggest": "python -m engine suggest --model crops.cropmodel --images s2/*.tif --parcels parcels.gpkg "
    "--unlabelled-field crop --count 20 --out suggested.gpkg",
    "demo": "python -m engine demo --out demo_out",
    "search": search_cli.EXAMPLE,
    "info": "python -m engine info crops.cropmodel   |   python -m engine info --preset paper --bands 10 --classes 20 --json",
}
# From a folder of downloaded Sentinel-2 zips (or .SAFE folders): no unzipping, SCL masks clouds by itself.
PRODUCT_EXAMPLES = {  # only the fields' extent is read (--labels, --fields), or --bbox
    "pretrain": "python -m engine pretrain --images downloads/ --bbox 523560 4829250 525880 4832780 --out pre.cropmodel",
    "train": "python -m engine train --images downloads/ --labels fields.gpkg --class-field crop --out crops.cropmodel",
    "predict": "python -m engine predict --model crops.cropmodel --images downloads/ --fields fields.gpkg "
    "--out map.tif",
}


# ---------------------------------------------------------------------------------------------------- arguments


class ArgumentParser(argparse.ArgumentParser):
    """Bad arguments are a user error: exit status 1, not argparse's 2 (which the engine keeps for internal errors)."""

    def error(self, message: str):  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(1, f"error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m engine",
        description="CropMapper engine: crop-type maps from Sentinel-2 time series with STCLN.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=f"example:\n  {EXAMPLES[name]}" + (
                f"\nfrom a folder of Sentinel-2 zips (the fields' extent is read; or --bbox, in the tile's CRS or --bbox-crs):"
                f"\n  {PRODUCT_EXAMPLES[name]}" if name in PRODUCT_EXAMPLES else ""),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.add_argument("--json", action="store_true", help="print the results as one JSON object on the last line")
        sub.add_argument("--quiet", action="store_true", help="no progress bar")
        return sub

    p = command("pretrain", "Self-supervised masked pre-training on unlabelled images.")
    _series_arguments(p)
    _model_arguments(p)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--mask-ratio", type=float, default=0.4, help="share of (date, pixel) entries masked (default 0.4)")
    p.add_argument("--mask-mode", choices=["spatiotemporal", "temporal", "spatial"], default="spatiotemporal")
    p.add_argument("--steps-per-epoch", type=int, default=None)
    _time_budget_argument(p)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--out", required=True, help="pre-trained model file to write (.cropmodel)")

    p = command("train", "Fine-tune (or train from scratch) on labelled field polygons.")
    _series_arguments(p)
    _label_arguments(p)
    _model_arguments(p)
    p.add_argument("--init", default=None, help="pre-trained model (.cropmodel) to start from")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--steps-per-epoch", type=int, default=None)
    _time_budget_argument(p)
    p.add_argument("--label-fraction", type=float, default=1.0, help="share of training fields to use (scarce-label studies)")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--no-class-weights", action="store_true", help="do not weight classes by inverse frequency")
    p.add_argument("--patience", type=int, default=None, help="stop after N epochs without a better validation mIoU")
    p.add_argument("--out", required=True, help="model file to write (.cropmodel)")

    p = command("predict", "Map the crops with a trained model, tile by tile.")
    p.add_argument("--model", required=True, help="trained model (.cropmodel)")
    _series_arguments(p)
    p.add_argument("--out", required=True, help="class map GeoTIFF to write")
    p.add_argument("--confidence", default=None, help="confidence GeoTIFF to write (highest class probability)")
    p.add_argument("--probabilities", default=None, help="GeoTIFF of all class probabilities to write")
    p.add_argument("--fields", default=None, help="polygon layer (fields or parcels) for field-level results")
    p.add_argument("--fields-layer", default=None, help="layer name inside --fields (e.g. in a GeoPackage)")
    p.add_argument("--fields-out", default=None, help="GeoPackage to write with the class of each polygon")
    p.add_argument("--extent", default=None, help="polygon layer: map only inside it")
    p.add_argument("--uncertainty", default=None, help="uncertainty GeoTIFF to write (normalised entropy, 0 sure .. 1 uniform)")
    _smoothing_arguments(p)
    _run_arguments(p)

    p = command("evaluate", "Accuracy of a map against labelled fields; writes JSON, CSV and HTML reports.")
    p.add_argument("--map", required=True, help="class map GeoTIFF")
    _label_arguments(p)
    p.add_argument("--model", default=None, help="the model that made the map: its classes and field split are used")
    p.add_argument("--split", choices=["test", "val", "train", "all"], default="test")
    p.add_argument("--report", required=True, help="folder to write the reports into")

    p = command("suggest", "Rank parcels (or segments of the map) by uncertainty: the fields to label next.")
    p.add_argument("--model", required=True, help="trained model (.cropmodel)")
    _series_arguments(p)
    p.add_argument("--parcels", default=None, help="polygon layer of candidate parcels (default: segments of the map)")
    p.add_argument("--parcels-layer", default=None, help="layer name inside --parcels")
    p.add_argument("--unlabelled-field", default=None,
                   help="class field of --parcels: only parcels where it is empty are candidates")
    p.add_argument("--exclude", default=None, help="polygon layer of fields already labelled: never suggested")
    p.add_argument("--exclude-layer", default=None, help="layer name inside --exclude")
    p.add_argument("--count", type=int, default=DEFAULT_COUNT, help=f"how many fields to suggest (default {DEFAULT_COUNT})")
    p.add_argument("--out", required=True, help="GeoPackage to write (layer suggested_fields)")
    _run_arguments(p)

    p = command("demo", "Synthetic scene -> pretrain -> train -> predict -> evaluate with the lite preset.")
    p.add_argument("--out", default="demo_out", help="folder for the scene and results (default demo_out)")
    p.add_argument("--device", default="auto")

    p = command("search", "Find Sentinel-2 L2A images in a STAC API and write the area's pixels, one GeoTIFF per date.")
    search_cli.add_search_arguments(p)

    p = command("info", "Describe a model file, or a preset's architecture.")
    p.add_argument("model", nargs="?", default=None, help="model file (.cropmodel)")
    p.add_argument("--preset", default=None, choices=["paper", "lite"])
    p.add_argument("--bands", type=int, default=10)
    p.add_argument("--classes", type=int, default=20)
    return parser


def _series_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("time series")
    g.add_argument("--images", nargs="+", required=True, metavar="FILE", help="rasters (files, folders or glob patterns)")
    g.add_argument("--layout", choices=["per-date", "per-band", "stack"], default="per-date")
    g.add_argument("--stack-order", choices=["date-major", "band-major"], default="date-major", help="band order of a stack")
    g.add_argument("--cloud-masks", nargs="+", default=None, metavar="FILE", help="one cloud mask per date (non-zero = cloud)")
    g.add_argument("--scl", nargs="+", default=None, metavar="FILE", help="one Sentinel-2 SCL raster per date")
    g.add_argument("--dates", nargs="+", default=None, metavar="YYYY-MM-DD", help="acquisition dates, one per date")
    g.add_argument("--band-names", nargs="+", default=None, metavar="NAME")
    g.add_argument("--reference", default=None, help="raster or Sentinel-2 product whose grid everything is aligned "
                   "to (default: the first); needed for products of several UTM zones")
    sentinel2_arguments(g)


def sentinel2_arguments(g) -> None:
    """--bands and --bbox: which bands of Sentinel-2 products, and which area, are read."""
    g.add_argument("--bands", nargs="+", default=None, metavar="BAND",
                   help="bands read from Sentinel-2 products (.SAFE folders, .SAFE.zip) among --images "
                        "(default: B02 B03 B04 B05 B06 B07 B08 B8A B11 B12; 20/60 m bands go onto the 10 m grid)")
    g.add_argument("--bbox", nargs=4, type=float, default=None, metavar=("XMIN", "YMIN", "XMAX", "YMAX"),
                   help="read only this area (default: with products, the extent of --labels or --fields; else the "
                        "whole reference grid, e.g. a product's 110 km tile)")
    g.add_argument("--bbox-crs", default=None, metavar="CRS",
                   help="CRS of --bbox, e.g. EPSG:4326 (default: that of the reference grid)")


def _label_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("labels")
    g.add_argument("--labels", required=True, help="polygon layer of labelled fields (GeoPackage, Shapefile, GeoJSON)")
    g.add_argument("--layer", default=None, help="layer name inside --labels")
    g.add_argument("--class-field", required=True, help="attribute holding the crop class (text or integer)")


def _model_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model and training")
    g.add_argument("--preset", choices=["lite", "paper"], default="lite")
    g.add_argument("--date-encoding", choices=["date", "index"], default="date")
    g.add_argument("--crop", type=int, default=32, help="training crop size in pixels")
    g.add_argument("--batch-size", type=int, default=8)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    g.add_argument("--resume", action="store_true", help="continue a stopped run from its checkpoint")


def _smoothing_arguments(p: argparse.ArgumentParser) -> None:
    from .smoothing_options import SmoothingOptions as S

    g = p.add_argument_group("smoothing (Bayesian, as in sits; off unless --smooth)")
    g.add_argument("--smooth", action="store_true", help="smooth the class probabilities spatially before the argmax")
    g.add_argument("--smooth-window", type=int, default=S.window, help=S.describe("window"))
    g.add_argument("--smoothness", type=float, default=S.smoothness, help=S.describe("smoothness"))
    g.add_argument("--smooth-neigh-fraction", type=float, default=S.neigh_fraction, help=S.describe("neigh_fraction"))
    g.add_argument("--smooth-by-parcel", action="store_true", help=S.describe("by_parcel") + "; needs --fields")


def _smoothing(args):
    """The smoothing options of the command line (None when --smooth is not given), checked."""
    from .smoothing_options import SmoothingOptions

    if not args.smooth:
        if args.smooth_by_parcel:
            raise EngineError("--smooth-by-parcel belongs to the smoothing: add --smooth.")
        return None
    return SmoothingOptions(window=args.smooth_window, smoothness=args.smoothness,
                            neigh_fraction=args.smooth_neigh_fraction, by_parcel=args.smooth_by_parcel).validate()


def _run_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("run")
    g.add_argument("--tile", type=int, default=32)
    g.add_argument("--overlap", type=int, default=8)
    g.add_argument("--batch-size", type=int, default=16)
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")


def expand_paths(items: Optional[Sequence[str]]) -> Optional[list[str]]:
    """Files as given; folders become their sorted rasters; glob patterns are expanded (also on Windows shells)."""
    if not items:
        return None
    from .data.sentinel2 import find_products, is_product_path

    paths: list[str] = []
    for item in items:
        if is_product_path(item):
            paths.append(item)
        elif os.path.isdir(item) and find_products(item):  # a folder of downloaded products (zips, .SAFE)
            paths += find_products(item)
        elif os.path.isdir(item):
            found = sorted(p for p in glob.glob(os.path.join(item, "*")) if p.lower().endswith((".tif", ".tiff", ".vrt", ".jp2", ".img")))
            if not found:
                raise EngineError(f"The folder '{item}' holds no raster (.tif, .vrt, .jp2, .img).")
            paths += found
        elif glob.has_magic(item):
            found = sorted(glob.glob(item))
            if not found:
                raise EngineError(f"No file matches '{item}'.")
            paths += found
        else:
            paths.append(item)
    return paths


def _parse_dates(values: Optional[Sequence[str]]) -> Optional[list[dt.date]]:
    if not values:
        return None
    try:
        return [dt.date.fromisoformat(v) for v in values]
    except ValueError as exc:
        raise EngineError(f"Cannot read the dates: {exc}. Write them as YYYY-MM-DD.") from None


def _series_as_given(args) -> pipeline.SeriesInput:
    return pipeline.SeriesInput(
        images=expand_paths(args.images) or [],
        layout=args.layout,
        cloud_masks=expand_paths(args.cloud_masks),
        scl=expand_paths(args.scl),
        dates=_parse_dates(args.dates),
        band_names=args.band_names,
        stack_order=args.stack_order,
        reference=args.reference,
        bands=args.bands,
        bbox=tuple(args.bbox) if args.bbox else None,
        bbox_crs=args.bbox_crs,
    )


def _series(args) -> pipeline.SeriesInput:
    """The series; from Sentinel-2 products without --bbox, only the extent of the polygons given is read."""
    polygons = getattr(args, "labels", None) or getattr(args, "fields", None) or getattr(args, "extent", None)
    layer = (getattr(args, "layer", None) if getattr(args, "labels", None)
             else getattr(args, "fields_layer", None) if getattr(args, "fields", None) else None)
    return pipeline.within_fields(_series_as_given(args), polygons, layer)


def _labels(args) -> pipeline.LabelInput:
    return pipeline.LabelInput(path=args.labels, class_field=args.class_field, layer=args.layer)


# ---------------------------------------------------------------------------------------------------- progress


class ProgressBar:
    """A one-line progress bar with time left, on stderr."""

    def __init__(self, enabled: bool, stream=sys.stderr) -> None:
        self.enabled = enabled
        self.stream = stream
        self.started = time.monotonic()
        self.last_draw = 0.0
        self.width = 30

    def __call__(self, fraction: float, message: str = "") -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last_draw < 0.2 and fraction < 1.0:
            return
        self.last_draw = now
        elapsed = now - self.started
        left = elapsed * (1 - fraction) / fraction if fraction > 0.01 else None
        filled = int(self.width * fraction)
        eta = _format_seconds(left) if left is not None else "--:--"
        line = f"\r[{'#' * filled}{'.' * (self.width - filled)}] {fraction * 100:5.1f}%  {eta} left  {message[:40]:<40}"
        self.stream.write(line)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _time_budget_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--time-budget", type=float, default=None, metavar="MINUTES",
                   help="run fewer epochs (and steps per epoch) than asked where they would not fit in MINUTES; "
                        "says what it chose")


def _print_schedule(schedule: dict) -> None:
    if schedule.get("note"):
        print(schedule["note"])


def _format_seconds(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


# ---------------------------------------------------------------------------------------------------- commands


def run_pretrain(args, progress) -> dict:
    options = pipeline.PretrainOptions(
        preset=args.preset, date_encoding=args.date_encoding, epochs=args.epochs, mask_ratio=args.mask_ratio,
        mask_mode=args.mask_mode, crop=args.crop, batch_size=args.batch_size, steps_per_epoch=args.steps_per_epoch,
        lr=args.lr, seed=args.seed, device=args.device, resume=args.resume, time_budget_minutes=args.time_budget,
    )
    outcome = pipeline.pretrain(_series(args), args.out, options, progress=progress)
    _print_schedule(outcome.schedule)
    _print_warnings(outcome.warnings)
    final = outcome.history[-1]["loss"] if outcome.history else None
    print(f"Pre-trained model written to {outcome.model_path} (final reconstruction loss {final:.4f})" if final is not None else f"Pre-trained model written to {outcome.model_path}")
    return {"model": outcome.model_path, "history": outcome.history, "seconds": outcome.seconds,
            "schedule": outcome.schedule}


def run_train(args, progress) -> dict:
    options = pipeline.TrainOptions(
        preset=args.preset, date_encoding=args.date_encoding, epochs=args.epochs, crop=args.crop,
        batch_size=args.batch_size, steps_per_epoch=args.steps_per_epoch, lr=args.lr, label_fraction=args.label_fraction, val_fraction=args.val_fraction,
        test_fraction=args.test_fraction, seed=args.seed, class_weights=not args.no_class_weights,
        patience=args.patience, device=args.device, resume=args.resume, time_budget_minutes=args.time_budget,
    )
    outcome = pipeline.train(_series(args), _labels(args), args.out, options, init_model=args.init, progress=progress)
    _print_schedule(outcome.schedule)
    _print_warnings(outcome.warnings)
    val = outcome.validation or {}
    print(f"Model written to {outcome.model_path}")
    if val:
        print(f"Validation: OA {val.get('overall_accuracy', float('nan')):.3f}, mIoU {val.get('miou', float('nan')):.3f}")
    return {"model": outcome.model_path, "validation": val, "split": outcome.split, "history": outcome.history,
            "warnings": outcome.warnings, "seconds": outcome.seconds, "schedule": outcome.schedule}


def run_predict(args, progress) -> dict:
    options = pipeline.PredictOptions(tile=args.tile, overlap=args.overlap, batch_size=args.batch_size, device=args.device,
                                      smoothing=_smoothing(args))
    outcome = pipeline.predict(
        args.model, _series(args), args.out, out_confidence=args.confidence, out_probabilities=args.probabilities,
        fields=args.fields, fields_layer=args.fields_layer, fields_out=args.fields_out, options=options,
        extent=args.extent, progress=progress, out_uncertainty=args.uncertainty,
    )
    _print_warnings(outcome.warnings)
    print(f"Class map written to {outcome.map_path}")
    for label, path in (("Confidence", outcome.confidence_path), ("Uncertainty", outcome.uncertainty_path),
                        ("Probabilities", outcome.probabilities_path), ("Field-level results", outcome.fields_path)):
        if path:
            print(f"{label} written to {path}")
    rate = outcome.pixels / outcome.seconds if outcome.seconds > 0 else 0.0
    print(f"{outcome.pixels} pixels in {outcome.seconds:.1f} s ({rate:,.0f} px/s)")
    return {"map": outcome.map_path, "confidence": outcome.confidence_path, "probabilities": outcome.probabilities_path,
            "fields": outcome.fields_path, "pixels": outcome.pixels, "seconds": outcome.seconds,
            "warnings": outcome.warnings, "uncertainty": outcome.uncertainty_path}


def _print_warnings(warnings: Sequence[str]) -> None:
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)


def run_evaluate(args, progress) -> dict:
    outcome = pipeline.evaluate(args.map, _labels(args), args.report, model_path=args.model, split=args.split, progress=progress)
    print(format_metrics(outcome.metrics))
    print(f"Report: {outcome.html_path}")
    return {"metrics": outcome.metrics, "json": outcome.json_path, "csv": outcome.csv_path, "html": outcome.html_path}


def format_metrics(metrics: dict) -> str:
    lines = [
        f"Overall accuracy {_score(metrics['overall_accuracy'])}   kappa {_score(metrics['kappa'])}   "
        f"mIoU {_score(metrics['miou'])}   macro F1 {_score(metrics['macro_f1'])}",
        f"{'class':<24}{'precision':>10}{'recall':>10}{'F1':>8}{'IoU':>8}{'pixels':>9}{'mapped ha':>11}",
    ]
    for row in metrics["per_class"]:
        scores = "".join(f"{_score(row[key]):>{width}}" for key, width in (("precision", 10), ("recall", 10), ("f1", 8), ("iou", 8)))
        lines.append(f"{row['name'][:23]:<24}{scores}{row['support']:>9}{row.get('mapped_area_ha') or 0.0:>11.2f}")
    return "\n".join(lines)


def _score(value: Optional[float]) -> str:
    """A score with three decimals, or a dash where it is undefined (no reference and no mapped pixel)."""
    return "-" if value is None else f"{value:.3f}"


def run_suggest(args, progress) -> dict:
    from .suggest import suggest_fields

    options = pipeline.PredictOptions(tile=args.tile, overlap=args.overlap, batch_size=args.batch_size, device=args.device)
    outcome = suggest_fields(
        args.model, _series(args), args.out, parcels=args.parcels, parcels_layer=args.parcels_layer,
        unlabelled_field=args.unlabelled_field, exclude=args.exclude, exclude_layer=args.exclude_layer,
        count=args.count, options=options, progress=progress,
    )
    print(f"{len(outcome.suggestions)} of {outcome.candidates} candidates to label next, written to "
          f"{outcome.path} (layer {outcome.layer}):")
    for row in outcome.suggestions:
        print(f"{row['rank']:>4}  fid {row['source_fid']:<8} {row['crop_class'][:23]:<24} p {row['crop_prob']:.2f}  "
              f"uncertainty {row['uncertainty']:.2f}  {row['area_ha']:.2f} ha")
    return {"path": outcome.path, "layer": outcome.layer, "suggestions": outcome.suggestions,
            "candidates": outcome.candidates, "seconds": outcome.seconds}


def run_demo(args, progress) -> dict:
    from .demo import run_demo as demo

    return demo(args.out, device=args.device, progress=progress)


def run_info(args, progress) -> dict:
    from .info import describe_model_file, describe_preset

    if args.model:
        text, data = describe_model_file(args.model)
    elif args.preset:
        text, data = describe_preset(args.preset, args.bands, args.classes)
    else:
        raise EngineError("Give a model file, or --preset with --bands and --classes.")
    print(text)
    return data


COMMANDS: dict[str, Callable] = {
    "pretrain": run_pretrain,
    "train": run_train,
    "predict": run_predict,
    "evaluate": run_evaluate,
    "suggest": run_suggest,
    "demo": run_demo,
    "info": run_info,
    "search": search_cli.run_search,
}


def _terminate(signum, frame) -> None:  # noqa: ARG001
    """SIGTERM (kill, a batch scheduler's time limit) cleans up like Ctrl-C instead of dying mid-write."""
    raise KeyboardInterrupt


def main(argv: Optional[Sequence[str]] = None) -> int:
    import signal

    if hasattr(signal, "SIGTERM") and signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        with contextlib.suppress(ValueError):  # only the main thread may set handlers
            signal.signal(signal.SIGTERM, _terminate)
    try:
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:
        print("Interrupted: nothing was written.", file=sys.stderr)
        return 130
    # Under torchrun every rank runs this; only rank 0 talks (errors still reach stderr from any rank).
    other_rank = int(os.environ.get("RANK", "0")) != 0
    if other_rank:
        sys.stdout = open(os.devnull, "w")
    quiet = args.quiet or other_rank or not sys.stderr.isatty()
    bar = ProgressBar(enabled=not quiet)
    try:
        result = COMMANDS[args.command](args, bar)
    except EngineError as error:
        bar.close()
        print(f"error: {error}", file=sys.stderr)
        return 1
    except (CancelledError, KeyboardInterrupt) as error:
        bar.close()
        print(cancelled_message(error, "Interrupted"), file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 (the last line of defence: say it is our fault, keep the details)
        bar.close()
        import traceback

        traceback.print_exc(file=sys.stderr)
        print(f"internal error: {error!r}. Please report it with the output above.", file=sys.stderr)
        return 2
    bar.close()
    if args.json:
        print(json.dumps(result, default=_json_default))
    return 0


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (dt.date, Path)):
        return str(value)
    return repr(value)
