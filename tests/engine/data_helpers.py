"""Small synthetic GeoTIFF and vector fixtures for the engine/data tests, written with GDAL/OGR."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from osgeo import gdal, ogr, osr

gdal.UseExceptions()
ogr.UseExceptions()

UTM33 = 32633
ORIGIN = (500000.0, 5100000.0)


def srs_of(epsg: int) -> osr.SpatialReference:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def write_raster(
    path: Path,
    data: np.ndarray,
    geotransform: Optional[Sequence[float]] = None,
    epsg: Optional[int] = UTM33,
    nodata: Optional[float] = None,
    descriptions: Optional[Sequence[str]] = None,
    metadata: Optional[dict] = None,
    band_metadata: Optional[Sequence[dict]] = None,
) -> str:
    """Writes ``data`` (bands, h, w) or (h, w) as a GeoTIFF; 10 m pixels at ``ORIGIN`` by default."""
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    dtype = {np.dtype("float32"): gdal.GDT_Float32, np.dtype("uint16"): gdal.GDT_UInt16,
             np.dtype("uint8"): gdal.GDT_Byte, np.dtype("int16"): gdal.GDT_Int16}[data.dtype]
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), data.shape[2], data.shape[1], data.shape[0], dtype)
    dataset.SetGeoTransform(list(geotransform or (ORIGIN[0], 10, 0, ORIGIN[1], 0, -10)))
    if epsg is not None:
        dataset.SetProjection(srs_of(epsg).ExportToWkt())
    if metadata:
        dataset.SetMetadata({k: str(v) for k, v in metadata.items()})
    for index in range(data.shape[0]):
        band = dataset.GetRasterBand(index + 1)
        band.WriteArray(data[index])
        if nodata is not None:
            band.SetNoDataValue(nodata)
        if descriptions:
            band.SetDescription(descriptions[index])
        if band_metadata:
            band.SetMetadata({k: str(v) for k, v in band_metadata[index].items()})
    dataset = None
    return str(path)


def box(x0: float, y0: float, x1: float, y1: float) -> str:
    """WKT polygon of a rectangle."""
    return f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))"


def pixel_box(px0: float, py0: float, px1: float, py1: float) -> str:
    """WKT rectangle given in pixel positions of the default 10 m grid at ``ORIGIN``."""
    return box(ORIGIN[0] + 10 * px0, ORIGIN[1] - 10 * py1, ORIGIN[0] + 10 * px1, ORIGIN[1] - 10 * py0)


def write_vector(
    path: Path,
    geometries: Sequence[str],
    attributes: Sequence[dict],
    epsg: Optional[int] = UTM33,
    layer: str = "fields",
    driver: str = "GPKG",
    geometry_type: int = ogr.wkbPolygon,
    field_types: Optional[dict] = None,
) -> str:
    """Writes WKT geometries with attribute dicts; field types follow the first non-null value (int or str)."""
    source = ogr.GetDriverByName(driver).CreateDataSource(str(path))
    target_srs = srs_of(epsg) if epsg is not None else None
    out = source.CreateLayer(layer, target_srs, geometry_type)
    names = list(attributes[0]) if attributes else []
    for name in names:
        kind = (field_types or {}).get(name)
        if kind is None:
            sample = next((a[name] for a in attributes if a.get(name) is not None), "")
            kind = ogr.OFTInteger if isinstance(sample, int) else ogr.OFTString
        out.CreateField(ogr.FieldDefn(name, kind))
    transform = None
    if epsg is not None and epsg != UTM33:
        transform = osr.CoordinateTransformation(srs_of(UTM33), target_srs)
    for wkt, values in zip(geometries, attributes):
        feature = ogr.Feature(out.GetLayerDefn())
        geometry = ogr.CreateGeometryFromWkt(wkt)
        if transform is not None:
            geometry.Transform(transform)
        feature.SetGeometry(geometry)
        for name, value in values.items():
            if value is None:
                feature.SetFieldNull(name)
            else:
                feature.SetField(name, value)
        out.CreateFeature(feature)
    source = None
    return str(path)
