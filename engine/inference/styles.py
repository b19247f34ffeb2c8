"""Styling class maps: a GDAL colour table with category names in the GeoTIFF, and a QGIS ``.qml`` sidecar.

QGIS loads ``<name>.qml`` beside ``<name>.tif`` as the layer's default style, so the map opens with the class
colours and names; other GIS read the GeoTIFF's own colour table and category names.
"""

from __future__ import annotations

import os
from pathlib import Path
from xml.sax.saxutils import quoteattr

from ..atomic import atomic_output
from ..classes import ClassTable

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


def confidence_qml() -> str:
    """A QGIS pseudo-colour style for a 0..1 confidence raster (red = unsure, green = sure)."""
    return ramp_qml([(0.0, "#d7191c", "0.0"), (0.5, "#fdae61", "0.5"), (0.75, "#a6d96a", "0.75"), (1.0, "#1a9641", "1.0")])


def uncertainty_qml() -> str:
    """A QGIS pseudo-colour style for a 0..1 uncertainty raster (dark blue = sure, yellow = all classes alike)."""
    return ramp_qml([(0.0, "#0d0887", "0.0 sure"), (0.25, "#7e03a8", "0.25"), (0.5, "#cc4778", "0.5"),
                     (0.75, "#f89540", "0.75"), (1.0, "#f0f921", "1.0 uniform")])


def ramp_qml(stops: list[tuple[float, str, str]]) -> str:
    """A QGIS pseudo-colour style interpolating ``(value, colour, label)`` stops over 0..1."""
    items = "\n".join(
        f'            <item value="{v}" color="{c}" alpha="255" label={quoteattr(label)}/>' for v, c, label in stops
    )
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22.0" styleCategories="AllStyleCategories">
  <pipe>
    <rasterrenderer type="singlebandpseudocolor" band="1" opacity="1" alphaBand="-1" classificationMin="0" classificationMax="1" nodataColor="">
      <rasterTransparency/>
      <rastershader>
        <colorrampshader colorRampType="INTERPOLATED" classificationMode="1" clip="0" minimumValue="0" maximumValue="1">
{items}
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


def write_class_style(raster_path: str | os.PathLike, classes: ClassTable, qml: bool = True) -> str | None:
    """Styles an existing class GeoTIFF (colour table if it has none, category names) and writes its ``.qml`` sidecar.

    GeoTIFF keeps category names in the ``.aux.xml`` sidecar, so they are set here, on the final file name.
    Returns the ``.qml`` path (``None`` when ``qml`` is False).
    """
    from osgeo import gdal

    gdal.UseExceptions()
    dataset = gdal.Open(str(raster_path), gdal.GA_Update)
    try:
        band = dataset.GetRasterBand(1)
        apply_class_colors(band, classes, colors=band.GetColorTable() is None)
    finally:
        dataset = None
    return write_qml(raster_path, class_qml(classes)) if qml else None
