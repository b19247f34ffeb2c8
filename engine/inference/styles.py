"""Styling class maps: a GDAL colour table with category names in the GeoTIFF, and a QGIS ``.qml`` sidecar.

QGIS loads ``<name>.qml`` beside ``<name>.tif`` as the layer's default style, so the map opens with the class
colours and names; other GIS read the GeoTIFF's own colour table and category names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional
from xml.sax.saxutils import quoteattr

from ..atomic import atomic_output
from ..classes import ClassTable
from ..gdalwrite import closing_checked

NODATA_NAME = "No data"


def _hex(color) -> str:
    r, g, b = (int(c) for c in color)
    return f"#{r:02x}{g:02x}{b:02x}"


def apply_class_colors(band, classes: ClassTable, colors: bool = True) -> None:
    """Sets the colour table (0 = transparent nodata) and category names on an open GDAL band."""
    from osgeo import gdal

    if colors:
        table = gdal.ColorTable()
        table.SetColorEntry(0, (0, 0, 0, 0))
        for info in classes:
            table.SetColorEntry(info.value, (*(int(c) for c in info.color), 255))
        band.SetRasterColorTable(table)
        band.SetRasterColorInterpretation(gdal.GCI_PaletteIndex)
    band.SetCategoryNames([NODATA_NAME] + [info.name for info in classes])


def class_qml(classes: ClassTable) -> str:
    """A QGIS paletted-renderer style listing only the real classes (not nodata), with names and colours."""
    entries = "\n".join(
        f"        <paletteEntry value=\"{info.value}\" color=\"{_hex(info.color)}\" alpha=\"255\" "
        f"label={quoteattr(info.name)}/>"
        for info in classes
    )
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22.0" styleCategories="AllStyleCategories">
  <pipe>
    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">
      <rasterTransparency/>
      <colorPalette>
{entries}
      </colorPalette>
    </rasterrenderer>
    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>
    <huesaturation saturation="0" grayscaleMode="0" colorizeOn="0" colorizeRed="255" colorizeGreen="128" colorizeBlue="128" colorizeStrength="100"/>
    <rasterresampler maxOversampling="2"/>
  </pipe>
  <blendMode>0</blendMode>
</qgis>
"""


CONFIDENCE_COLORS = ("#d7191c", "#fdae61", "#ffffbf", "#a6d96a", "#1a9641")  # ColorBrewer RdYlGn: unsure -> sure


def confidence_stops(n_classes: Optional[int] = None) -> list[tuple[float, str, str]]:
    """(value, colour, legend label) of the confidence ramp: from 1/K, what a blind guess among K classes scores and
    so the lowest a winning probability can be, to 1 (certain); from 0 when K is unknown."""
    low = 1.0 / n_classes if n_classes and n_classes > 1 else 0.0
    stops = []
    for i, color in enumerate(CONFIDENCE_COLORS):
        value = low + (1.0 - low) * i / (len(CONFIDENCE_COLORS) - 1)
        label = f"{value:.2f}"
        if i == 0:
            label += f" unsure (a guess among {n_classes} classes)" if low else " unsure"
        elif i == len(CONFIDENCE_COLORS) - 1:
            label += " certain"
        stops.append((round(value, 4), color, label))
    return stops


def confidence_qml(n_classes: Optional[int] = None) -> str:
    """A QGIS pseudo-colour style for a confidence raster (red = unsure, green = sure), stretched over 1/K..1."""
    return ramp_qml(confidence_stops(n_classes))


# (value, colour, legend label): dark blue = sure, yellow = all classes alike (Plasma)
UNCERTAINTY_STOPS = [(0.0, "#0d0887", "0.0 sure"), (0.25, "#7e03a8", "0.25"), (0.5, "#cc4778", "0.5"),
                     (0.75, "#f89540", "0.75"), (1.0, "#f0f921", "1.0 uniform")]


def uncertainty_qml() -> str:
    """A QGIS pseudo-colour style for a 0..1 uncertainty raster (normalised entropy)."""
    return ramp_qml(UNCERTAINTY_STOPS)


def ramp_qml(stops: list[tuple[float, str, str]]) -> str:
    """A QGIS pseudo-colour style interpolating ``(value, colour, label)`` stops from the first value to 1."""
    low = stops[0][0]
    items = "\n".join(
        f'            <item value="{v}" color="{c}" alpha="255" label={quoteattr(label)}/>' for v, c, label in stops
    )
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22.0" styleCategories="AllStyleCategories">
  <pipe>
    <rasterrenderer type="singlebandpseudocolor" band="1" opacity="1" alphaBand="-1" classificationMin="{low}" classificationMax="1" nodataColor="">
      <rasterTransparency/>
      <rastershader>
        <colorrampshader colorRampType="INTERPOLATED" classificationMode="1" clip="0" minimumValue="{low}" maximumValue="1">
{items}
          <rampLegendSettings minimumLabel={quoteattr(stops[0][2])} maximumLabel={quoteattr(stops[-1][2])} prefix="" suffix="" direction="0" useContinuousLegend="1" orientation="2"/>
        </colorrampshader>
      </rastershader>
    </rasterrenderer>
    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>
    <rasterresampler maxOversampling="2"/>
  </pipe>
  <blendMode>0</blendMode>
</qgis>
"""


def sidecar_path(raster_path: str | os.PathLike) -> Path:
    """``map.tif`` -> ``map.qml`` (the name QGIS looks for)."""
    return Path(raster_path).with_suffix(".qml")


def write_qml(raster_path: str | os.PathLike, text: str) -> str:
    """Writes a ``.qml`` sidecar beside ``raster_path`` (atomically); returns its path."""
    path = sidecar_path(raster_path)
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return str(path)


def style_class_raster(raster_path: str | os.PathLike, classes: ClassTable) -> None:
    """Sets the colour table (if the raster has none) and category names on an existing class GeoTIFF.

    GeoTIFF keeps category names in the ``.aux.xml`` sidecar, written when the dataset closes; a failed write of
    it raises ``RuntimeError``.
    """
    from osgeo import gdal

    gdal.UseExceptions()
    dataset = gdal.Open(str(raster_path), gdal.GA_Update)
    try:
        band = dataset.GetRasterBand(1)
        apply_class_colors(band, classes, colors=band.GetColorTable() is None)
        band = None
    finally:
        with closing_checked(raster_path):
            dataset = None


def write_class_style(raster_path: str | os.PathLike, classes: ClassTable, qml: bool = True) -> str | None:
    """Styles an existing class GeoTIFF (colour table if it has none, category names) and writes its ``.qml`` sidecar.

    Returns the ``.qml`` path (``None`` when ``qml`` is False).
    """
    style_class_raster(raster_path, classes)
    return write_qml(raster_path, class_qml(classes)) if qml else None
