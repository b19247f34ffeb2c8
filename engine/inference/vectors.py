"""Polygons burnt into raster blocks on demand: extent masks and field-id rasters, one block at a time.

The polygons are read once, reprojected to the raster's CRS into an in-memory layer holding only the geometry and a
running index; each block is then rasterised on its own (pixel-centre rule), so no raster of the whole extent is
ever held.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import EngineError

_POLYGONS = ("POLYGON", "MULTIPOLYGON", "CURVEPOLYGON", "MULTISURFACE")


def open_polygon_layer(vector: str, layer: Optional[str], purpose: str):
    """Opens the polygon layer ``layer`` (default: the first) of ``vector``; returns ``(dataset, layer)``."""
    from osgeo import gdal, ogr

    gdal.UseExceptions()
    if not Path(str(vector)).exists() and not str(vector).startswith("/vsi"):
        raise EngineError(f"The {purpose} file '{vector}' does not exist. Check the path.")
    try:
        dataset = gdal.OpenEx(str(vector), gdal.OF_VECTOR)
    except RuntimeError as exc:
        raise EngineError(
            f"The {purpose} file '{vector}' cannot be read as a vector layer ({exc}). Use a GeoPackage, Shapefile or "
            "GeoJSON with polygons."
        ) from None
    if dataset is None or dataset.GetLayerCount() == 0:
        raise EngineError(f"The {purpose} file '{vector}' holds no vector layer.")
    found = dataset.GetLayerByName(layer) if layer else dataset.GetLayerByIndex(0)
    if found is None:
        names = [dataset.GetLayerByIndex(i).GetName() for i in range(dataset.GetLayerCount())]
        raise EngineError(f"The file '{vector}' has no layer '{layer}'. Its layers are: {', '.join(names)}.")
    kind = ogr.GeometryTypeToName(ogr.GT_Flatten(found.GetGeomType())).upper().replace(" ", "")
    if found.GetGeomType() != ogr.wkbUnknown and not any(kind == p for p in _POLYGONS):
        raise EngineError(
            f"The {purpose} layer '{found.GetName()}' of '{vector}' holds {kind.lower()} geometries; polygons are "
            "needed. Choose a polygon layer."
        )
    return dataset, found


class PolygonBurner:
    """Burns polygons into blocks of ``grid``: value ``i`` (1..N) for the i-th polygon, or 1 for every polygon.

    ``fids`` lists the source feature ids in index order (index ``i`` is ``fids[i - 1]``).
    """

    def __init__(self, vector: str, layer: Optional[str], grid, purpose: str = "polygon", ids: bool = True) -> None:
        from osgeo import ogr, osr

        self.grid = grid
        self.vector, self.layer_name = str(vector), layer
        dataset, source = open_polygon_layer(vector, layer, purpose)
        target = osr.SpatialReference()
        target.ImportFromWkt(grid.crs_wkt)
        target.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        source_srs = source.GetSpatialRef()
        transform = None
        if source_srs is not None:
            source_srs = source_srs.Clone()
            source_srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
            if not source_srs.IsSame(target):
                transform = osr.CoordinateTransformation(source_srs, target)
        self._memory = ogr.GetDriverByName("Memory").CreateDataSource("burn")
        self._layer = self._memory.CreateLayer("burn", target, ogr.wkbMultiPolygon)
        self._layer.CreateField(ogr.FieldDefn("burn", ogr.OFTInteger))
        definition = self._layer.GetLayerDefn()
        self.fids: list[int] = []
        source.ResetReading()
        for feature in source:
            geometry = feature.GetGeometryRef()
            if geometry is None or geometry.IsEmpty():
                continue
            geometry = geometry.Clone()
            if transform is not None:
                geometry.Transform(transform)
            self.fids.append(feature.GetFID())
            out = ogr.Feature(definition)
            out.SetField("burn", len(self.fids) if ids else 1)
            out.SetGeometry(geometry)
            self._layer.CreateFeature(out)
        dataset = None
        if not self.fids:
            raise EngineError(f"The {purpose} layer of '{vector}' holds no polygon.")

    @property
    def count(self) -> int:
        return len(self.fids)

    def burn(self, x0: int, y0: int, w: int, h: int) -> np.ndarray:
        """int32 ``(h, w)``: the polygon index (or 1) under each pixel centre of the block, 0 outside polygons."""
        from osgeo import gdal

        target = gdal.GetDriverByName("MEM").Create("", w, h, 1, gdal.GDT_Int32)
        gt = self.grid.geotransform
        origin_x = gt[0] + x0 * gt[1] + y0 * gt[2]
        origin_y = gt[3] + x0 * gt[4] + y0 * gt[5]
        target.SetGeoTransform((origin_x, gt[1], gt[2], origin_y, gt[4], gt[5]))
        target.SetProjection(self.grid.crs_wkt)
        xs = [origin_x + px * gt[1] + py * gt[2] for px in (0, w) for py in (0, h)]
        ys = [origin_y + px * gt[4] + py * gt[5] for px in (0, w) for py in (0, h)]
        self._layer.SetSpatialFilterRect(min(xs), min(ys), max(xs), max(ys))
        try:
            gdal.RasterizeLayer(target, [1], self._layer, options=["ATTRIBUTE=burn"])
        finally:
            self._layer.SetSpatialFilter(None)
        return target.GetRasterBand(1).ReadAsArray().astype(np.int32, copy=False)
