"""The engine's public steps: pretrain, train, predict, evaluate, and map_crops (all of them).

One function per step serves the dialog, Processing, the command line and torchrun; none of them re-implements a
step. Arguments are plain paths, numbers and callbacks. User errors raise ``EngineError``; cancelling raises
``CancelledError`` and leaves no output behind.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np

from . import __version__
from .atomic import StagedOutputs, check_writable
from .errors import EngineError
from .option_checks import check_classes, check_training_options
from .outputs import guard_run
from .progress import CancelledCallback, ProgressCallback, as_reporter

if TYPE_CHECKING:  # pragma: no cover
    from .smoothing_options import SmoothingOptions

Color = tuple[int, int, int]


@dataclass
class SeriesInput:
    """Where the time series comes from (see ``engine.data.open_time_series``)."""

    images: list[str]
    layout: str = "per-date"  # per-date | per-band | stack
    cloud_masks: Optional[list[str]] = None  # one per date, 1 = cloud (or any non-zero)
    scl: Optional[list[str]] = None  # one Sentinel-2 SCL raster per date
    dates: Optional[list[dt.date]] = None  # overrides dates found in metadata / file names
    band_names: Optional[list[str]] = None
    stack_order: str = "date-major"  # for layout=stack: date-major (d1b1 d1b2 ...) or band-major
    reference: Optional[str] = None  # raster whose grid everything is aligned to (default: the first)
    bands: Optional[list[str]] = None  # Sentinel-2 products: bands to read (default sentinel2.DEFAULT_BANDS)
    bbox: Optional[tuple[float, float, float, float]] = None  # xmin, ymin, xmax, ymax: read only this area
    bbox_crs: Optional[str] = None  # CRS of ``bbox`` (e.g. "EPSG:4326"); default: the grid's CRS


@dataclass
class LabelInput:
    """Digitised field polygons with a crop-class field."""

    path: str
    class_field: str
    layer: Optional[str] = None
    colors: Optional[dict[str, Color]] = None  # class name -> RGB


@dataclass
class PretrainOptions:
    preset: str = "lite"
    date_encoding: str = "date"  # date | index (the authors' acquisition index, for ablations)
    epochs: int = 10
    mask_ratio: float = 0.4
    mask_mode: str = "spatiotemporal"  # spatiotemporal | temporal | spatial
    crop: int = 32
    batch_size: int = 8
    steps_per_epoch: Optional[int] = None
    lr: float = 1e-4
    seed: int = 0
    device: str = "auto"
    resume: bool = False
    time_budget_minutes: Optional[float] = None  # fewer epochs / steps where they would not fit (training/schedule.py)


@dataclass
class TrainOptions:
    preset: str = "lite"
    date_encoding: str = "date"
    epochs: int = 30
    crop: int = 32
    batch_size: int = 8
    steps_per_epoch: Optional[int] = None
    lr: float = 1e-3
    label_fraction: float = 1.0
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    seed: int = 0
    class_weights: bool = True
    patience: Optional[int] = None  # early stopping after this many epochs without a better val mIoU
    device: str = "auto"
    resume: bool = False
    time_budget_minutes: Optional[float] = None  # fewer epochs / steps where they would not fit (training/schedule.py)


@dataclass
class PredictOptions:
    tile: int = 32
    overlap: int = 8
    batch_size: int = 16
    device: str = "auto"
    smoothing: Optional["SmoothingOptions"] = None  # Bayesian smoothing before the argmax (None: off)


@dataclass
class PretrainOutcome:
    model_path: str
    history: list[dict]
    seconds: float
    warnings: list[str] = field(default_factory=list)
    schedule: dict = field(default_factory=dict)  # epochs and steps run, time budget, a note for the user


@dataclass
class TrainOutcome:
    model_path: str
    history: list[dict]  # per epoch: loss, val OA, val mIoU
    validation: dict  # metrics of the kept model on the validation fields
    split: dict  # number of fields and pixels in train / val / test
    warnings: list[str]
    seconds: float
    field_splits: dict[int, str] = field(default_factory=dict)  # feature id -> train | val | test | unused
    schedule: dict = field(default_factory=dict)  # epochs and steps run, time budget, a note for the user


@dataclass
class PredictOutcome:
    map_path: str
    confidence_path: Optional[str]
    probabilities_path: Optional[str]
    fields_path: Optional[str]
    pixels: int
    seconds: float
    warnings: list[str] = field(default_factory=list)
    uncertainty_path: Optional[str] = None


@dataclass
class EvaluateOutcome:
    metrics: dict  # overall_accuracy, kappa, miou, macro_f1, per_class [...], confusion_matrix, class_names
    json_path: str
    csv_path: str
    html_path: str


@dataclass
class MapCropsOutcome:
    model_path: str
    predict: PredictOutcome
    report: Optional[EvaluateOutcome]
    train: Optional[TrainOutcome]
    warnings: list[str] = field(default_factory=list)
    time_budget_note: Optional[str] = None  # what a time budget made pre-training and training do
    suggestions: Optional[object] = None  # engine.suggest.SuggestOutcome: unlabelled polygons to label next


# --------------------------------------------------------------------------------------------------------------
# The steps. Heavy modules (torch, GDAL) are imported inside the functions so that importing the pipeline is cheap.


def open_series(series: SeriesInput):
    """Opens the time series lazily (``engine.data.TimeSeries``)."""
    from .data import open_time_series

    return open_time_series(
        list(series.images),
        layout=series.layout,
        cloud_masks=series.cloud_masks,
        scl=series.scl,
        dates=series.dates,
        band_names=series.band_names,
        reference=series.reference,
        stack_order=series.stack_order,
        bands=series.bands,
        bbox=series.bbox,
        bbox_crs=series.bbox_crs,
    )  # what it noticed (products skipped or merged, ...) is in its warnings, which every step returns


def within_fields(series: SeriesInput, polygons: Optional[str], layer: Optional[str] = None) -> SeriesInput:
    """Sentinel-2 products are whole tiles: without a ``bbox`` only the extent of the ``polygons`` (layer ``layer``)
    is read from them."""
    from .data.sentinel2 import is_product_path, vector_extent

    if series.bbox is not None or not polygons or not any(is_product_path(p) for p in series.images):
        return series
    bbox, bbox_crs = vector_extent(polygons, layer)
    return replace(series, bbox=bbox, bbox_crs=bbox_crs)


def describe_series(series: SeriesInput) -> list[tuple[str, Optional[dt.date], list[str]]]:
    """For each image: its path, the acquisition date found (None if none), and its band names."""
    from .data.timeseries import describe_images

    return describe_images(list(series.images), layout=series.layout)


def read_model_classes(model_path: str):
    """The class table of a model file (``ClassTable``), or an error for a pre-trained-only model."""
    return _load_classifier(model_path).classes


def _load_classifier(model_path: str):
    """A model file that can map crops: a pre-trained-only model has no classes yet."""
    from .bundle import ModelBundle

    bundle = ModelBundle.load(model_path)
    if bundle.classes is None:
        raise EngineError(f"'{model_path}' is a pre-trained model without crop classes. Train it on labelled fields first.")
    return bundle


@guard_run("pretrain")
def pretrain(
    series: SeriesInput,
    out_model: str,
    options: PretrainOptions = PretrainOptions(),
    progress: Optional[ProgressCallback] = None,
    cancelled: Optional[CancelledCallback] = None,
) -> PretrainOutcome:
    """Self-supervised masked pre-training on the unlabelled series; writes a pre-trained ``.cropmodel``."""
    from . import regions
    from .data import band_statistics
    from .model import date_positions, make_config, season_start_for
    from .training import pretrain as run_pretrain

    started = time.perf_counter()
    reporter = as_reporter(progress, cancelled)
    check_writable(out_model)
    check_training_options(options)
    with open_series(series) as ts:
        reporter.report(0.0, "Computing band statistics")
        mean, std = band_statistics(ts, seed=options.seed)
        ts.exclude_extremes(mean, std)
        season_start = season_start_for(ts.dates)
        positions = date_positions(ts.dates, season_start, mode=options.date_encoding)
        values_per_pixel = len(ts.dates) * len(ts.band_names)
        windows = regions.pretraining_windows(ts.grid.width, ts.grid.height, values_per_pixel, seed=options.seed)
        scenes = regions.read_scenes(ts, windows, mean, std, positions, None, reporter.span(0.02, 0.1))
        bands = list(ts.band_names)
        inputs = _series_provenance(series, ts)
        warnings = _series_warnings(ts)
    if not scenes:
        raise EngineError("The images hold no valid observation (everything is nodata or cloud). Check the nodata value and cloud masks.")
    config = make_config(options.preset, len(bands), 1, date_encoding=options.date_encoding)
    result = run_pretrain(
        scenes,
        config,
        epochs=options.epochs,
        mask_ratio=options.mask_ratio,
        mask_mode=options.mask_mode,
        crop=options.crop,
        batch_size=options.batch_size,
        steps_per_epoch=options.steps_per_epoch,
        lr=options.lr,
        seed=options.seed,
        device=options.device,
        checkpoint=_checkpoint_path(out_model),
        resume=options.resume,
        time_budget_s=_budget_seconds(options.time_budget_minutes, started),
        progress=reporter.span(0.1, 0.98).report_callback(),
        cancelled=cancelled,
    )
    _save_model(
        out_model, config, result.state_dict, bands, mean, std, options.date_encoding, season_start, None, None,
        step="pretrain", inputs=inputs, options=asdict(options), history=result.history,
    )
    reporter.report(1.0, "Pre-training done")
    return PretrainOutcome(str(out_model), result.history, time.perf_counter() - started, warnings, result.schedule)


@guard_run("train")
def train(
    series: SeriesInput,
    labels: LabelInput,
    out_model: str,
    options: TrainOptions = TrainOptions(),
    init_model: Optional[str] = None,
    progress: Optional[ProgressCallback] = None,
    cancelled: Optional[CancelledCallback] = None,
    init_model_name: Optional[str] = None,
) -> TrainOutcome:
    """Fine-tunes STCLN on the labelled fields (from a pre-trained model, or from scratch); writes a ``.cropmodel``.

    ``init_model_name``: how the model's provenance names ``init_model`` (its final path when it is staged)."""
    from .bundle import ModelBundle
    from .data import band_statistics, rasterize_fields, split_fields
    from .model import date_positions, make_config, season_start_for
    from .training import finetune

    started = time.perf_counter()
    reporter = as_reporter(progress, cancelled)
    check_writable(out_model)
    check_training_options(options)
    _check_fractions(options)
    init = ModelBundle.load(init_model) if init_model else None
    with open_series(within_fields(series, labels.path, labels.layer)) as ts:
        if init is not None:
            init.check_bands(ts.band_names)
            bands = list(init.band_names)
            mean, std = np.asarray(init.mean, np.float32), np.asarray(init.std, np.float32)
            season_start = tuple(init.date_encoding["season_start"])
            encoding = init.date_encoding["mode"]
        else:
            bands = list(ts.band_names)
            reporter.report(0.0, "Computing band statistics")
            mean, std = band_statistics(ts, seed=options.seed)
            season_start = season_start_for(ts.dates)
            encoding = options.date_encoding
        ts.exclude_extremes(mean, std, bands)
        positions = date_positions(ts.dates, season_start, mode=encoding)
        reporter.report(0.02, "Rasterising the field polygons")
        fields = rasterize_fields(labels.path, ts.grid, labels.class_field, layer=labels.layer, colors=labels.colors)
        check_classes(fields.field_classes, [c.name for c in fields.classes])
        split = split_fields(
            fields.field_classes,
            val_fraction=options.val_fraction,
            test_fraction=options.test_fraction,
            label_fraction=options.label_fraction,
            seed=options.seed,
        )
        train_scenes, val_scenes = _labelled_scenes(ts, fields, split, mean, std, positions, bands, reporter.span(0.03, 0.1))
        inputs = _series_provenance(series, ts)
        pixel_area = ts.grid.pixel_area_m2
        series_warnings = _series_warnings(ts)
    classes = fields.classes
    overrides = {"date_encoding": encoding}
    if init is not None:
        config = make_config(init.config.preset, len(bands), len(classes), **{**_architecture(init.config), **overrides})
    else:
        config = make_config(options.preset, len(bands), len(classes), **overrides)
    result = finetune(
        train_scenes,
        val_scenes,
        config,
        init_state=init.state_dict if init is not None else None,
        epochs=options.epochs,
        crop=options.crop,
        batch_size=options.batch_size,
        steps_per_epoch=options.steps_per_epoch,
        lr=options.lr,
        class_weights=options.class_weights,
        patience=options.patience,
        seed=options.seed,
        device=options.device,
        checkpoint=_checkpoint_path(out_model),
        resume=options.resume,
        time_budget_s=_budget_seconds(options.time_budget_minutes, started),
        progress=reporter.span(0.1, 0.98).report_callback(),
        cancelled=cancelled,
    )
    split_summary = _split_summary(fields, split)
    field_splits = {fields.field_fids[i]: name for name in ("train", "val", "test", "unused")
                    for i in getattr(split, name)}
    warnings = list(fields.warnings) + series_warnings
    _save_model(
        out_model, config, result.state_dict, bands, mean, std, encoding, season_start, classes, split.to_dict(),
        step="train",
        inputs=inputs,
        labels={"path": str(labels.path), "layer": labels.layer, "class_field": labels.class_field},
        init_model=str(init_model_name or init_model) if init_model else None,
        pretrained=init is not None,
        options=asdict(options),
        label_pixels={c.name: int(fields.class_pixels.get(c.value, 0)) for c in classes},
        split=split_summary,
        history=result.history,
        best_epoch=result.best_epoch,
        validation=result.val_metrics,
        pixel_area_m2=pixel_area,
    )
    reporter.report(1.0, "Training done")
    return TrainOutcome(
        str(out_model), result.history, result.val_metrics, split_summary, warnings, time.perf_counter() - started,
        field_splits, result.schedule,
    )


@guard_run("predict")
def predict(
    model_path: str,
    series: SeriesInput,
    out_map: str,
    out_confidence: Optional[str] = None,
    out_probabilities: Optional[str] = None,
    fields: Optional[str] = None,
    fields_layer: Optional[str] = None,
    fields_out: Optional[str] = None,
    options: PredictOptions = PredictOptions(),
    extent: Optional[str] = None,
    progress: Optional[ProgressCallback] = None,
    cancelled: Optional[CancelledCallback] = None,
    field_splits: Optional[dict[int, str]] = None,
    out_uncertainty: Optional[str] = None,
) -> PredictOutcome:
    """Maps the crops over the whole series tile by tile; writes the class map and the optional outputs.

    ``field_splits`` (feature id -> train / val / test) adds a ``crop_split`` column to the field-level output.
    ``out_uncertainty``: normalised entropy of the class probabilities. Smoothing within parcels (``options.smoothing``
    with ``by_parcel``) uses the ``fields`` layer.
    """
    from .inference import field_results, predict_raster

    started = time.perf_counter()
    reporter = as_reporter(progress, cancelled)
    if fields_out and not fields:
        raise EngineError("A field-level output was asked for without a polygon layer: give the fields (parcels) layer too.")
    for path in (out_map, out_confidence, out_probabilities, fields_out, out_uncertainty):
        if path:
            check_writable(path)
    bundle = _load_classifier(model_path)
    # Every output is staged and renamed into place together at the end: an error or a cancel leaves none.
    with open_series(series) as ts, StagedOutputs() as staged:
        bundle.check_bands(ts.band_names)
        result = predict_raster(
            bundle,
            ts,
            out_map,
            out_confidence=out_confidence,
            out_probabilities=out_probabilities,
            tile=options.tile,
            overlap=options.overlap,
            batch_size=options.batch_size,
            device=options.device,
            extent_mask=extent,
            field_vector=fields if fields_out else None,
            field_layer=fields_layer,
            progress=reporter.span(0.0, 0.95 if fields_out else 1.0).report_callback(),
            cancelled=cancelled,
            staging=staged,
            out_uncertainty=out_uncertainty,
            smoothing=options.smoothing,
            parcel_vector=fields,
            parcel_layer=fields_layer,
        )
        fields_path = None
        if fields_out and _is_main_process():
            reporter.report(0.95, "Writing field-level results")
            fields_path = field_results(bundle.classes, result, fields, fields_out, layer=fields_layer,
                                        staging=staged, field_splits=field_splits)
        warnings = _series_warnings(ts) + _nodata_warnings(result, ts, extent)
        reporter.check()
    reporter.report(1.0, "Map written")
    return PredictOutcome(
        str(out_map),
        str(out_confidence) if out_confidence else None,
        str(out_probabilities) if out_probabilities else None,
        str(fields_path) if fields_path else None,
        int(result.pixels),
        time.perf_counter() - started,
        warnings,
        uncertainty_path=str(out_uncertainty) if out_uncertainty else None,
    )


@guard_run("evaluate")
def evaluate(
    map_path: str,
    labels: LabelInput,
    report_dir: str,
    model_path: Optional[str] = None,
    split: str = "test",
    progress: Optional[ProgressCallback] = None,
    cancelled: Optional[CancelledCallback] = None,
    map_name: Optional[str] = None,
    series: Optional[SeriesInput] = None,
) -> EvaluateOutcome:
    """Accuracy of a class map against labelled fields: confusion matrix, OA, kappa, mIoU, per-class scores, areas.

    With a model, ``split`` picks its ``test`` (or ``val``, ``train``) fields so that the fields it learnt from are not
    counted; ``all`` (and no model) uses every labelled field. ``map_name``: how the report names the map (its
    final path when it is staged; default ``map_path``). With ``series``, the report also shows the class time
    series (NDVI or a band) over the model's training fields (every labelled field without a split).
    """
    from .bundle import ModelBundle
    from .data import rasterize_fields
    from .evaluation import confusion_matrix, metrics_from_confusion, write_reports
    from .evaluation.area import add_area_estimates
    from .mapfile import class_table_from_map, map_histogram, open_map

    reporter = as_reporter(progress, cancelled)
    if split not in ("test", "val", "train", "all"):
        raise EngineError(f"Unknown split '{split}': use test, val, train or all.")
    bundle = ModelBundle.load(model_path) if model_path else None
    map_dataset, grid = open_map(map_path)
    classes = bundle.classes if bundle is not None and bundle.classes is not None else class_table_from_map(map_dataset)
    reporter.report(0.05, "Rasterising the field polygons")
    fields = rasterize_fields(labels.path, grid, labels.class_field, layer=labels.layer, class_table=classes)
    chosen = None
    if bundle is not None and split != "all":
        if not bundle.split:
            raise EngineError(f"The model '{model_path}' stores no field split; evaluate with split 'all'.")
        chosen = np.asarray(bundle.split.get(split, []), dtype=np.int64)
    x0, y0, w, h = fields.window
    predicted = map_dataset.GetRasterBand(1).ReadAsArray(x0, y0, w, h).astype(np.int64)
    reporter.report(0.3, "Comparing the map with the fields")
    use = fields.labels > 0
    if chosen is not None:
        use &= np.isin(fields.field_ids, chosen)
    if not use.any():
        raise EngineError(
            f"No labelled pixel of the '{split}' fields lies on the map. Check that the map and the polygons cover the same area."
        )
    mapped = use & (predicted > 0)
    cm = confusion_matrix(fields.labels[mapped], predicted[mapped], len(classes))
    reporter.report(0.6, "Measuring mapped areas")
    counts = map_histogram(map_dataset, len(classes), cancelled=cancelled)
    metrics = metrics_from_confusion(cm, classes, grid.pixel_area_m2, mapped_counts=counts[1:])
    kept = None if chosen is None else set(chosen.tolist())
    used_fields = [fid for fid in fields.field_classes if kept is None or fid in kept]
    for row in metrics["per_class"]:
        row["fields"] = sum(1 for fid in used_fields if fields.field_classes[fid] == row["value"])
    add_area_estimates(metrics, cm, counts[1:], grid.pixel_area_m2)
    metrics["split"] = split
    metrics["unmapped_reference_pixels"] = int((use & ~mapped).sum())
    metrics["map"] = str(map_name or map_path)
    metrics["labels"] = str(labels.path)
    map_dataset = None
    if series is not None:
        from .evaluation.profiles import class_profiles

        train_ids = bundle.split.get("train") if bundle is not None and bundle.split else None
        with open_series(series) as ts:
            if (ts.grid.width, ts.grid.height, tuple(ts.grid.geotransform)) == (grid.width, grid.height,
                                                                                 tuple(grid.geotransform)):
                metrics["class_profiles"] = class_profiles(ts, fields, train_ids, reporter=reporter.span(0.7, 0.95))
    json_path, csv_path, html_path = write_reports(
        metrics, report_dir, title=f"CropMapper accuracy report: {Path(map_path).name}"
    )
    reporter.report(1.0, "Report written")
    return EvaluateOutcome(metrics, str(json_path), str(csv_path), str(html_path))


@guard_run("map_crops")
def map_crops(
    series: SeriesInput,
    labels: LabelInput,
    out_dir: str,
    train_options: TrainOptions = TrainOptions(),
    pretrain_options: Optional[PretrainOptions] = None,
    predict_options: PredictOptions = PredictOptions(),
    existing_model: Optional[str] = None,
    outputs: tuple = ("map", "confidence", "fields", "report"),
    progress: Optional[ProgressCallback] = None,
    cancelled: Optional[CancelledCallback] = None,
    final_dir: Optional[str] = None,
    time_budget_minutes: Optional[float] = None,
) -> MapCropsOutcome:
    """All steps: [pre-train] -> train (or an existing model) -> map -> field results -> accuracy report.

    Writes into ``out_dir``: ``model.cropmodel`` (and ``pretrained.cropmodel``), ``crop_map.tif``,
    ``confidence.tif``, ``fields.gpkg`` and ``report/`` (and ``probabilities.tif``, one band per class, when
    ``outputs`` names ``probabilities``; ``uncertainty.tif`` with ``"uncertainty"``; ``suggested_fields.gpkg`` with
    ``"suggestions"``, when the polygons include unlabelled ones). ``final_dir``: where the caller moves these files
    after the run (``out_dir`` is then a staging folder); the report and the model's provenance name the paths there.
    ``time_budget_minutes`` bounds pre-training plus training (``PRETRAIN_BUDGET_SHARE``); what training chose is
    in ``train.schedule``.
    """
    if time_budget_minutes is not None:
        _check_time_budget(time_budget_minutes)
    series = within_fields(series, labels.path, labels.layer)
    folder = Path(out_dir)
    existed = folder.exists()
    check_writable(folder / "crop_map.tif")
    before = set(folder.rglob("*"))
    try:
        return _map_crops(
            series, labels, folder, train_options, pretrain_options, predict_options, existing_model, outputs,
            as_reporter(progress, cancelled), cancelled, Path(final_dir) if final_dir else folder,
            time_budget_minutes,
        )
    except BaseException:
        # The steps that finished wrote complete files, but a cancelled or failed job leaves none of its outputs.
        _remove_new_files(folder, before, remove_folder=not existed)
        raise


# Share of a map_crops time budget given to pre-training; training gets the rest, including what pre-training
# left unused.
PRETRAIN_BUDGET_SHARE = 0.35


def _budget_seconds(minutes: Optional[float], started: float) -> Optional[float]:
    """Seconds a training step may use: ``minutes`` less what the step spent before training (reading)."""
    if minutes is None:
        return None
    _check_time_budget(minutes)
    return max(1.0, minutes * 60.0 - (time.perf_counter() - started))


def _check_time_budget(minutes: float) -> None:
    if not (minutes > 0 and minutes != float("inf")):
        raise EngineError(f"The time budget must be a positive number of minutes, not {minutes}. "
                          "Give e.g. 10, or leave it empty to train for the epochs asked.")


def _remove_new_files(folder: Path, before: set, remove_folder: bool) -> None:
    import shutil

    for path in sorted(set(folder.rglob("*")) - before, key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if remove_folder:
        shutil.rmtree(folder, ignore_errors=True)


def _map_crops(series, labels, folder, train_options, pretrain_options, predict_options, existing_model, outputs,
               reporter, cancelled, final: Path, time_budget_minutes=None) -> MapCropsOutcome:
    warnings: list[str] = []
    notes: list[str] = []

    def final_name(path: str) -> str:
        return str(final / Path(path).relative_to(folder))

    trained: Optional[TrainOutcome] = None
    if existing_model:
        model_path = str(existing_model)
        predict_from = 0.0
    else:
        init = None
        train_from = 0.0
        began = time.perf_counter()
        if pretrain_options is not None and time_budget_minutes:
            pretrain_options = replace(pretrain_options,
                                       time_budget_minutes=time_budget_minutes * PRETRAIN_BUDGET_SHARE)
        if pretrain_options is not None:
            init = str(folder / "pretrained.cropmodel")
            pretrained = pretrain(series, init, pretrain_options, reporter.span(0.0, 0.3).report_callback(), cancelled)
            notes.append(f"Pre-training: {pretrained.schedule['note']}" if time_budget_minutes else "")
            train_from = 0.3
        if time_budget_minutes:
            left = time_budget_minutes - (time.perf_counter() - began) / 60.0
            train_options = replace(train_options, time_budget_minutes=max(left, 0.1))
        model_path = str(folder / "model.cropmodel")
        trained = train(series, labels, model_path, train_options, init, reporter.span(train_from, 0.75).report_callback(),
                        cancelled, init_model_name=final_name(init) if init else None)
        warnings += trained.warnings
        notes.append(f"Training: {trained.schedule['note']}" if time_budget_minutes else "")
        predict_from = 0.75
    predicted = predict(
        model_path,
        series,
        str(folder / "crop_map.tif"),
        out_confidence=str(folder / "confidence.tif") if "confidence" in outputs else None,
        out_probabilities=str(folder / "probabilities.tif") if "probabilities" in outputs else None,
        fields=labels.path if "fields" in outputs else None,
        fields_layer=labels.layer,
        fields_out=str(folder / "fields.gpkg") if "fields" in outputs else None,
        options=predict_options,
        progress=reporter.span(predict_from, 0.95).report_callback(),
        cancelled=cancelled,
        field_splits=trained.field_splits if trained is not None else None,
        out_uncertainty=str(folder / "uncertainty.tif") if "uncertainty" in outputs else None,
    )
    suggestions = None
    if "suggestions" in outputs:
        from .suggest import suggest_unlabelled

        suggestions = suggest_unlabelled(model_path, series, labels, str(folder / "suggested_fields.gpkg"),
                                         predict_options, progress=reporter.span(0.95, 0.97).report_callback(),
                                         cancelled=cancelled)
    report = None
    if "report" in outputs:
        split = "test" if trained is not None else "all"
        if trained is None:
            warnings.append("The accuracy report uses every labelled field: some may have been used to train the model.")
        report = evaluate(
            predicted.map_path, labels, str(folder / "report"), model_path, split,
            reporter.span(0.97, 1.0).report_callback(), cancelled, map_name=final_name(predicted.map_path),
            series=series,
        )
    reporter.report(1.0, "Done")
    return MapCropsOutcome(model_path, predicted, report, trained, warnings, " ".join(n for n in notes if n) or None,
                           suggestions)


# --------------------------------------------------------------------------------------------------------------


def _labelled_scenes(ts, fields, split, mean, std, positions, bands, reporter):
    """Reads the labelled region as training scenes (blocks) and the validation fields as small scenes.

    Validation runs every epoch, so each validation field is read with just a margin of spatial context
    instead of whole blocks.
    """
    from . import regions

    train_ids = np.asarray(split.train, dtype=np.int32)
    train_scenes = []
    x0, y0, w, h = fields.window
    windows = regions.tile_windows(*_with_margin(ts.grid, x0, y0, w, h))
    for i, window in enumerate(windows):
        reporter.report(0.8 * i / len(windows), "Reading the labelled fields")
        scene = _field_scene(ts, fields, window, train_ids, mean, std, positions, bands)
        if scene is not None:
            train_scenes.append(scene)
    if not train_scenes:
        raise EngineError("No training field has a valid pixel on the images. Check the polygons and the cloud masks.")
    val_scenes = []
    for field_id in split.val:
        rows, cols = np.nonzero(fields.field_ids == field_id)
        if rows.size == 0:
            continue
        box = _with_margin(ts.grid, x0 + int(cols.min()), y0 + int(rows.min()), int(np.ptp(cols)) + 1, int(np.ptp(rows)) + 1)
        scene = _field_scene(ts, fields, box, np.asarray([field_id], np.int32), mean, std, positions, bands)
        if scene is not None:
            val_scenes.append(scene)
    reporter.report(1.0, "Reading the labelled fields")
    return train_scenes, val_scenes


FIELD_MARGIN = 8  # pixels of context read around labelled fields (the spatial encoder sees 9 x 9)


def _with_margin(grid, x0: int, y0: int, w: int, h: int) -> tuple[int, int, int, int]:
    gx0, gy0 = max(0, x0 - FIELD_MARGIN), max(0, y0 - FIELD_MARGIN)
    gx1, gy1 = min(grid.width, x0 + w + FIELD_MARGIN), min(grid.height, y0 + h + FIELD_MARGIN)
    return gx0, gy0, gx1 - gx0, gy1 - gy0


def _field_scene(ts, fields, window, keep_ids, mean, std, positions, bands):
    """The scene of one grid window, labelled only on the fields in ``keep_ids``; None when none is there."""
    from .training import Scene

    bx, by, bw, bh = window
    fx0, fy0, fw, fh = fields.window
    labels = np.zeros((bh, bw), np.int64)
    field_ids = np.zeros((bh, bw), np.int32)
    # The overlap of the window with the rasterised fields' window.
    ox0, oy0 = max(bx, fx0), max(by, fy0)
    ox1, oy1 = min(bx + bw, fx0 + fw), min(by + bh, fy0 + fh)
    if ox1 <= ox0 or oy1 <= oy0:
        return None
    field_ids[oy0 - by : oy1 - by, ox0 - bx : ox1 - bx] = fields.field_ids[oy0 - fy0 : oy1 - fy0, ox0 - fx0 : ox1 - fx0]
    labels[oy0 - by : oy1 - by, ox0 - bx : ox1 - bx] = fields.labels[oy0 - fy0 : oy1 - fy0, ox0 - fx0 : ox1 - fx0]
    keep = np.isin(field_ids, keep_ids)
    if not keep.any():
        return None
    x, valid = ts.read(bx, by, bw, bh, bands=list(bands))
    return Scene(normalise_input(x, valid, mean, std), valid, positions, np.where(keep, labels, 0), field_ids)


def normalise_input(x, valid, mean, std):
    from .data.normalization import normalise

    return normalise(x, valid, mean, std)


def _split_summary(fields, split) -> dict:
    summary = {}
    for name in ("train", "val", "test"):
        ids = list(getattr(split, name))
        pixels = int(np.isin(fields.field_ids, ids).sum() if ids else 0)
        summary[name] = {"fields": len(ids), "pixels": pixels}
    return summary


def _architecture(config) -> dict:
    """The sizes of a pre-trained model's config, so fine-tuning builds the same backbone."""
    keep = ("spatial_channels", "d_model", "n_heads", "n_layers", "d_ff", "dropout", "use_sta")
    return {k: v for k, v in config.to_dict().items() if k in keep}


def _series_provenance(series: SeriesInput, ts) -> dict:
    return {
        "images": [str(p) for p in series.images],
        "layout": series.layout,
        "cloud_masks": bool(series.cloud_masks),
        "scl": bool(series.scl),
        "dates": [d.isoformat() for d in ts.dates],
        "bands": list(ts.band_names),
        "size": [ts.grid.width, ts.grid.height],
    }


def _series_warnings(ts) -> list[str]:
    """What the time series noticed about its inputs: duplicate dates, dates off the grid, extreme values."""
    extreme = ts.extreme_warning()
    return list(ts.warnings) + ([extreme] if extreme else [])


def _nodata_warnings(result, ts, extent) -> list[str]:
    from .inference.nodata import nodata_warning

    message = nodata_warning(result, has_cloud_masks=ts.has_cloud_masks, has_extent=bool(extent))
    return [message] if message else []


def _check_fractions(options: TrainOptions) -> None:
    if not 0.0 < options.label_fraction <= 1.0:
        raise EngineError(f"The label fraction must be above 0 and at most 1 (got {options.label_fraction}).")
    for name, value in (("validation", options.val_fraction), ("test", options.test_fraction)):
        if not 0.0 <= value < 1.0:
            raise EngineError(f"The {name} fraction must be at least 0 and below 1 (got {value}).")
    if options.val_fraction + options.test_fraction >= 1.0:
        raise EngineError("The validation and test fractions together must leave fields for training (sum below 1).")


def _save_model(out_model, config, state_dict, bands, mean, std, encoding, season_start, classes, field_split,
                **provenance):
    """Writes the model file (rank 0 only under torchrun) and removes the run's checkpoint."""
    from .bundle import ModelBundle

    if not _is_main_process():
        return
    ModelBundle(
        config=config,
        state_dict=state_dict,
        band_names=list(bands),
        mean=[float(v) for v in mean],
        std=[float(v) for v in std],
        date_encoding={"mode": encoding, "season_start": list(season_start)},
        classes=classes,
        kind="pretrained" if classes is None else "classifier",
        provenance={**provenance, "engine_version": __version__, "created": dt.datetime.now().isoformat(timespec="seconds")},
        split=field_split,
    ).save(out_model)
    _remove_checkpoint(out_model)


def _checkpoint_path(out_model: str) -> str:
    return str(out_model) + ".checkpoint"


def _remove_checkpoint(out_model: str) -> None:
    Path(_checkpoint_path(out_model)).unlink(missing_ok=True)


def _is_main_process() -> bool:
    from .training.distributed import is_main_process

    return is_main_process()
