"""The pixel grid of a raster: size, geotransform and CRS, with georeferencing helpers.

GDAL is imported only inside the helpers that need it, so the grid can travel to machines without GDAL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Window = tuple[int, int, int, int]  # x0, y0, width, height in pixels


@dataclass(frozen=True)
class RasterGrid:
    """``width`` x ``height`` pixels placed by a GDAL ``geotransform`` in the CRS ``crs_wkt``."""

    width: int
    height: int
    geotransform: tuple[float, float, float, float, float, float]
    crs_wkt: str

    @staticmethod
    def from_dataset(dataset) -> "RasterGrid":
        """The grid of an open GDAL dataset."""
        return RasterGrid(
            int(dataset.RasterXSize),
            int(dataset.RasterYSize),
            tuple(float(v) for v in dataset.GetGeoTransform()),  # type: ignore[arg-type]
            dataset.GetProjection() or "",
        )

    def to_dict(self) -> dict:
        return {"width": self.width, "height": self.height, "geotransform": list(self.geotransform),
                "crs_wkt": self.crs_wkt}

    @staticmethod
    def from_dict(data: dict) -> "RasterGrid":
        return RasterGrid(int(data["width"]), int(data["height"]),
                          tuple(float(v) for v in data["geotransform"]), str(data["crs_wkt"]))  # type: ignore[arg-type]

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)``, as numpy arrays of the grid are laid out."""
        return self.height, self.width

    @property
    def pixel_size(self) -> tuple[float, float]:
        """Pixel width and height in CRS units (both positive)."""
        gt = self.geotransform
        return math.hypot(gt[1], gt[4]), math.hypot(gt[2], gt[5])

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(xmin, ymin, xmax, ymax)`` of the grid's extent in its CRS."""
        xs, ys = zip(*(self.pixel_to_world(px, py) for px, py in
                       ((0, 0), (self.width, 0), (0, self.height), (self.width, self.height))))
        return min(xs), min(ys), max(xs), max(ys)

    @property
    def is_geographic(self) -> bool:
        """True when the CRS is in degrees (longitude / latitude)."""
        if not self.crs_wkt:
            return False
        from osgeo import osr

        srs = osr.SpatialReference()
        srs.ImportFromWkt(self.crs_wkt)
        return bool(srs.IsGeographic())

    @property
    def pixel_area_m2(self) -> float:
        """Area of one pixel in square metres (for a geographic CRS: at the grid's centre latitude)."""
        gt = self.geotransform
        area = abs(gt[1] * gt[5] - gt[2] * gt[4])
        if not self.crs_wkt:
            return area
        from osgeo import osr

        srs = osr.SpatialReference()
        srs.ImportFromWkt(self.crs_wkt)
        if srs.IsGeographic():
            lat = math.radians((self.bounds[1] + self.bounds[3]) / 2)
            metres_per_degree = 111_320.0
            return area * metres_per_degree**2 * math.cos(lat)
        return area * float(srs.GetLinearUnits()) ** 2

    def pixel_to_world(self, px: float, py: float) -> tuple[float, float]:
        """CRS coordinates of pixel position ``(px, py)`` (corner of the pixel for integers)."""
        gt = self.geotransform
        return gt[0] + px * gt[1] + py * gt[2], gt[3] + px * gt[4] + py * gt[5]

    def world_to_pixel(self, x: float, y: float) -> tuple[float, float]:
        """Fractional pixel position of CRS coordinates ``(x, y)``."""
        gt = self.geotransform
        det = gt[1] * gt[5] - gt[2] * gt[4]
        dx, dy = x - gt[0], y - gt[3]
        return (gt[5] * dx - gt[2] * dy) / det, (-gt[4] * dx + gt[1] * dy) / det

    def window_geotransform(self, x0: int, y0: int) -> tuple[float, float, float, float, float, float]:
        """Geotransform of a window whose top-left pixel is ``(x0, y0)``."""
        gt = self.geotransform
        ox, oy = self.pixel_to_world(x0, y0)
        return ox, gt[1], gt[2], oy, gt[4], gt[5]

    def window_grid(self, x0: int, y0: int, width: int, height: int) -> "RasterGrid":
        """The grid of a window of this grid."""
        return RasterGrid(width, height, self.window_geotransform(x0, y0), self.crs_wkt)

    def clip_window(self, x0: int, y0: int, width: int, height: int) -> Window:
        """The part of a window inside the grid (width or height 0 when it lies outside)."""
        cx0, cy0 = max(x0, 0), max(y0, 0)
        cx1, cy1 = min(x0 + width, self.width), min(y0 + height, self.height)
        return cx0, cy0, max(cx1 - cx0, 0), max(cy1 - cy0, 0)

    def window_for_bounds(self, xmin: float, ymin: float, xmax: float, ymax: float) -> Window:
        """The smallest pixel window covering a CRS extent, clipped to the grid."""
        corners = [self.world_to_pixel(x, y) for x in (xmin, xmax) for y in (ymin, ymax)]
        px = [c[0] for c in corners]
        py = [c[1] for c in corners]
        eps = 1e-6  # reprojection round-off must not add a pixel row or column
        x0, y0 = math.floor(min(px) + eps), math.floor(min(py) + eps)
        x1, y1 = math.ceil(max(px) - eps), math.ceil(max(py) - eps)
        return self.clip_window(x0, y0, x1 - x0, y1 - y0)

    def same_as(self, other: "RasterGrid", tolerance: float = 1e-6) -> bool:
        """True when both grids have the same size, pixel placement (within ``tolerance`` pixels) and CRS."""
        if (self.width, self.height) != (other.width, other.height):
            return False
        scale = max(self.pixel_size + other.pixel_size)
        if any(abs(a - b) > tolerance * scale for a, b in zip(self.geotransform, other.geotransform)):
            return False
        if self.crs_wkt == other.crs_wkt:
            return True
        from osgeo import osr

        a, b = osr.SpatialReference(), osr.SpatialReference()
        a.ImportFromWkt(self.crs_wkt)
        b.ImportFromWkt(other.crs_wkt)
        return bool(a.IsSame(b))
