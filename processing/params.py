"""Parameters the algorithms share (time series, labels, training / pre-training / prediction options), with the
functions that turn their values into the engine's plain inputs."""

from __future__ import annotations

import datetime as dt
from typing import Optional

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsRasterLayer,
)

SERIES = "SERIES"
LAYOUT = "LAYOUT"
STACK_ORDER = "STACK_ORDER"
CLOUD_MASKS = "CLOUD_MASKS"
SCL = "SCL"
DATES = "DATES"
BAND_NAMES = "BAND_NAMES"
S2_PRODUCTS = "S2_PRODUCTS"
S2_BANDS = "S2_BANDS"
AREA = "AREA"
POLYGONS = "POLYGONS"
CLASS_FIELD = "CLASS_FIELD"
PRESET = "PRESET"
EPOCHS = "EPOCHS"
BATCH_SIZE = "BATCH_SIZE"
LEARNING_RATE = "LEARNING_RATE"
LABEL_FRACTION = "LABEL_FRACTION"
VAL_FRACTION = "VAL_FRACTION"
TEST_FRACTION = "TEST_FRACTION"
SEED = "SEED"
DEVICE = "DEVICE"
PRETRAIN = "PRETRAIN"
PRETRAIN_EPOCHS = "PRETRAIN_EPOCHS"
MASK_RATIO = "MASK_RATIO"
MASK_MODE = "MASK_MODE"
STEPS_PER_EPOCH = "STEPS_PER_EPOCH"
TILE = "TILE"
OVERLAP = "OVERLAP"
PREDICT_BATCH = "PREDICT_BATCH"
TIME_BUDGET = "TIME_BUDGET"

# Values the engine takes (by the index Processing returns) and the names a user reads, in the same order.
LAYOUTS = ["per-date", "per-band", "stack"]
LAYOUT_NAMES = ["One file per date (all bands)", "One file per band and date", "One file with all dates (stack)"]
STACK_ORDERS = ["date-major", "band-major"]
STACK_ORDER_NAMES = ["Date-major (d1b1, d1b2, …, d2b1, …)", "Band-major (b1d1, b1d2, …, b2d1, …)"]
PRESETS = ["lite", "paper"]
PRESET_NAMES = ["lite: small and fast (CPU, laptop)", "paper: published STCLN sizes (GPU)"]
MASK_MODES = ["spatiotemporal", "temporal", "spatial"]
MASK_MODE_NAMES = ["Spatiotemporal (the paper's)", "Temporal only (ablation)", "Spatial only (ablation)"]


def _advanced(parameter: QgsProcessingParameterDefinition) -> QgsProcessingParameterDefinition:
    parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
    return parameter


def add(alg: QgsProcessingAlgorithm, parameter: QgsProcessingParameterDefinition, help_text: str) -> None:
    """Adds ``parameter`` with its help text."""
    parameter.setHelp(help_text)
    alg.addParameter(parameter)


# Time series
def add_series_parameters(alg: QgsProcessingAlgorithm) -> None:
    add(alg, QgsProcessingParameterMultipleLayers(SERIES, "Time series rasters", QgsProcessing.TypeRaster,
                                                   optional=True),
         "The Sentinel-2 images, one file per date (or see Layout). Dates are read from the file metadata or names. "
         "Optional when Sentinel-2 products are given.")
    add_product_parameters(alg)
    add(alg, QgsProcessingParameterEnum(LAYOUT, "Layout", LAYOUT_NAMES, defaultValue=0),
         "per-date: one multi-band file per date; per-band: one file per band and date; stack: one file with all dates.")
    add(alg, _advanced(QgsProcessingParameterEnum(STACK_ORDER, "Band order of a stack", STACK_ORDER_NAMES,
                                                             defaultValue=0)),
         "For the stack layout: date-major (d1b1 d1b2 ... d2b1) or band-major (b1d1 b1d2 ...).")
    add(alg, QgsProcessingParameterMultipleLayers(CLOUD_MASKS, "Cloud masks", QgsProcessing.TypeRaster,
                                                   optional=True),
         "One mask per date, non-zero = cloud. Matched to the images by date.")
    add(alg, QgsProcessingParameterMultipleLayers(SCL, "Sentinel-2 SCL layers", QgsProcessing.TypeRaster,
                                                   optional=True),
         "One scene classification layer per date; cloud, shadow, snow and nodata classes are masked.")
    add(alg, _advanced(QgsProcessingParameterString(DATES, "Acquisition dates", optional=True)),
         "Comma-separated YYYY-MM-DD, one per image in the order given; overrides the dates found in the files.")
    add(alg, _advanced(QgsProcessingParameterString(BAND_NAMES, "Band names", optional=True)),
         "Comma-separated band names, e.g. B02,B03,B04,B08; default: the band descriptions of the files.")


def add_product_parameters(alg: QgsProcessingAlgorithm) -> None:
    """Sentinel-2 products as downloaded, their bands, and the area read from them."""
    add(alg, QgsProcessingParameterMultipleLayers(S2_PRODUCTS, "Sentinel-2 products",
                                                   QgsProcessing.TypeFile, optional=True),
         "L2A or L1C products as downloaded: .SAFE.zip files or .SAFE folders (or their MTD_MSIL2A.xml), one per "
         "date, read without unzipping; bands resampled to 10 m, harmonised across processing baselines, clouds "
         "masked by the products' SCL. May be mixed with time series rasters of the same bands.")
    from ..engine.data.sentinel2 import DEFAULT_BANDS

    add(alg, _advanced(QgsProcessingParameterString(S2_BANDS, "Bands read from the products",
                                                     defaultValue=",".join(DEFAULT_BANDS), optional=True)),
         "Comma-separated Sentinel-2 bands, e.g. B02,B03,B04,B08; 20 m and 60 m bands are resampled to 10 m.")
    add(alg, QgsProcessingParameterExtent(AREA, "Area to read from the products", optional=True),
         "Only this extent is read (default: the fields' extent when fields are given, else the whole tile).")


def _product_paths(alg, parameters, context) -> list[str]:
    from pathlib import Path

    paths = []
    for value in alg.parameterAsFileList(parameters, S2_PRODUCTS, context):  # QGIS >= 3.10
        path = str(value or "").strip()
        if not path:  # an unset optional list comes back as ['']
            continue
        if Path(path).name.upper().startswith("MTD_MSIL"):
            path = str(Path(path).parent)
        paths.append(path)
    return paths


def _paths(alg, parameters, name, context) -> Optional[list[str]]:
    layers = alg.parameterAsLayerList(parameters, name, context)
    paths = []
    for layer in layers:
        if not isinstance(layer, QgsRasterLayer):
            raise QgsProcessingException(f"'{layer.name()}' is not a raster layer.")
        if layer.providerType() != "gdal":
            raise QgsProcessingException(f"'{layer.name()}' is not a raster file that GDAL can read.")
        from qgis.core import QgsProviderRegistry

        paths.append(QgsProviderRegistry.instance().decodeUri("gdal", layer.source()).get("path") or layer.source())
    return paths or None


def parse_dates(text: str) -> Optional[list[dt.date]]:
    """``'2020-05-01, 2020-05-11'`` -> dates; empty -> None."""
    items = [t.strip() for t in (text or "").replace(";", ",").split(",") if t.strip()]
    try:
        return [dt.date.fromisoformat(t) for t in items] or None
    except ValueError:
        raise QgsProcessingException(f"Cannot read the dates '{text}': write them as YYYY-MM-DD, comma-separated.") from None


def series_input(alg: QgsProcessingAlgorithm, parameters: dict, context: QgsProcessingContext):
    """The engine's ``SeriesInput`` from the series parameters."""
    from ..engine.pipeline import SeriesInput

    products = _product_paths(alg, parameters, context)
    images = (_paths(alg, parameters, SERIES, context) or []) + products
    if not images:
        raise QgsProcessingException("Choose at least one time series raster or Sentinel-2 product.")
    band_text = alg.parameterAsString(parameters, BAND_NAMES, context)
    bbox, bbox_crs = _product_area(alg, parameters, context) if products else (None, None)
    return SeriesInput(
        images=images,
        layout=LAYOUTS[alg.parameterAsEnum(parameters, LAYOUT, context)],
        cloud_masks=_paths(alg, parameters, CLOUD_MASKS, context),
        scl=_paths(alg, parameters, SCL, context),
        dates=parse_dates(alg.parameterAsString(parameters, DATES, context)),
        band_names=[b.strip() for b in band_text.split(",") if b.strip()] or None,
        stack_order=STACK_ORDERS[alg.parameterAsEnum(parameters, STACK_ORDER, context)],
        bands=[b.strip() for b in (alg.parameterAsString(parameters, S2_BANDS, context) or "").split(",")
               if b.strip()] or None,
        bbox=bbox,
        bbox_crs=bbox_crs,
    )


def _product_area(alg, parameters, context) -> tuple[Optional[tuple], Optional[str]]:
    """The area read from products: the AREA parameter, else the extent of the fields (POLYGONS), else all."""
    if parameters.get(AREA):
        crs = alg.parameterAsExtentCrs(parameters, AREA, context)
        rect = alg.parameterAsExtent(parameters, AREA, context, crs)
    elif POLYGONS in parameters and parameters.get(POLYGONS):
        source = alg.parameterAsSource(parameters, POLYGONS, context)
        if source is None:
            return None, None
        crs, rect = source.sourceCrs(), source.sourceExtent()
    else:
        return None, None
    if rect.isEmpty() or not crs.isValid():
        return None, None
    return (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()), crs.toWkt()


# Labels
def add_label_parameters(alg: QgsProcessingAlgorithm, optional: bool = False) -> None:
    add(alg, QgsProcessingParameterFeatureSource(POLYGONS, "Labelled field polygons",
                                                  [QgsProcessing.TypeVectorPolygon], optional=optional),
         "Digitised fields with a crop-class attribute. Fields are split into training, validation and test sets.")
    add(alg, QgsProcessingParameterField(CLASS_FIELD, "Class field", parentLayerParameterName=POLYGONS,
                                          optional=optional),
         "The attribute holding the crop class (text or integer). Empty values are ignored.")


def label_input(alg, parameters: dict, context: QgsProcessingContext, feedback: QgsProcessingFeedback):
    """The engine's ``LabelInput``, or None when no polygons were given; colours come from a categorised renderer."""
    from ..engine.pipeline import LabelInput

    if not parameters.get(POLYGONS):
        return None
    field = alg.parameterAsString(parameters, CLASS_FIELD, context)
    if not field:
        raise QgsProcessingException("Choose the class field of the polygons.")
    path, layer_name = alg.parameterAsCompatibleSourceLayerPathAndLayerName(
        parameters, POLYGONS, context, ["gpkg", "shp", "geojson", "fgb", "sqlite"], "gpkg", feedback
    )
    colors = None
    vector = alg.parameterAsVectorLayer(parameters, POLYGONS, context)
    if vector is not None:
        from ..ui.layers import categorized_colors

        colors = categorized_colors(vector, field) or None
    return LabelInput(path=path, class_field=field, layer=layer_name or None, colors=colors)


# Options
def add_device_parameter(alg: QgsProcessingAlgorithm) -> None:
    add(alg, _advanced(QgsProcessingParameterString(DEVICE, "Device", defaultValue="auto")),
         "auto (CUDA GPU when available, else CPU), cpu, cuda, cuda:N or mps.")


def add_train_parameters(alg: QgsProcessingAlgorithm, epochs: int = 30) -> None:
    add(alg, QgsProcessingParameterEnum(PRESET, "Model size", PRESET_NAMES, defaultValue=0),
         "lite: small and fast, for CPUs and laptops; paper: the published STCLN sizes (use a GPU).")
    add(alg, QgsProcessingParameterNumber(EPOCHS, "Training epochs", QgsProcessingParameterNumber.Integer,
                                           defaultValue=epochs, minValue=1),
         "Passes over the training fields; the model with the best validation mIoU is kept.")
    add(alg, _advanced(QgsProcessingParameterNumber(BATCH_SIZE, "Batch size", QgsProcessingParameterNumber.Integer,
                                                     defaultValue=8, minValue=1)), "Crops per training step.")
    add(alg, _advanced(QgsProcessingParameterNumber(LEARNING_RATE, "Learning rate", QgsProcessingParameterNumber.Double,
                                                     defaultValue=1e-3, minValue=1e-7)), "Adam learning rate.")
    add(alg, QgsProcessingParameterNumber(LABEL_FRACTION, "Fraction of training fields used",
                                           QgsProcessingParameterNumber.Double, defaultValue=1.0, minValue=0.01,
                                           maxValue=1.0),
         "Use only part of the training fields (to study how many labels are needed).")
    add(alg, QgsProcessingParameterNumber(VAL_FRACTION, "Validation fraction", QgsProcessingParameterNumber.Double,
                                           defaultValue=0.2, minValue=0.0, maxValue=0.9),
         "Share of the fields kept for choosing the best epoch.")
    add(alg, QgsProcessingParameterNumber(TEST_FRACTION, "Test fraction", QgsProcessingParameterNumber.Double,
                                           defaultValue=0.2, minValue=0.0, maxValue=0.9),
         "Share of the fields kept out of training for the accuracy report.")
    add(alg, _advanced(QgsProcessingParameterNumber(SEED, "Random seed", QgsProcessingParameterNumber.Integer,
                                                     defaultValue=0)), "Makes the split and training repeatable.")


def check_fractions(alg, parameters: dict, context: QgsProcessingContext) -> None:
    val = alg.parameterAsDouble(parameters, VAL_FRACTION, context)
    test = alg.parameterAsDouble(parameters, TEST_FRACTION, context)
    if val + test >= 0.95:
        raise QgsProcessingException(
            f"Validation ({val:g}) and test ({test:g}) fractions leave almost no fields for training: lower them."
        )


def train_options(alg, parameters: dict, context: QgsProcessingContext):
    from ..engine.pipeline import TrainOptions

    return TrainOptions(
        preset=PRESETS[alg.parameterAsEnum(parameters, PRESET, context)],
        epochs=alg.parameterAsInt(parameters, EPOCHS, context),
        batch_size=alg.parameterAsInt(parameters, BATCH_SIZE, context),
        lr=alg.parameterAsDouble(parameters, LEARNING_RATE, context),
        label_fraction=alg.parameterAsDouble(parameters, LABEL_FRACTION, context),
        val_fraction=alg.parameterAsDouble(parameters, VAL_FRACTION, context),
        test_fraction=alg.parameterAsDouble(parameters, TEST_FRACTION, context),
        seed=alg.parameterAsInt(parameters, SEED, context),
        device=alg.parameterAsString(parameters, DEVICE, context) or "auto",
    )


def add_pretrain_parameters(alg: QgsProcessingAlgorithm, switch: bool = False, epochs: int = 10) -> None:
    if switch:
        add(alg, QgsProcessingParameterBoolean(PRETRAIN, "Pre-train on the unlabelled images first", defaultValue=True),
             "Self-supervised masked pre-training (STCLN_wp): helps most when labels are few.")
    add(alg, QgsProcessingParameterNumber(PRETRAIN_EPOCHS, "Pre-training epochs", QgsProcessingParameterNumber.Integer,
                                           defaultValue=epochs, minValue=1), "Passes of masked pre-training.")
    add(alg, QgsProcessingParameterNumber(MASK_RATIO, "Mask ratio", QgsProcessingParameterNumber.Double,
                                           defaultValue=0.4, minValue=0.05, maxValue=0.95),
         "Share of (date, pixel) observations hidden and reconstructed; the paper uses 0.4.")
    add(alg, _advanced(QgsProcessingParameterEnum(MASK_MODE, "Masking", MASK_MODE_NAMES, defaultValue=0)),
         "spatiotemporal (the paper's), or temporal-only / spatial-only for ablation.")
    add(alg, _advanced(QgsProcessingParameterNumber(STEPS_PER_EPOCH, "Steps per epoch (0 = automatic)",
                                                     QgsProcessingParameterNumber.Integer, defaultValue=0, minValue=0)),
         "Random crops per pre-training epoch; 0 lets the engine choose from the image size.")


def pretrain_options(alg, parameters: dict, context: QgsProcessingContext, preset: Optional[str] = None):
    from ..engine.pipeline import PretrainOptions

    steps = alg.parameterAsInt(parameters, STEPS_PER_EPOCH, context)
    return PretrainOptions(
        preset=preset or PRESETS[alg.parameterAsEnum(parameters, PRESET, context)],
        epochs=alg.parameterAsInt(parameters, PRETRAIN_EPOCHS, context),
        mask_ratio=alg.parameterAsDouble(parameters, MASK_RATIO, context),
        mask_mode=MASK_MODES[alg.parameterAsEnum(parameters, MASK_MODE, context)],
        steps_per_epoch=steps or None,
        device=alg.parameterAsString(parameters, DEVICE, context) or "auto",
    )


def add_time_budget_parameter(alg: QgsProcessingAlgorithm) -> None:
    add(alg, QgsProcessingParameterNumber(TIME_BUDGET, "Time budget for training (minutes, 0 = no limit)",
                                           QgsProcessingParameterNumber.Double, defaultValue=0.0, minValue=0.0),
         "Runs fewer epochs (and steps per epoch) than asked where they would not fit, measured as training goes, "
         "and says in the log what it chose. Covers pre-training and training together.")


def time_budget(alg, parameters: dict, context: QgsProcessingContext) -> Optional[float]:
    """The time budget in minutes, or None for no limit."""
    return alg.parameterAsDouble(parameters, TIME_BUDGET, context) or None


def add_predict_parameters(alg: QgsProcessingAlgorithm) -> None:
    add(alg, _advanced(QgsProcessingParameterNumber(TILE, "Tile size (pixels)", QgsProcessingParameterNumber.Integer,
                                                     defaultValue=32, minValue=8)),
         "Windows the map is predicted in; the attention costs grow with the square of the tile area.")
    add(alg, _advanced(QgsProcessingParameterNumber(OVERLAP, "Tile overlap (pixels)",
                                                     QgsProcessingParameterNumber.Integer, defaultValue=8, minValue=0)),
         "Overlapping borders are blended to avoid seams.")
    add(alg, _advanced(QgsProcessingParameterNumber(PREDICT_BATCH, "Prediction batch size",
                                                     QgsProcessingParameterNumber.Integer, defaultValue=16, minValue=1)),
         "Tiles per forward pass; lower it when memory runs out.")


SMOOTH = "SMOOTH"
SMOOTH_WINDOW = "SMOOTH_WINDOW"
SMOOTHNESS = "SMOOTHNESS"
SMOOTH_NEIGH_FRACTION = "SMOOTH_NEIGH_FRACTION"
SMOOTH_BY_PARCEL = "SMOOTH_BY_PARCEL"


def add_smoothing_parameters(alg: QgsProcessingAlgorithm) -> None:
    """Bayesian smoothing before the argmax (off by default); defaults, bounds and help from the engine."""
    from ..engine.smoothing_options import SmoothingOptions as S

    add(alg, QgsProcessingParameterBoolean(SMOOTH, "Smooth the probabilities (Bayesian, as in sits)",
                                           defaultValue=False),
        "Pulls each pixel's class probabilities towards its neighbourhood before the class is chosen, removing "
        "isolated misclassified pixels while keeping field edges.")
    for name, key, kind in ((SMOOTH_WINDOW, "window", QgsProcessingParameterNumber.Integer),
                            (SMOOTHNESS, "smoothness", QgsProcessingParameterNumber.Double),
                            (SMOOTH_NEIGH_FRACTION, "neigh_fraction", QgsProcessingParameterNumber.Double)):
        low, high = S.BOUNDS[key]
        add(alg, _advanced(QgsProcessingParameterNumber(name, f"Smoothing: {key.replace('_', ' ')}", kind,
                                                         defaultValue=getattr(S, key), minValue=low, maxValue=high)),
            S.describe(key))
    add(alg, _advanced(QgsProcessingParameterBoolean(SMOOTH_BY_PARCEL, "Smoothing: within each field polygon",
                                                     defaultValue=False)), S.describe("by_parcel"))


def smoothing_options(alg, parameters: dict, context: QgsProcessingContext):
    """The engine's ``SmoothingOptions`` (None when smoothing is off), checked."""
    from ..engine.errors import EngineError
    from ..engine.smoothing_options import SmoothingOptions

    if not alg.parameterAsBool(parameters, SMOOTH, context):
        return None
    options = SmoothingOptions(
        window=alg.parameterAsInt(parameters, SMOOTH_WINDOW, context),
        smoothness=alg.parameterAsDouble(parameters, SMOOTHNESS, context),
        neigh_fraction=alg.parameterAsDouble(parameters, SMOOTH_NEIGH_FRACTION, context),
        by_parcel=alg.parameterAsBool(parameters, SMOOTH_BY_PARCEL, context),
    )
    try:
        return options.validate()
    except EngineError as exc:
        raise QgsProcessingException(str(exc)) from None


def predict_options(alg, parameters: dict, context: QgsProcessingContext):
    from ..engine.pipeline import PredictOptions

    tile = alg.parameterAsInt(parameters, TILE, context)
    overlap = alg.parameterAsInt(parameters, OVERLAP, context)
    if overlap * 2 >= tile:
        raise QgsProcessingException(f"The tile overlap ({overlap}) must be less than half the tile size ({tile}).")
    return PredictOptions(
        tile=tile, overlap=overlap, batch_size=alg.parameterAsInt(parameters, PREDICT_BATCH, context),
        device=alg.parameterAsString(parameters, DEVICE, context) or "auto",
        smoothing=smoothing_options(alg, parameters, context) if alg.parameterDefinition(SMOOTH) else None,
    )
