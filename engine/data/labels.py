"""Field polygons -> a class-label raster and a field-id raster on the image grid (GDAL/OGR rasterisation)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np
from osgeo import gdal, ogr, osr

from ..classes import ClassTable, Color
from ..errors import EngineError
from .grid import RasterGrid

gdal.UseExceptions()
ogr.UseExceptions()

_POLYGON_TYPES = {ogr.wkbPolygon, ogr.wkbMultiPolygon, ogr.wkbCurvePolygon, ogr.wkbMultiSurface}
_POINT_LINE_TYPES = {
    ogr.wkbPoint: "points", ogr.wkbMultiPoint: "points", ogr.wkbLineString: "lines",
    ogr.wkbMultiLineString: "lines", ogr.wkbCircularString: "lines", ogr.wkbCompoundCurve: "lines",
    ogr.wkbMultiCurve: "lines",
}


@dataclass
class FieldRasters:
    """Labels and field ids of a window of the image grid.

    ``labels``: int32 ``(h, w)``, 0 = unlabelled, 1..K = class values of ``classes``.
    ``field_ids``: int32 ``(h, w)``, 0 = no field, else the 1-based id of the polygon the pixel came from.
    ``window``: ``(x0, y0, w, h)`` of these arrays on the full grid (the fields' extent clipped to the raster).
    """

    labels: np.ndarray
    field_ids: np.ndarray
    window: tuple[int, int, int, int]
    classes: ClassTable
    field_classes: dict[int, int]  # field id -> class value, for fields with at least one pixel
    overlap_pixels: int  # pixels where polygons of different classes overlap (left unlabelled)
    class_pixels: dict[int, int]  # class value -> labelled pixels
    warnings: list[str] = field(default_factory=list)
    field_fids: dict[int, int] = field(default_factory=dict)  # field id -> feature id (FID) in the vector layer
    field_pixels: dict[int, int] = field(default_factory=dict)  # field id -> pixels


@dataclass
class _Feature:
    fid: int
    key: Union[str, int]
    geometry: ogr.Geometry


def _open_layer(vector: str, layer: Optional[str]) -> tuple[gdal.Dataset, ogr.Layer, list[str]]:
    warnings: list[str] = []
    if not Path(vector).exists() and not str(vector).startswith("/vsi"):
        raise EngineError(f"The polygon file '{vector}' does not exist. Check the path.")
    try:
        dataset = gdal.OpenEx(str(vector), gdal.OF_VECTOR)
    except RuntimeError as exc:
        raise EngineError(f"The file '{vector}' cannot be read as a vector layer ({exc}). Use a GeoPackage, "
                          "Shapefile or GeoJSON with the field polygons.") from None
    if dataset is None or dataset.GetLayerCount() == 0:
        raise EngineError(f"The file '{vector}' holds no vector layer. Use a GeoPackage, Shapefile or GeoJSON "
                          "with the field polygons.")
    names = [dataset.GetLayerByIndex(i).GetName() for i in range(dataset.GetLayerCount())]
    if layer:
        found = dataset.GetLayerByName(layer)
        if found is None:
            raise EngineError(f"The file '{vector}' has no layer '{layer}'. Its layers are: {', '.join(names)}.")
    else:
        found = dataset.GetLayerByIndex(0)
        if len(names) > 1:
            warnings.append(f"'{vector}' has {len(names)} layers; the first, '{names[0]}', was used. Name the "
                            "layer to use another.")
    return dataset, found, warnings


def _class_kind(layer: ogr.Layer, class_field: str) -> tuple[int, str]:
    """Index of the class field and whether it holds text or integers.

    The feature-id column of a GeoPackage (``fid``), which QGIS lists with the attributes but OGR does not, is read
    as an integer class field (index -1, kind ``fid``), so that every field QGIS offers can be used.
    """
    definition = layer.GetLayerDefn()
    index = definition.GetFieldIndex(class_field)
    fields = [definition.GetFieldDefn(i).GetName() for i in range(definition.GetFieldCount())]
    fid_column = layer.GetFIDColumn()
    if index < 0 and fid_column and class_field.casefold() == fid_column.casefold():
        return -1, "fid"
    if index < 0:
        raise EngineError(f"The layer '{layer.GetName()}' has no field '{class_field}'. Its fields are: "
                          f"{', '.join(fields) or '(none)'}. Choose the field holding the crop class.")
    field_type = definition.GetFieldDefn(index).GetType()
    if field_type in (ogr.OFTInteger, ogr.OFTInteger64):
        return index, "integer"
    if field_type == ogr.OFTReal:
        return index, "real"
    return index, "text"


def _check_geometry_type(layer: ogr.Layer, vector: str) -> None:
    geometry_type = ogr.GT_Flatten(layer.GetGeomType())
    if geometry_type in _POINT_LINE_TYPES:
        raise EngineError(
            f"The layer '{layer.GetName()}' of '{vector}' holds {_POINT_LINE_TYPES[geometry_type]}, but field "
            "polygons are needed to make labels. Digitise the fields as polygons (or buffer the points)."
        )


def _transform(layer: ogr.Layer, grid: RasterGrid, warnings: list[str]) -> Optional[osr.CoordinateTransformation]:
    source = layer.GetSpatialRef()
    target = osr.SpatialReference()
    target.ImportFromWkt(grid.crs_wkt)
    target.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    if source is None:
        warnings.append(f"The layer '{layer.GetName()}' has no CRS; it was assumed to be the raster's CRS.")
        return None
    source = source.Clone()
    source.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    if source.IsSame(target):
        return None
    return osr.CoordinateTransformation(source, target)


def _class_key(feature: ogr.Feature, index: int, kind: str) -> Optional[Union[str, int]]:
    """The feature's class, or None for null / empty / 0 ("no data")."""
    if kind == "fid":
        return int(feature.GetFID()) or None
    if not feature.IsFieldSetAndNotNull(index):
        return None
    if kind == "text":
        text = str(feature.GetFieldAsString(index)).strip()
        return text or None
    value = feature.GetFieldAsDouble(index) if kind == "real" else feature.GetFieldAsInteger64(index)
    if value != int(value):
        raise EngineError(f"The class field holds the value {value}, which is not a whole number. Use a text or "
                          "integer class field.")
    return int(value) or None


def _read_features(layer: ogr.Layer, index: int, kind: str, transform, vector: str,
                   warnings: Optional[list[str]] = None) -> tuple[list[_Feature], int]:
    """The classed polygons (reprojected) and the number without a class; empty and repaired ones are warned about."""
    features: list[_Feature] = []
    skipped = 0
    empty: list[int] = []
    repaired: list[int] = []
    layer.ResetReading()
    for feature in layer:
        geometry = feature.GetGeometryRef()
        if geometry is None or geometry.IsEmpty():
            empty.append(feature.GetFID())
            continue
        if not geometry.IsValid():
            fixed = geometry.MakeValid()
            if fixed is None or fixed.IsEmpty():
                raise EngineError(f"The polygon {feature.GetFID()} of '{vector}' is invalid (e.g. self-intersecting) "
                                  "and cannot be repaired. Fix it (QGIS: Vector > Geometry Tools > Fix Geometries).")
            repaired.append(feature.GetFID())
            geometry = fixed
        flat = ogr.GT_Flatten(geometry.GetGeometryType())
        if flat in _POINT_LINE_TYPES:
            raise EngineError(f"'{vector}' holds {_POINT_LINE_TYPES[flat]}, but field polygons are needed to make "
                              "labels. Digitise the fields as polygons.")
        if flat not in _POLYGON_TYPES and flat != ogr.wkbGeometryCollection:
            continue
        key = _class_key(feature, index, kind)
        if key is None:
            skipped += 1
            continue
        geometry = geometry.Clone()
        if transform is not None:
            geometry.Transform(transform)
        features.append(_Feature(feature.GetFID(), key, geometry))
    if warnings is not None:
        if empty:
            warnings.append(f"{len(empty)} feature(s) without a geometry (empty or null) were ignored: "
                            f"{_fid_list(empty)}.")
        if repaired:
            warnings.append(f"{len(repaired)} invalid polygon(s) (self-intersecting or badly ordered rings) were "
                            f"repaired with MakeValid: {_fid_list(repaired)}. Check them in QGIS.")
    return features, skipped


def _fid_list(fids: list[int], shown: int = 10) -> str:
    text = ", ".join(f"fid {f}" for f in fids[:shown])
    return text + (f" and {len(fids) - shown} more" if len(fids) > shown else "")


def _rasterize(layer: ogr.Layer, grid: RasterGrid, attribute: Optional[str], datatype: int) -> np.ndarray:
    """Burns ``attribute`` (or 1) of the layer's polygons into an array on ``grid`` (pixel-centre rule)."""
    target = gdal.GetDriverByName("MEM").Create("", grid.width, grid.height, 1, datatype)
    target.SetGeoTransform(grid.geotransform)
    target.SetProjection(grid.crs_wkt)
    if attribute:
        gdal.RasterizeLayer(target, [1], layer, options=[f"ATTRIBUTE={attribute}"])
    else:
        gdal.RasterizeLayer(target, [1], layer, burn_values=[1])
    return target.GetRasterBand(1).ReadAsArray()


def rasterize_fields(
    vector: Union[str, os.PathLike],
    grid: RasterGrid,
    class_field: str,
    layer: Optional[str] = None,
    class_table: Optional[ClassTable] = None,
    colors: Optional[dict[str, Color]] = None,
) -> FieldRasters:
    """Rasterises field polygons onto ``grid`` (pixel centres inside a polygon are labelled).

    Classes are numbered 1..K sorted by name (text fields) or value (integer fields) unless ``class_table`` is
    given (e.g. a model's), whose values are used; polygons of other classes are then skipped with a warning.
    Null or empty classes and the integer class 0 ("no data") are skipped. Pixels where polygons of different
    classes overlap are left unlabelled and counted. A class that ends up with no pixel raises ``EngineError`` when
    the classes come from the polygons (it could not be learnt), and is a warning with a given ``class_table``.
    """
    vector = str(vector)
    dataset, source_layer, warnings = _open_layer(vector, layer)
    _check_geometry_type(source_layer, vector)
    index, kind = _class_kind(source_layer, class_field)
    transform = _transform(source_layer, grid, warnings)
    features, skipped = _read_features(source_layer, index, kind, transform, vector, warnings)
    if skipped:
        warnings.append(f"{skipped} polygon(s) without a class in '{class_field}' (empty, null or 0) were ignored.")
    if not features:
        raise EngineError(f"No polygon of '{vector}' has a class in the field '{class_field}'. Choose the field "
                          "holding the crop class, and make sure the layer holds polygons.")

    # Envelopes, not exact intersection: robust to invalid (self-intersecting) polygons, which GDAL still burns.
    gxmin, gymin, gxmax, gymax = grid.bounds
    inside = []
    for f in features:
        xmin, xmax, ymin, ymax = f.geometry.GetEnvelope()
        if xmin < gxmax and xmax > gxmin and ymin < gymax and ymax > gymin:
            inside.append(f)
    if not inside:
        envelopes = np.array([f.geometry.GetEnvelope() for f in features])
        bounds = (envelopes[:, 0].min(), envelopes[:, 2].min(), envelopes[:, 1].max(), envelopes[:, 3].max())
        raise EngineError(
            f"None of the {len(features)} polygons of '{vector}' overlaps the raster. Polygons (in the raster's CRS): "
            f"{tuple(round(v, 3) for v in bounds)}; raster: {tuple(round(v, 3) for v in grid.bounds)}. Use polygons "
            "of the same area as the images, and check both layers' CRS."
        )
    if len(inside) < len(features):
        warnings.append(f"{len(features) - len(inside)} polygon(s) lie outside the raster and were ignored.")
    outside_only = sorted({str(f.key) for f in features} - {str(f.key) for f in inside})
    if outside_only:
        warnings.append(f"The class(es) {', '.join(outside_only)} have no polygon over the raster and were left out.")

    keys = sorted({f.key for f in inside}, key=lambda k: (str(k).casefold(), str(k)) if kind == "text" else k)
    own_classes = class_table is None and len(keys) > 1 and len(keys) == len(inside)
    id_hint = (f"Every polygon has its own class in '{class_field}' ({len(keys)} classes for {len(inside)} polygons): "
               "is it an id rather than the crop class? Choose the field holding the crop class.")
    if own_classes:
        warnings.append(id_hint)
    unknown: dict[str, int] = {}
    if class_table is None:
        classes = ClassTable.from_names([str(k) for k in keys], colors)
        value_of = {str(k): classes[i].value for i, k in enumerate(keys)}
    else:
        classes = class_table
        value_of = {c.name: c.value for c in class_table}
        for f in inside:
            if str(f.key) not in value_of:
                unknown[str(f.key)] = unknown.get(str(f.key), 0) + 1
        if unknown:
            listed = ", ".join(f"{name} ({count})" for name, count in sorted(unknown.items()))
            warnings.append(f"Polygons of classes the model does not know were ignored: {listed}. The model's "
                            f"classes are: {', '.join(class_table.names)}.")
        inside = [f for f in inside if str(f.key) in value_of]
        if not inside:
            raise EngineError(f"No polygon of '{vector}' has one of the model's classes "
                              f"({', '.join(class_table.names)}) in the field '{class_field}'.")

    envelopes = np.array([f.geometry.GetEnvelope() for f in inside])  # xmin, xmax, ymin, ymax
    window = grid.window_for_bounds(envelopes[:, 0].min(), envelopes[:, 2].min(),
                                    envelopes[:, 1].max(), envelopes[:, 3].max())
    window_grid = grid.window_grid(*window)

    memory = ogr.GetDriverByName("Memory").CreateDataSource("fields")
    srs = osr.SpatialReference()
    srs.ImportFromWkt(grid.crs_wkt)
    mem_layer = memory.CreateLayer("fields", srs, ogr.wkbUnknown)
    mem_layer.CreateField(ogr.FieldDefn("field_id", ogr.OFTInteger))
    mem_layer.CreateField(ogr.FieldDefn("class_value", ogr.OFTInteger))
    field_fids: dict[int, int] = {}
    field_class_all: dict[int, int] = {}
    for field_id, f in enumerate(inside, start=1):
        feature = ogr.Feature(mem_layer.GetLayerDefn())
        feature.SetField("field_id", field_id)
        feature.SetField("class_value", value_of[str(f.key)])
        feature.SetGeometry(f.geometry)
        mem_layer.CreateFeature(feature)
        field_fids[field_id] = f.fid
        field_class_all[field_id] = value_of[str(f.key)]

    field_ids = _rasterize(mem_layer, window_grid, "field_id", gdal.GDT_Int32).astype(np.int32)
    labels = np.zeros(window_grid.shape, np.int32)
    cover = np.zeros(window_grid.shape, np.int32)  # how many different classes cover each pixel
    for info in classes:
        mem_layer.SetAttributeFilter(f"class_value = {info.value}")
        if mem_layer.GetFeatureCount() == 0:
            continue
        mask = _rasterize(mem_layer, window_grid, None, gdal.GDT_Byte).astype(bool)
        cover += mask
        labels[mask] = info.value
    mem_layer.SetAttributeFilter(None)
    overlap = cover > 1
    labels[overlap] = 0
    field_ids[overlap] = 0
    overlap_pixels = int(overlap.sum())
    if overlap_pixels:
        warnings.append(f"{overlap_pixels} pixel(s) where polygons of different classes overlap were left unlabelled.")

    counts = np.bincount(labels.ravel(), minlength=len(classes) + 1)
    class_pixels = {info.value: int(counts[info.value]) for info in classes if info.value < len(counts)}
    per_field = np.bincount(field_ids.ravel(), minlength=len(inside) + 1)
    field_pixels = {fid: int(per_field[fid]) for fid in field_fids}
    field_classes = {fid: value for fid, value in field_class_all.items() if field_pixels[fid] > 0}
    empty_fields = len(field_class_all) - len(field_classes)
    if empty_fields:
        warnings.append(f"{empty_fields} polygon(s) cover no pixel centre (smaller than a pixel, at the raster's "
                        "edge, or overlapped) and were left out.")

    present = {value for value in field_class_all.values()}
    no_pixels = [info for info in classes if info.value in present and class_pixels.get(info.value, 0) == 0]
    if no_pixels and class_table is None:
        listed = ", ".join(f"'{info.name}'" for info in no_pixels)
        size = "x".join(f"{v:g}" for v in grid.pixel_size)
        raise EngineError(
            (id_hint + " " if own_classes else "") +
            f"The class(es) {listed} cover no pixel after rasterising: their polygons are smaller than a pixel "
            f"({size} in the raster's units) or lie under polygons of other classes, so the model could not learn "
            "them. Digitise larger polygons for these classes, or remove them from the class field."
        )
    for info in no_pixels:
        warnings.append(f"The class '{info.name}' covers no pixel of the raster.")
    return FieldRasters(labels, field_ids, window, classes, field_classes, overlap_pixels, class_pixels, warnings,
                        field_fids, field_pixels)
