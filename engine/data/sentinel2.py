"""Sentinel-2 products as users download them: ``.SAFE`` folders and ``.SAFE.zip`` files, L2A and L1C.

A product becomes two virtual rasters (GDAL VRTs) on a 10 m grid: the chosen bands as float32 reflectance x 10000,
harmonised across processing baselines, and (L2A) its scene classification (SCL). Nothing is unzipped or read
until ``TimeSeries.read`` asks for a window: GDAL reads the JP2 band files through ``/vsizip/`` and JP2OpenJPEG.

Harmonisation: ``value = (DN + ADD_OFFSET) / QUANTIFICATION_VALUE * 10000``, with ``BOA_QUANTIFICATION_VALUE`` and
``BOA_ADD_OFFSET`` (L2A) or ``QUANTIFICATION_VALUE`` and ``RADIO_ADD_OFFSET`` (L1C) from the product metadata, so a
product of baseline 04.00 or later (offset -1000) gives the same values as an older one (no offset) for the same
ground, and both match the usual "reflectance x 10000" GeoTIFFs. DN 0 is nodata.

Only the product metadata (``MTD_MSIL2A.xml`` / ``MTD_MSIL1C.xml``) and the band files are needed; the granule
metadata (``MTD_TL.xml``) is not, so products cut to a window or repackaged still open.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import uuid
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence
from xml.sax.saxutils import escape

import numpy as np
from osgeo import gdal, osr

from ..errors import EngineError
from .dates import parse_date
from .grid import RasterGrid

gdal.UseExceptions()

DEFAULT_BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
ALL_BANDS: tuple[str, ...] = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11",
                              "B12")
# ``band_id`` attribute of the offsets in the product metadata -> band name.
_BAND_IDS = dict(enumerate(ALL_BANDS))
_BAND_FILE = re.compile(r"_(B\d\dA?|B8A|SCL)(?:_(\d\d)m)?\.jp2$", re.IGNORECASE)
OUTPUT_SCALE = 10000.0  # values are reflectance x 10000, as in pre-04.00 products and most prepared GeoTIFFs
TARGET_RESOLUTION = 10.0


@dataclass
class Sentinel2Product:
    """What the engine needs to know about one product: where its files are and how to scale them."""

    path: str  # as the user gave it (folder or zip)
    root: str  # GDAL path of the .SAFE folder (``/vsizip/...`` for a zip)
    name: str  # the product name (``S2A_MSIL2A_..._T31TEJ_....SAFE``)
    level: str  # "L2A" or "L1C"
    baseline: str  # "02.08", "05.11", ...
    sensing_time: dt.datetime
    spacecraft: str
    relative_orbit: str
    tile: str
    quantification: float
    offsets: dict[str, float]  # band -> additive offset in DN (0 before baseline 04.00)
    band_files: dict[str, tuple[str, float]]  # band -> (GDAL path, resolution in metres), the finest available
    cloud_cover: Optional[float] = None
    warnings: list[str] = field(default_factory=list)

    @property
    def scl_file(self) -> Optional[str]:
        found = self.band_files.get("SCL")
        return found[0] if found else None

    @property
    def datatake(self) -> tuple[dt.date, str, str]:
        """Products with the same key are one acquisition (e.g. two overlapping tiles): their pixels are merged."""
        return self.sensing_time.date(), self.spacecraft, self.relative_orbit


def is_product_path(path: str) -> bool:
    """True for a ``.SAFE`` folder, a ``.SAFE.zip`` or a zip holding one ``.SAFE`` folder (by name only)."""
    text = str(path).rstrip("/\\")
    lower = text.lower()
    if lower.endswith(".safe"):
        return True
    if lower.endswith(".zip"):
        name = Path(text).name.upper()
        return ".SAFE" in name or bool(re.match(r"S2[ABCD]_MSIL(1C|2A)_", name))
    return False


def find_products(folder: str) -> list[str]:
    """The products directly inside ``folder`` (``.SAFE`` folders and zips), sorted by name."""
    return sorted(str(p) for p in Path(folder).iterdir() if is_product_path(str(p)))


def _zip_root(path: str) -> str:
    """The ``/vsizip/`` path of the ``.SAFE`` folder inside a zip, checking that the zip can be read."""
    vsi = f"/vsizip/{os.path.abspath(path)}"
    try:
        entries = gdal.ReadDir(vsi)
    except RuntimeError:
        entries = None
    if not entries:
        raise EngineError(f"The zip '{path}' cannot be read: it is damaged or not a zip file (an interrupted "
                          "download?). Download the product again.")
    safe = [e for e in entries if e.rstrip("/").upper().endswith(".SAFE")]
    if len(safe) == 1:
        return f"{vsi}/{safe[0].rstrip('/')}"
    if any(e.upper().startswith("MTD_MSIL") for e in entries):
        return vsi
    raise EngineError(f"The zip '{path}' holds no Sentinel-2 product (.SAFE folder with MTD_MSIL2A.xml or "
                      "MTD_MSIL1C.xml). Use the zip as downloaded from the Copernicus Data Space.")


def _read_text(path: str) -> Optional[bytes]:
    """The bytes of a file through GDAL's virtual file systems, None if it does not exist."""
    if gdal.VSIStatL(path) is None:
        return None
    handle = gdal.VSIFOpenL(path, "rb")
    if handle is None:
        return None
    try:
        size = gdal.VSIStatL(path).size
        return gdal.VSIFReadL(1, size, handle)
    finally:
        gdal.VSIFCloseL(handle)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _first(root: ElementTree.Element, *names: str) -> Optional[str]:
    """Text of the first element whose tag (namespace removed) is one of ``names``."""
    for element in root.iter():
        if _local(element.tag) in names and element.text and element.text.strip():
            return element.text.strip()
    return None


def open_product(path: str) -> Sentinel2Product:
    """Reads a product's metadata and finds its band files; raises EngineError with what is wrong."""
    path = str(path)
    if not os.path.exists(path):
        raise EngineError(f"The Sentinel-2 product '{path}' does not exist. Check the path.")
    if os.path.isdir(path):
        root = os.path.abspath(path)
    elif path.lower().endswith(".zip"):
        root = _zip_root(path)
    else:
        raise EngineError(f"'{path}' is not a Sentinel-2 product (.SAFE folder or .SAFE.zip).")
    metadata, level = None, None
    for candidate, candidate_level in (("MTD_MSIL2A.xml", "L2A"), ("MTD_MSIL1C.xml", "L1C")):
        metadata = _read_text(f"{root}/{candidate}")
        if metadata is not None:
            level = candidate_level
            break
    if metadata is None or level is None:
        raise EngineError(f"The product '{path}' has no product metadata (MTD_MSIL2A.xml or MTD_MSIL1C.xml). "
                          "Use complete products as downloaded (the .SAFE folder or its zip).")
    try:
        xml = ElementTree.fromstring(metadata)
    except ElementTree.ParseError as exc:
        raise EngineError(f"The metadata of the product '{path}' is damaged ({exc}). Download it again.") from None

    name = (_first(xml, "PRODUCT_URI", "PRODUCT_URI_2A") or Path(root).name)
    time = parse_date(_first(xml, "PRODUCT_START_TIME", "DATATAKE_SENSING_START")) or parse_date(name)
    if time is None:
        raise EngineError(f"No sensing time was found in the metadata of the product '{path}'.")
    quant_names = ("BOA_QUANTIFICATION_VALUE", "L2A_BOA_QUANTIFICATION_VALUE") if level == "L2A" else \
        ("QUANTIFICATION_VALUE",)
    quantification = float(_first(xml, *quant_names) or 10000)
    offset_name = "BOA_ADD_OFFSET" if level == "L2A" else "RADIO_ADD_OFFSET"
    offsets: dict[str, float] = {}
    for element in xml.iter():
        if _local(element.tag) == offset_name and element.text:
            band = _BAND_IDS.get(int(element.get("band_id", "-1")))
            if band:
                offsets[band] = float(element.text)
    tile_match = re.search(r"_T(\d\d[A-Z]{3})_", name)
    orbit_match = re.search(r"_R(\d{3})_", name)
    cloud = _first(xml, "Cloud_Coverage_Assessment", "CLOUDY_PIXEL_PERCENTAGE")
    product = Sentinel2Product(
        path=path, root=root, name=name, level=level,
        baseline=_first(xml, "PROCESSING_BASELINE") or "",
        sensing_time=time,
        spacecraft=_first(xml, "SPACECRAFT_NAME") or name[:3],
        relative_orbit=orbit_match.group(1) if orbit_match else (_first(xml, "SENSING_ORBIT_NUMBER") or ""),
        tile=tile_match.group(1) if tile_match else "",
        quantification=quantification,
        offsets=offsets,
        band_files=_band_files(root, xml),
        cloud_cover=float(cloud) if cloud else None,
    )
    if not product.band_files:
        raise EngineError(f"The product '{path}' holds no band files (GRANULE/*/IMG_DATA/*.jp2). Download it again.")
    return product


def _band_files(root: str, xml: ElementTree.Element) -> dict[str, tuple[str, float]]:
    """For each band, its finest existing JP2 file: the files the metadata lists, else those found on disk."""
    listed = [f"{root}/{e.text.strip()}.jp2" for e in xml.iter()
              if _local(e.tag).startswith("IMAGE_FILE") and e.text and e.text.strip()]
    candidates = [p for p in listed if gdal.VSIStatL(p) is not None]
    if not candidates:  # a repackaged product whose metadata lists no (existing) file: look at the files
        candidates = [f"{root}/GRANULE/{p}" for p in (gdal.ReadDirRecursive(f"{root}/GRANULE") or [])
                      if p.lower().endswith(".jp2") and "IMG_DATA" in p]  # not QI_DATA's MSK_*_B02.jp2
    found: dict[str, tuple[str, float]] = {}
    for candidate in candidates:
        match = _BAND_FILE.search(candidate)
        if not match:
            continue
        band = match.group(1).upper()
        resolution = float(match.group(2)) if match.group(2) else _native_resolution(band)
        if band not in found or resolution < found[band][1]:
            found[band] = (candidate, resolution)
    return found


def _native_resolution(band: str) -> float:
    if band in ("B02", "B03", "B04", "B08"):
        return 10.0
    if band in ("B01", "B09", "B10"):
        return 60.0
    return 20.0


def check_bands(product: Sentinel2Product, bands: Sequence[str]) -> None:
    """Raises EngineError naming the bands a product lacks."""
    missing = [b for b in bands if b not in product.band_files]
    if missing:
        raise EngineError(
            f"The product '{product.path}' lacks the band(s) {', '.join(missing)} (it has "
            f"{', '.join(b for b in ALL_BANDS if b in product.band_files)}). The download may be incomplete: "
            "download it again, or choose only the bands every product has."
        )


def parse_bands(bands: Optional[Iterable[str]]) -> list[str]:
    """The user's band choice in canonical names (default ``DEFAULT_BANDS``); unknown names raise EngineError."""
    if not bands:
        return list(DEFAULT_BANDS)
    chosen = []
    for text in bands:
        for item in re.split(r"[,\s]+", str(text).strip()):
            if not item:
                continue
            match = re.fullmatch(r"[Bb]0?(\d{1,2}|8[Aa])", item)
            name = None
            if match:
                number = match.group(1).upper()
                name = "B8A" if number == "8A" else f"B{int(number):02d}"
            if name not in ALL_BANDS:
                raise EngineError(f"'{item}' is not a Sentinel-2 band. Choose among {', '.join(ALL_BANDS)}.")
            if name not in chosen:
                chosen.append(name)
    if not chosen:
        return list(DEFAULT_BANDS)
    return chosen


# --------------------------------------------------------------------------------------------------------------
# Grids


def _dataset_grid(path: str) -> RasterGrid:
    try:
        dataset = gdal.Open(path)
    except RuntimeError as exc:
        raise EngineError(f"The band file '{path}' cannot be read ({exc}). The product may be damaged: download it "
                          "again.") from None
    return RasterGrid.from_dataset(dataset)


def product_grid(product: Sentinel2Product) -> RasterGrid:
    """The product's 10 m grid: that of a 10 m band file, else the extent of the finest band at 10 m."""
    ten = [b for b in ("B02", "B03", "B04", "B08") if b in product.band_files]
    if ten:
        return _dataset_grid(product.band_files[ten[0]][0])
    finest = min(product.band_files.values(), key=lambda item: item[1])
    coarse = _dataset_grid(finest[0])
    factor = coarse.pixel_size[0] / TARGET_RESOLUTION
    gt = coarse.geotransform
    return RasterGrid(int(round(coarse.width * factor)), int(round(coarse.height * factor)),
                      (gt[0], gt[1] / factor, gt[2], gt[3], gt[4], gt[5] / factor), coarse.crs_wkt)


def crs_name(wkt: str) -> str:
    """``EPSG:32631`` or the CRS's name, for messages."""
    srs = osr.SpatialReference()
    srs.ImportFromWkt(wkt)
    code = srs.GetAuthorityCode(None)
    return f"EPSG:{code}" if code else (srs.GetName() or "unknown CRS")


def same_crs(a: str, b: str) -> bool:
    srs_a, srs_b = osr.SpatialReference(), osr.SpatialReference()
    srs_a.ImportFromWkt(a)
    srs_b.ImportFromWkt(b)
    return bool(srs_a.IsSame(srs_b))


def clip_grid(grid: RasterGrid, bbox: Sequence[float], bbox_crs: Optional[str], what: str) -> RasterGrid:
    """The part of ``grid`` covering ``bbox`` (xmin, ymin, xmax, ymax, in ``bbox_crs`` or the grid's CRS)."""
    xmin, ymin, xmax, ymax = (float(v) for v in bbox)
    if not (xmax > xmin and ymax > ymin):
        raise EngineError(f"The bounding box {list(bbox)} is empty: give xmin, ymin, xmax, ymax with xmin < xmax and "
                          "ymin < ymax.")
    if bbox_crs:
        source = osr.SpatialReference()
        try:
            source.SetFromUserInput(bbox_crs)
        except RuntimeError:
            raise EngineError(f"'{bbox_crs}' is not a coordinate reference system (use e.g. EPSG:4326).") from None
        target = osr.SpatialReference()
        target.ImportFromWkt(grid.crs_wkt)
        for srs in (source, target):
            srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        transform = osr.CoordinateTransformation(source, target)
        xmin, ymin, xmax, ymax = transform.TransformBounds(xmin, ymin, xmax, ymax, 21)
    x0, y0, w, h = grid.window_for_bounds(xmin, ymin, xmax, ymax)
    if w == 0 or h == 0:
        bounds = ", ".join(f"{v:.0f}" for v in grid.bounds)
        raise EngineError(f"The bounding box lies outside {what} (which covers {bounds} in {crs_name(grid.crs_wkt)}). "
                          "Choose a bounding box inside the tile, or products of the tile that covers your fields.")
    return grid.window_grid(x0, y0, w, h)


# --------------------------------------------------------------------------------------------------------------
# Virtual rasters


def _source_xml(file: str, grid: RasterGrid, ratio: float = 1.0, offset: float = 0.0, nodata: float = 0) -> str:
    """A ComplexSource placing ``file`` (same CRS) on ``grid``, nearest neighbour, scaled."""
    src = gdal.Open(file)
    sgt = src.GetGeoTransform()
    gt = grid.geotransform
    # Source pixel coordinates of the grid's corners (axis-aligned north-up grids, as Sentinel-2 tiles are).
    sx0 = (gt[0] - sgt[0]) / sgt[1]
    sy0 = (gt[3] - sgt[3]) / sgt[5]
    sw = grid.width * gt[1] / sgt[1]
    sh = grid.height * gt[5] / sgt[5]
    scale = "" if ratio == 1.0 and offset == 0.0 else \
        f"<ScaleOffset>{offset!r}</ScaleOffset><ScaleRatio>{ratio!r}</ScaleRatio>"
    return (f'<ComplexSource resampling="nearest"><SourceFilename relativeToVRT="0">{escape(file)}</SourceFilename>'
            f"<SourceBand>1</SourceBand>"
            f'<SrcRect xOff="{sx0!r}" yOff="{sy0!r}" xSize="{sw!r}" ySize="{sh!r}"/>'
            f'<DstRect xOff="0" yOff="0" xSize="{grid.width}" ySize="{grid.height}"/>'
            f"<NODATA>{nodata:g}</NODATA>{scale}</ComplexSource>")


def _vrt_xml(grid: RasterGrid, bands: list[tuple[str, str, str, list[str]]], metadata: dict[str, str]) -> str:
    """A VRT on ``grid``; ``bands``: (description, data type, nodata, source XMLs)."""
    gt = ", ".join(repr(v) for v in grid.geotransform)
    mdi = "".join(f'<MDI key="{escape(k)}">{escape(str(v))}</MDI>' for k, v in metadata.items())
    body = "".join(
        f'<VRTRasterBand dataType="{dtype}" band="{i}"><Description>{escape(name)}</Description>'
        f"<NoDataValue>{nodata}</NoDataValue>{''.join(sources)}</VRTRasterBand>"
        for i, (name, dtype, nodata, sources) in enumerate(bands, start=1)
    )
    return (f'<VRTDataset rasterXSize="{grid.width}" rasterYSize="{grid.height}">'
            f"<SRS>{escape(grid.crs_wkt)}</SRS><GeoTransform>{gt}</GeoTransform>"
            f"<Metadata>{mdi}</Metadata>{body}</VRTDataset>")


def product_metadata(products: Sequence[Sentinel2Product]) -> dict[str, str]:
    """GDAL metadata of the series' date (the first product of a merged acquisition names it)."""
    first = products[0]
    return {
        "ACQUISITION_DATETIME": first.sensing_time.isoformat(timespec="seconds"),
        "ACQUISITION_DATE": first.sensing_time.date().isoformat(),
        "PRODUCT_URI": ";".join(p.name for p in products),
        "PROCESSING_BASELINE": ";".join(p.baseline for p in products),
        "PROCESSING_LEVEL": first.level,
        "SPACECRAFT": first.spacecraft,
        "HARMONISED": f"(DN + ADD_OFFSET) / QUANTIFICATION_VALUE * {OUTPUT_SCALE:g}",
    }


class VirtualFiles:
    """In-memory VRT files (``/vsimem/``) of one opened series, removed when the series is closed."""

    def __init__(self) -> None:
        self.folder = f"/vsimem/cropmapper-s2-{uuid.uuid4().hex}"
        self.paths: list[str] = []

    def write(self, name: str, xml: str) -> str:
        path = f"{self.folder}/{name}"
        gdal.FileFromMemBuffer(path, xml.encode("utf-8"))
        self.paths.append(path)
        return path

    def remove(self) -> None:
        for path in self.paths:
            gdal.Unlink(path)
        self.paths = []


def _on_grid(product: Sentinel2Product, band: str, grid: RasterGrid, files: VirtualFiles, ratio: float = 1.0,
             offset: float = 0.0, nodata: float = 0, dtype: str = "UInt16") -> tuple[str, float]:
    """(GDAL path, nodata) of one band of ``product`` in ``grid``'s CRS: the file itself, or a warped VRT of it."""
    file = product.band_files[band][0]
    if same_crs(_dataset_grid(file).crs_wkt, grid.crs_wkt):
        return file, nodata
    # Another UTM zone: warp the band (nearest for SCL, bilinear for reflectance) onto the grid first.
    options = gdal.WarpOptions(format="VRT", outputBounds=grid.bounds, width=grid.width, height=grid.height,
                               dstSRS=grid.crs_wkt, resampleAlg="near" if band == "SCL" else "bilinear",
                               srcNodata=nodata, dstNodata=nodata)
    path = f"{files.folder}/{uuid.uuid4().hex}_{band}.vrt"
    gdal.Warp(path, file, options=options)
    files.paths.append(path)
    return path, nodata


def acquisition_vrts(products: Sequence[Sentinel2Product], bands: Sequence[str], grid: RasterGrid,
                     files: VirtualFiles) -> tuple[str, Optional[str]]:
    """The VRT paths of one acquisition on ``grid``: reflectance bands and (L2A) SCL.

    Several products of one acquisition (overlapping tiles, a reprocessed copy) are merged pixel by pixel: where the
    first has no data, the next one's pixels are used.
    """
    band_entries = []
    for band in bands:
        sources = []
        for product in reversed(products):  # VRT sources painted later win: the first product last
            ratio = OUTPUT_SCALE / product.quantification
            offset = product.offsets.get(band, 0.0) * ratio
            file, nodata = _on_grid(product, band, grid, files)
            sources.append(_source_xml(file, grid, ratio, offset, nodata))
        band_entries.append((band, "Float32", "nan", sources))
    stem = Path(products[0].name).stem
    data = files.write(f"{stem}.vrt", _vrt_xml(grid, band_entries, product_metadata(products)))
    if any(p.scl_file is None for p in products):
        return data, None
    scl_sources = [_source_xml(*_on_grid(p, "SCL", grid, files)[:1], grid) for p in reversed(products)]
    scl = files.write(f"{stem}_SCL.vrt", _vrt_xml(grid, [("SCL", "Byte", "0", scl_sources)],
                                                  product_metadata(products)))
    return data, scl


def has_data(path: str, max_size: int = 1024) -> bool:
    """True when the first band of ``path`` holds any valid pixel (read decimated to at most ``max_size`` px)."""
    dataset = gdal.Open(path)
    band = dataset.GetRasterBand(1)
    scale = max(1.0, max(dataset.RasterXSize, dataset.RasterYSize) / max_size)
    width = max(1, int(math.ceil(dataset.RasterXSize / scale)))
    height = max(1, int(math.ceil(dataset.RasterYSize / scale)))
    values = band.ReadAsArray(buf_xsize=width, buf_ysize=height)
    return bool(np.isfinite(values).any())


# --------------------------------------------------------------------------------------------------------------
# A series of products


@dataclass
class PreparedImages:
    """The images of a series with its products replaced by their VRTs (one per acquisition, in input order)."""

    images: list[str]  # plain rasters as given, products as data VRTs
    product_scl: list[Optional[str]]  # per image: the SCL VRT of a product (None for plain rasters and L1C)
    is_product: list[bool]
    grid: RasterGrid
    files: VirtualFiles
    warnings: list[str]


def reference_grid(path: str) -> RasterGrid:
    """The grid of a reference raster, or the 10 m grid of a reference product."""
    if is_product_path(path):
        return product_grid(open_product(path))
    try:
        dataset = gdal.Open(str(path))
    except RuntimeError as exc:
        raise EngineError(f"The reference raster '{path}' cannot be read ({exc}).") from None
    if not dataset.GetProjection():
        raise EngineError(f"The reference raster '{path}' has no coordinate reference system. Assign one first.")
    return RasterGrid.from_dataset(dataset)


def prepare_images(paths: Sequence[str], bands: Optional[Sequence[str]], reference: Optional[str],
                   bbox: Optional[Sequence[float]], bbox_crs: Optional[str]) -> PreparedImages:
    """Opens the products among ``paths``, checks them, chooses the grid and writes their VRTs.

    The grid is the reference's (raster or product), else the first plain raster's, else the first product's;
    clipped to ``bbox`` when given. Products of another CRS than the grid's are warped onto it; products of
    several CRSs need a reference. All-empty acquisitions are skipped with a warning.
    """
    chosen = parse_bands(bands)
    products: dict[int, Sentinel2Product] = {}
    for index, path in enumerate(paths):
        if is_product_path(path):
            product = open_product(path)
            check_bands(product, chosen)
            if product.level == "L2A" and product.scl_file is None:
                raise EngineError(f"The L2A product '{path}' has no scene classification (SCL) band file, so its "
                                  "clouds cannot be masked. The download may be incomplete: download it again.")
            products[index] = product
    levels = {p.level for p in products.values()}
    if len(levels) > 1:
        l1c = [Path(p.path).name for p in products.values() if p.level == "L1C"]
        raise EngineError(f"The series mixes L2A (surface reflectance) and L1C (top-of-atmosphere) products "
                          f"({', '.join(l1c[:3])}{' ...' if len(l1c) > 3 else ''} are L1C). Their values are not "
                          "comparable: use only L2A products (or only L1C).")
    grids = {index: product_grid(p) for index, p in products.items()}
    plain = [p for i, p in enumerate(paths) if i not in products]
    if reference:
        grid = reference_grid(reference)
        what = f"the reference '{reference}'"
    elif plain:
        grid = reference_grid(plain[0])
        what = f"the first raster '{plain[0]}'"
    else:
        first = min(grids)
        crs = {crs_name(g.crs_wkt) for g in grids.values()}
        if len(crs) > 1:
            raise EngineError(f"The products lie in {len(crs)} coordinate systems ({', '.join(sorted(crs))}: "
                              "different UTM zones). Choose the reference grid (one of the products, or a raster) "
                              "to align them onto.")
        grid = grids[first]
        what = f"the product '{paths[first]}'"
    if bbox:
        grid = clip_grid(grid, bbox, bbox_crs, what)

    files = VirtualFiles()
    warnings: list[str] = []
    images: list[str] = []
    product_scl: list[Optional[str]] = []
    is_product: list[bool] = []
    groups: dict[tuple, list[int]] = {}
    for index, product in products.items():
        groups.setdefault(product.datatake, []).append(index)
    try:
        for index, path in enumerate(paths):
            if index not in products:
                images.append(path)
                product_scl.append(None)
                is_product.append(False)
                continue
            group = groups[products[index].datatake]
            if group[0] != index:
                continue  # merged into the group's first product
            members = [products[i] for i in group]
            data, scl = acquisition_vrts(members, chosen, grid, files)
            if not has_data(data):
                names = ", ".join(f"'{m.path}'" for m in members)
                warnings.append(f"The product {names} holds no data over the area (every pixel is nodata); it was "
                                "skipped.")
                continue
            if len(members) > 1:
                warnings.append(f"{len(members)} products of the same acquisition "
                                f"({members[0].sensing_time.date()}, {members[0].spacecraft}, relative orbit "
                                f"{members[0].relative_orbit}) were merged into one date: "
                                f"{', '.join(Path(m.path).name for m in members)}.")
            images.append(data)
            product_scl.append(scl)
            is_product.append(True)
    except BaseException:
        files.remove()
        raise
    return PreparedImages(images, product_scl, is_product, grid, files, warnings)


def describe_product(path: str) -> tuple[Optional[dt.date], list[str]]:
    """A product's acquisition date and the default bands it has, for a preview (None, [] if unreadable)."""
    try:
        product = open_product(path)
    except EngineError:
        return None, []
    return product.sensing_time.date(), [b for b in DEFAULT_BANDS if b in product.band_files]


def vector_extent(path: str, layer: Optional[str] = None) -> tuple[tuple[float, float, float, float], str]:
    """(xmin, ymin, xmax, ymax) and CRS (WKT) of a polygon layer: the area to read from products by default."""
    from osgeo import ogr

    ogr.UseExceptions()
    try:
        source = ogr.Open(str(path))
        vector = source.GetLayerByName(layer) if layer else source.GetLayer(0)
        xmin, xmax, ymin, ymax = vector.GetExtent()
        srs = vector.GetSpatialRef()
    except (RuntimeError, AttributeError) as exc:
        raise EngineError(f"Cannot read the extent of the polygons '{path}' ({exc}).") from None
    if srs is None:
        raise EngineError(f"The polygons '{path}' have no CRS, so their area cannot be found in the products. "
                          "Assign their CRS, or give the area (bounding box) explicitly.")
    return (xmin, ymin, xmax, ymax), srs.ExportToWkt()
