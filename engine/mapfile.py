"""Reading a class map GeoTIFF back: its grid, its class table, and its class histogram."""

from __future__ import annotations

from typing import Optional

import numpy as np

from .classes import ClassInfo, ClassTable
from .errors import EngineError
from .progress import CancelledCallback, Reporter


def open_map(path: str):
    """Opens a class map; returns the GDAL dataset and its ``RasterGrid``."""
    from osgeo import gdal

    from .data import RasterGrid

    gdal.UseExceptions()
    try:
        dataset = gdal.Open(str(path))
    except RuntimeError as exc:
        raise EngineError(f"Cannot open the map '{path}': {exc}. Check that the file exists and is a raster.") from None
    if dataset.RasterCount < 1:
        raise EngineError(f"The map '{path}' has no band.")
    if not dataset.GetProjection():
        raise EngineError(f"The map '{path}' has no coordinate reference system.")
    grid = RasterGrid(dataset.RasterXSize, dataset.RasterYSize, tuple(dataset.GetGeoTransform()), dataset.GetProjection())
    return dataset, grid


def class_table_from_map(dataset) -> ClassTable:
    """The class table written into a CropMapper map (category names and colour table)."""
    dataset.GetMetadata()  # GDAL 3.6 GTiff reads the .aux.xml (category names) only after another metadata call
    band = dataset.GetRasterBand(1)
    names = band.GetCategoryNames() or []
    colors = band.GetColorTable()
    classes = []
    for value in range(1, len(names)):
        if not names[value]:
            break
        entry = colors.GetColorEntry(value) if colors is not None else (128, 128, 128)
        classes.append(ClassInfo(value, names[value], tuple(int(c) for c in entry[:3])))
    if not classes:
        raise EngineError(
            "The map has no class names. Give the model file (--model) so the classes can be matched by name."
        )
    return ClassTable(classes)


def map_histogram(dataset, num_classes: int, cancelled: Optional[CancelledCallback] = None) -> np.ndarray:
    """Pixels per class value 0..K over the whole map, read block by block."""
    reporter = Reporter(None, cancelled)
    band = dataset.GetRasterBand(1)
    counts = np.zeros(num_classes + 1, np.int64)
    rows = 1024
    for y in range(0, dataset.RasterYSize, rows):
        reporter.check()
        block = band.ReadAsArray(0, y, dataset.RasterXSize, min(rows, dataset.RasterYSize - y))
        counts += np.bincount(block.ravel().clip(0, num_classes + 1), minlength=num_classes + 2)[: num_classes + 1]
    return counts
