"""A synthetic Sentinel-2-like scene with fields, crop phenology and clouds, for the demo and tests.

The scene is made up: ten reflectance bands per date, mixed from a soil and a vegetation spectrum by a
per-class green-up curve, with variation between fields of one class, noise, and clouds with their masks.
Labels are kept for a small share of the fields, as with real scarce labels.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_output

BANDS = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
# Typical surface reflectance of bare soil and of a dense green canopy for the bands above.
SOIL = np.array([0.08, 0.11, 0.14, 0.17, 0.19, 0.21, 0.23, 0.24, 0.32, 0.27])
CANOPY = np.array([0.03, 0.07, 0.03, 0.11, 0.30, 0.40, 0.45, 0.46, 0.22, 0.11])
# Crop name -> (green-up day of year, senescence day, peak canopy fraction, winter cover); all differ in timing.
CROPS = {
    "winter wheat": (80, 175, 0.9, 0.35),
    "maize": (160, 255, 0.95, 0.0),
    "sugar beet": (140, 280, 0.85, 0.0),
    "potato": (135, 215, 0.8, 0.0),
    "grassland": (90, 300, 0.7, 0.45),
    "rapeseed": (70, 160, 0.85, 0.4),
}
EPSG = 32631
ORIGIN = (600000.0, 5650000.0)
PIXEL = 10.0


@dataclass
class DemoScene:
    """Paths of a written demo scene."""

    folder: Path
    images: list[Path]
    cloud_masks: list[Path]
    fields: Path  # GeoPackage with layers 'labelled' (crop for a share of fields) and 'parcels' (all fields)
    class_field: str = "crop"


def _dates(count: int, year: int) -> list[dt.date]:
    start = dt.date(year, 3, 1)
    step = (dt.date(year, 10, 31) - start).days / (count - 1)
    return [start + dt.timedelta(days=round(i * step)) for i in range(count)]


def _canopy(doy: np.ndarray, green_up: float, senescence: float, peak: float, winter: float) -> np.ndarray:
    rise = 1.0 / (1.0 + np.exp(-(doy - green_up) / 8.0))
    fall = 1.0 / (1.0 + np.exp((doy - senescence) / 8.0))
    return winter * (1 - rise) + peak * rise * fall


def _field_layout(size: int, rng: np.random.Generator, scale: float = 1.0) -> list[tuple[int, int, int, int]]:
    """Jittered grid of rectangular fields (x0, y0, x1, y1) in pixels, with 1-pixel tracks between them; ``scale``
    multiplies the field sizes (9-17 x 9-21 px at 1)."""
    fields = []
    y = 0
    while y < size - 4:
        height = int(rng.integers(round(9 * scale), round(18 * scale)))
        x = 0
        while x < size - 4:
            width = int(rng.integers(round(9 * scale), round(22 * scale)))
            fields.append((x, y, min(x + width, size) - 1, min(y + height, size) - 1))
            x += width
        y += height
    return fields


def make_demo_scene(
    folder: str | Path, size: int = 256, dates: int = 24, year: int = 2021, label_share: float = 0.3, seed: int = 7,
    field_scale: float = 1.0,
) -> DemoScene:
    """Writes the synthetic scene to ``folder``: one GeoTIFF per date, cloud masks, and field polygons
    (``field_scale`` multiplies the field sizes: ~6 gives about 150 fields on 1024 x 1024 px)."""
    from osgeo import gdal, ogr, osr

    gdal.UseExceptions()
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "clouds").mkdir(parents=True, exist_ok=True)
    acquisition = _dates(dates, year)
    doy = np.array([d.timetuple().tm_yday for d in acquisition], dtype=float)

    names = list(CROPS)
    layout = _field_layout(size, rng, field_scale)
    field_class = rng.integers(0, len(names), len(layout))
    canopy = np.zeros((dates, size, size))
    soil_scale = np.ones((size, size))
    for (x0, y0, x1, y1), k in zip(layout, field_class):
        green_up, senescence, peak, winter = CROPS[names[k]]
        # Each field sows, ripens and grows a little differently from others of its class.
        curve = _canopy(doy, green_up + rng.normal(0, 6), senescence + rng.normal(0, 6), peak * rng.uniform(0.85, 1.05), winter)
        canopy[:, y0:y1, x0:x1] = curve[:, None, None]
        soil_scale[y0:y1, x0:x1] = rng.uniform(0.85, 1.15)

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(EPSG)
    transform = (ORIGIN[0], PIXEL, 0.0, ORIGIN[1], 0.0, -PIXEL)
    images, masks = [], []
    yy, xx = np.mgrid[0:size, 0:size]
    for t, date in enumerate(acquisition):
        cover = np.clip(canopy[t], 0, 1)[None]
        reflectance = SOIL[:, None, None] * soil_scale[None] * (1 - cover) + CANOPY[:, None, None] * cover
        reflectance = reflectance + rng.normal(0, 0.006, reflectance.shape)
        cloud = np.zeros((size, size), dtype=bool)
        for _ in range(int(rng.poisson(1.2))):
            cx, cy, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(8, 30)
            cloud |= (xx - cx) ** 2 + (yy - cy) ** 2 < r**2
        reflectance[:, cloud] = 0.35 + rng.normal(0, 0.02, (len(BANDS), int(cloud.sum())))
        data = np.clip(reflectance * 10000, 1, 65534).astype(np.uint16)
        stamp = date.strftime("%Y%m%d")
        image = folder / "images" / f"S2_{stamp}_demo.tif"
        mask = folder / "clouds" / f"S2_{stamp}_CLM.tif"
        _write_raster(image, data, transform, srs.ExportToWkt(), BANDS, nodata=0, date=date)
        _write_raster(mask, cloud[None].astype(np.uint8), transform, srs.ExportToWkt(), ["CLM"], nodata=None, date=date)
        images.append(image)
        masks.append(mask)

    fields = folder / "fields.gpkg"
    labelled = rng.random(len(layout)) < label_share
    with atomic_output(fields) as tmp:
        source = ogr.GetDriverByName("GPKG").CreateDataSource(str(tmp))
        for layer_name, keep in (("labelled", labelled), ("parcels", np.ones(len(layout), bool))):
            layer = source.CreateLayer(layer_name, srs, ogr.wkbPolygon)
            layer.CreateField(ogr.FieldDefn("parcel_id", ogr.OFTInteger))
            if layer_name == "labelled":
                layer.CreateField(ogr.FieldDefn("crop", ogr.OFTString))
            for i, ((x0, y0, x1, y1), k) in enumerate(zip(layout, field_class)):
                if not keep[i]:
                    continue
                feature = ogr.Feature(layer.GetLayerDefn())
                feature.SetField("parcel_id", i + 1)
                if layer_name == "labelled":
                    feature.SetField("crop", names[k])
                feature.SetGeometry(ogr.CreateGeometryFromWkt(_rectangle_wkt(x0, y0, x1, y1)))
                layer.CreateFeature(feature)
        source = None
    return DemoScene(folder, images, masks, fields)


def _rectangle_wkt(x0: int, y0: int, x1: int, y1: int) -> str:
    left, right = ORIGIN[0] + x0 * PIXEL, ORIGIN[0] + x1 * PIXEL
    top, bottom = ORIGIN[1] - y0 * PIXEL, ORIGIN[1] - y1 * PIXEL
    return f"POLYGON(({left} {top},{right} {top},{right} {bottom},{left} {bottom},{left} {top}))"


def _write_raster(path: Path, data: np.ndarray, transform, wkt: str, band_names, nodata, date: dt.date) -> None:
    from osgeo import gdal

    gdal_type = gdal.GDT_UInt16 if data.dtype == np.uint16 else gdal.GDT_Byte
    with atomic_output(path) as tmp:
        dataset = gdal.GetDriverByName("GTiff").Create(
            str(tmp), data.shape[2], data.shape[1], data.shape[0], gdal_type, ["COMPRESS=DEFLATE", "TILED=YES"]
        )
        dataset.SetGeoTransform(transform)
        dataset.SetProjection(wkt)
        dataset.SetMetadataItem("ACQUISITION_DATE", date.isoformat())
        for i, name in enumerate(band_names):
            band = dataset.GetRasterBand(i + 1)
            band.WriteArray(data[i])
            band.SetDescription(name)
            if nodata is not None:
                band.SetNoDataValue(nodata)
        dataset = None


def run_demo(out: str | Path, device: str = "auto", progress=None, pretrain_epochs: int = 2, train_epochs: int = 12) -> dict:
    """The whole workflow on the synthetic scene with the ``lite`` preset: pretrain -> train -> predict -> evaluate."""
    from . import pipeline
    from .progress import as_reporter

    reporter = as_reporter(progress)
    out = Path(out)
    reporter.report(0.0, "Writing the synthetic scene")
    scene = make_demo_scene(out / "scene", dates=20)
    series = pipeline.SeriesInput(images=[str(p) for p in scene.images], cloud_masks=[str(p) for p in scene.cloud_masks])
    labels = pipeline.LabelInput(path=str(scene.fields), class_field=scene.class_field, layer="labelled")
    pipeline.pretrain(
        series, str(out / "pretrained.cropmodel"),
        pipeline.PretrainOptions(preset="lite", epochs=pretrain_epochs, device=device, lr=1e-3),
        progress=reporter.span(0.02, 0.35).report_callback(),
    )
    trained = pipeline.train(
        series, labels, str(out / "model.cropmodel"),
        # 8 steps an epoch, as the demo had before default steps followed the labelled pixels (which give 4 here)
        pipeline.TrainOptions(preset="lite", epochs=train_epochs, device=device, steps_per_epoch=8),
        init_model=str(out / "pretrained.cropmodel"),
        progress=reporter.span(0.35, 0.8).report_callback(),
    )
    predicted = pipeline.predict(
        trained.model_path, series, str(out / "crop_map.tif"), out_confidence=str(out / "confidence.tif"),
        fields=str(scene.fields), fields_layer="parcels", fields_out=str(out / "parcels_crops.gpkg"),
        options=pipeline.PredictOptions(device=device), progress=reporter.span(0.8, 0.95).report_callback(),
    )
    report = pipeline.evaluate(
        predicted.map_path, labels, str(out / "report"), model_path=trained.model_path, split="test",
        progress=reporter.span(0.95, 1.0).report_callback(),
    )
    metrics = report.metrics
    print("\nDemo finished (the scene is synthetic: see the README to run the same steps on your own Sentinel-2 files).")
    print(f"  class map:          {predicted.map_path}")
    print(f"  confidence layer:   {predicted.confidence_path}")
    print(f"  field-level result: {predicted.fields_path}")
    print(f"  accuracy report:    {report.html_path}")
    print(f"  test fields: OA {metrics['overall_accuracy']:.3f}, mIoU {metrics['miou']:.3f}, kappa {metrics['kappa']:.3f}")
    return {
        "map": predicted.map_path,
        "confidence": predicted.confidence_path,
        "fields": predicted.fields_path,
        "report": report.html_path,
        "test_miou": metrics["miou"],
        "test_overall_accuracy": metrics["overall_accuracy"],
    }
