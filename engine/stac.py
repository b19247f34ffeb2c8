"""Searching a STAC API for Sentinel-2 L2A images and reading only the needed window of their COGs.

The search goes through ``pystac-client``; the pixels through GDAL's ``/vsicurl/`` (HTTP range requests on the
cloud-optimised GeoTIFFs, never a whole download). Each acquisition is written as one local GeoTIFF (float32
reflectance x 10000, harmonised like Sentinel-2 products, nodata NaN where the SCL says cloud, shadow, snow or no
data) that the rest of the pipeline reads as a per-date raster.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .atomic import atomic_output, check_writable
from .errors import CancelledError, EngineError
from .progress import CancelledCallback, ProgressCallback, as_reporter

# STAC APIs users know, with their Sentinel-2 L2A collection. Planetary Computer assets need a signed URL (a
# short-lived SAS token, asked from its token endpoint); Copernicus Data Space assets need a login (S3 keys).
PRESETS: dict[str, dict[str, str]] = {
    "earth-search": {"url": "https://earth-search.aws.element84.com/v1", "collection": "sentinel-2-l2a"},
    "planetary-computer": {"url": "https://planetarycomputer.microsoft.com/api/stac/v1",
                           "collection": "sentinel-2-l2a",
                           "token": "https://planetarycomputer.microsoft.com/api/sas/v1/token/{collection}"},
    "copernicus": {"url": "https://stac.dataspace.copernicus.eu/v1", "collection": "sentinel-2-l2a"},
}
DEFAULT_MAX_CLOUD = 50.0
# Asset keys of each band in the catalogues above (band name, common name, Copernicus Data Space name).
ASSET_KEYS: dict[str, tuple[str, ...]] = {
    "B01": ("B01", "coastal", "B01_60m"), "B02": ("B02", "blue", "B02_10m"), "B03": ("B03", "green", "B03_10m"),
    "B04": ("B04", "red", "B04_10m"), "B05": ("B05", "rededge1", "B05_20m"), "B06": ("B06", "rededge2", "B06_20m"),
    "B07": ("B07", "rededge3", "B07_20m"), "B08": ("B08", "nir", "B08_10m"), "B8A": ("B8A", "nir08", "B8A_20m"),
    "B09": ("B09", "nir09", "B09_60m"), "B11": ("B11", "swir16", "B11_20m"), "B12": ("B12", "swir22", "B12_20m"),
    "SCL": ("SCL", "scl", "SCL_20m"),
}
STRIP_ROWS = 512  # rows written at a time: memory stays bounded whatever the area


@dataclass
class FoundImage:
    """One STAC item of the search: what the list shows, and what reading it needs."""

    item_id: str
    time: dt.datetime
    cloud_cover: Optional[float]
    platform: str
    relative_orbit: str
    tile: str
    baseline: str
    assets: dict[str, str]  # band -> GDAL path (``/vsicurl/https://...``)
    scale_offsets: dict[str, tuple[float, float]] = field(default_factory=dict)  # band -> (scale, offset)

    def describe(self) -> str:
        cloud = f"{self.cloud_cover:.0f} % cloud" if self.cloud_cover is not None else "cloud cover unknown"
        return f"{self.time:%Y-%m-%d %H:%M} {self.platform} {self.tile} ({cloud}) {self.item_id}"


@dataclass
class SearchOutcome:
    found: list[FoundImage]
    written: list[str]
    warnings: list[str]
    seconds: float


def resolve_api(api: str, collection: Optional[str]) -> tuple[str, str, Optional[str]]:
    """(API URL, collection, token URL) for a preset name or a URL."""
    preset = PRESETS.get(api.strip().lower())
    if preset:
        return preset["url"], collection or preset["collection"], preset.get("token")
    if not re.match(r"^https?://", api.strip()):
        raise EngineError(f"'{api}' is neither a STAC API address (http://... or https://...) nor one of the "
                          f"presets {', '.join(PRESETS)}.")
    return api.strip().rstrip("/"), collection or "sentinel-2-l2a", None


def _client_modules():
    try:
        import pystac_client
        from pystac_client.exceptions import APIError
    except ImportError:
        raise EngineError("Searching a STAC API needs the Python package pystac-client. Install it (QGIS: the "
                          "CropMapper dependency installer; otherwise pip install pystac-client).") from None
    return pystac_client, APIError


def search(api: str, bbox: Sequence[float], start: dt.date, end: dt.date, max_cloud: float = DEFAULT_MAX_CLOUD,
           collection: Optional[str] = None, bands: Optional[Sequence[str]] = None, limit: int = 500
           ) -> list[FoundImage]:
    """Sentinel-2 L2A items over ``bbox`` (lon/lat, EPSG:4326) between ``start`` and ``end`` with at most
    ``max_cloud`` % cloud cover, sorted by time. Raises EngineError for unreachable or refusing servers."""
    from .data.sentinel2 import parse_bands

    url, collection, token_url = resolve_api(api, collection)
    _check_bbox(bbox)
    if end < start:
        raise EngineError(f"The end date {end} is before the start date {start}.")
    if not 0 <= max_cloud <= 100:
        raise EngineError(f"The maximum cloud cover must be between 0 and 100 %, not {max_cloud}.")
    chosen = parse_bands(bands) + ["SCL"]
    pystac_client, APIError = _client_modules()
    try:
        client = pystac_client.Client.open(url, timeout=60)
        results = client.search(collections=[collection], bbox=list(bbox), max_items=limit,
                                datetime=f"{start.isoformat()}T00:00:00Z/{end.isoformat()}T23:59:59Z")
        items = list(results.items())
    except APIError as exc:
        if getattr(exc, "status_code", None):  # the server answered, with an HTTP error
            raise EngineError(f"The STAC API at {url} refused the search (HTTP {exc.status_code}: {_short(exc)}). "
                              f"Check the address, the collection '{collection}' and your access rights.") from None
        raise EngineError(f"Cannot reach the STAC API at {url} ({_short(exc)}). Check the address and the "
                          "network connection (or proxy).") from None
    except Exception as exc:  # requests' connection errors, timeouts, bad JSON: all mean "cannot use this server"
        raise EngineError(f"Cannot reach the STAC API at {url} ({type(exc).__name__}: {_short(exc)}). Check the "
                          "address and the network connection (or proxy).") from None
    token = _token(token_url, collection) if token_url else None
    found = []
    for item in items:
        image = _found_image(item, chosen, token)
        if image is not None and (image.cloud_cover is None or image.cloud_cover <= max_cloud):
            found.append(image)
    return sorted(found, key=lambda f: f.time)


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text[:200] + ("..." if len(text) > 200 else "")


def _check_bbox(bbox: Sequence[float]) -> None:
    if len(bbox) != 4:
        raise EngineError("The search area needs 4 numbers: west, south, east, north (degrees).")
    west, south, east, north = (float(v) for v in bbox)
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        raise EngineError(f"The search area {list(bbox)} is not west, south, east, north in degrees (EPSG:4326) "
                          "with west < east and south < north.")


def _token(token_url: str, collection: str) -> str:
    """A Planetary Computer SAS token for the collection's storage (anonymous, short-lived)."""
    import json
    import urllib.request

    url = token_url.format(collection=collection)
    try:
        with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - a fixed https preset URL
            return json.loads(response.read())["token"]
    except Exception as exc:
        raise EngineError(f"Cannot get the access token for the images from {url} ({_short(exc)}).") from None


def _found_image(item, bands: list[str], token: Optional[str]) -> Optional[FoundImage]:
    props = item.properties
    assets: dict[str, str] = {}
    scale_offsets: dict[str, tuple[float, float]] = {}
    baseline = str(props.get("s2:processing_baseline") or props.get("processing:version") or "")
    for band in bands:
        asset = next((item.assets[k] for k in ASSET_KEYS.get(band, (band,)) if k in item.assets), None)
        if asset is None:
            return None  # not an image with the chosen bands (e.g. a preview-only item)
        href = asset.href
        if token and "?" not in href:
            href = f"{href}?{token}"
        assets[band] = f"/vsicurl/{href}" if href.startswith("http") else href
        scale_offsets[band] = _scale_offset(asset.extra_fields, props, baseline) if band != "SCL" else (1.0, 0.0)
    time = item.datetime or dt.datetime.fromisoformat(str(props.get("start_datetime")).replace("Z", "+00:00"))
    tile = str(props.get("s2:mgrs_tile") or props.get("grid:code") or "")
    return FoundImage(
        item_id=item.id, time=time.replace(tzinfo=None), cloud_cover=props.get("eo:cloud_cover"),
        platform=str(props.get("platform") or "sentinel-2"),
        relative_orbit=str(props.get("sat:relative_orbit") or ""),
        tile=tile.replace("MGRS-", "T") if tile else "", baseline=baseline, assets=assets,
        scale_offsets=scale_offsets,
    )


def _scale_offset(asset_fields: dict, props: dict, baseline: str) -> tuple[float, float]:
    """(scale, offset) turning the asset's DN into reflectance: its ``raster:bands`` when they give an offset,
    else the product convention (1 / 10000, and -0.1 from processing baseline 04.00 on, unless the catalogue says
    it already removed the offset)."""
    bands = asset_fields.get("raster:bands") or []
    if bands and "offset" in bands[0]:
        return float(bands[0].get("scale", 1e-4)), float(bands[0]["offset"])
    applied = bool(props.get("earthsearch:boa_offset_applied"))
    newer = baseline and _baseline_number(baseline) >= 4.0
    return 1e-4, -0.1 if newer and not applied else 0.0


def _baseline_number(baseline: str) -> float:
    try:
        return float(str(baseline).lstrip("N").replace("_", "."))
    except ValueError:
        return 0.0


def _as_product(image: FoundImage):
    """The image in the shape of a Sentinel-2 product, so the product VRTs (merge, harmonisation) serve it too."""
    from .data.sentinel2 import Sentinel2Product, _native_resolution

    offsets = {band: offset / scale for band, (scale, offset) in image.scale_offsets.items()}
    scales = {round(scale, 12) for band, (scale, _) in image.scale_offsets.items() if band != "SCL"}
    if len(scales) > 1:
        raise EngineError(f"The bands of {image.item_id} have different scales; this reader needs one.")
    quantification = 1.0 / (scales.pop() if scales else 1e-4)
    return Sentinel2Product(
        path=image.item_id, root="", name=image.item_id, level="L2A", baseline=image.baseline,
        sensing_time=image.time, spacecraft=image.platform, relative_orbit=image.relative_orbit, tile=image.tile,
        quantification=quantification, offsets=offsets,
        band_files={band: (path, _native_resolution(band)) for band, path in image.assets.items()},
        cloud_cover=image.cloud_cover,
    )


def download(found: Sequence[FoundImage], bbox: Sequence[float], out_folder: str,
             bands: Optional[Sequence[str]] = None, progress: Optional[ProgressCallback] = None,
             cancelled: Optional[CancelledCallback] = None) -> tuple[list[str], list[str]]:
    """Reads the window ``bbox`` (lon/lat) of each acquisition and writes one GeoTIFF per date into
    ``out_folder``; returns (written paths, warnings). Same-day images of one orbit (adjacent tiles) are merged."""
    from osgeo import gdal

    from .data.grid import RasterGrid
    from .data.sentinel2 import VirtualFiles, acquisition_vrts, clip_grid, parse_bands

    if not found:
        raise EngineError("Nothing to download: the search found no image.")
    chosen = parse_bands(bands)
    reporter = as_reporter(progress, cancelled)
    folder = Path(out_folder)
    check_writable(folder / "probe.tif")
    products = [_as_product(f) for f in found]
    groups: dict[tuple, list] = {}
    for product in products:
        groups.setdefault(product.datatake, []).append(product)
    files = VirtualFiles()
    written: list[str] = []
    warnings: list[str] = []
    options = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "GDAL_HTTP_MAX_RETRY": "3", "GDAL_HTTP_RETRY_DELAY": "2",
               "CPL_VSIL_CURL_USE_HEAD": "NO"}
    previous = {k: gdal.GetConfigOption(k) for k in options}
    try:
        for key, value in options.items():
            gdal.SetConfigOption(key, value)
        first = products[0]
        reference_band = next(b for b in ("B02", "B03", "B04", "B08", *chosen) if b in first.band_files)
        grid = _grid_of(first.band_files[reference_band][0], first.band_files[reference_band][1], RasterGrid)
        grid = clip_grid(grid, bbox, "EPSG:4326", f"the tile of {first.name}")
        for index, members in enumerate(groups.values()):
            span = reporter.span(index / len(groups), (index + 1) / len(groups))
            span.report(0.0, f"Reading {members[0].sensing_time:%Y-%m-%d} ({index + 1} of {len(groups)})")
            data, scl = acquisition_vrts(members, chosen, grid, files)
            name = f"{_platform_code(members[0].spacecraft)}_{members[0].tile or 'S2'}_" \
                   f"{members[0].sensing_time:%Y%m%dT%H%M%S}.tif"
            target = folder / name
            if _write_masked(data, scl, target, span) == 0:
                warnings.append(f"{members[0].name} has no clear pixel in the area (clouds or outside the swath); "
                                "no file was written for it.")
                continue
            written.append(str(target))
    except BaseException as exc:
        for path in written:  # all dates or none: a half-downloaded series would look complete
            Path(path).unlink(missing_ok=True)
        if isinstance(exc, RuntimeError):
            raise EngineError(f"Cannot read the images from the server ({_short(exc)}). Check the network "
                              "connection and try again; nothing was written.") from None
        raise
    finally:
        for key, value in previous.items():
            gdal.SetConfigOption(key, value)
        files.remove()
    reporter.report(1.0, f"{len(written)} dates written")
    return written, warnings


def _platform_code(platform: str) -> str:
    match = re.search(r"2([abcd])$", platform.strip().lower())
    return f"S2{match.group(1).upper()}" if match else "S2"


def _grid_of(path: str, resolution: float, grid_type):
    """The 10 m grid of the tile a COG belongs to (its own grid, refined to 10 m for a 20 m band)."""
    from osgeo import gdal

    try:
        dataset = gdal.Open(path)
    except RuntimeError as exc:
        raise EngineError(f"Cannot open the image {path} ({_short(exc)}).") from None
    grid = grid_type.from_dataset(dataset)
    factor = grid.pixel_size[0] / 10.0
    if factor <= 1:
        return grid
    gt = grid.geotransform
    return grid_type(int(round(grid.width * factor)), int(round(grid.height * factor)),
                     (gt[0], gt[1] / factor, gt[2], gt[3], gt[4], gt[5] / factor), grid.crs_wkt)


def _write_masked(data_path: str, scl_path: Optional[str], target: Path, reporter) -> int:
    """Writes the data VRT as a GeoTIFF with invalid SCL classes as NaN, strip by strip; returns clear pixels."""
    from osgeo import gdal

    source = gdal.Open(data_path)
    scl = gdal.Open(scl_path) if scl_path else None
    try:
        return _write_strips(source, scl, target, reporter)
    except _NothingClear:
        return 0  # atomic_output removed the partial file


def _write_strips(source, scl, target: Path, reporter) -> int:
    from osgeo import gdal

    from .data.masks import scl_valid

    width, height, count = source.RasterXSize, source.RasterYSize, source.RasterCount
    clear = 0
    with atomic_output(target) as tmp:
        out = gdal.GetDriverByName("GTiff").Create(str(tmp), width, height, count, gdal.GDT_Float32,
                                                   options=["COMPRESS=DEFLATE", "PREDICTOR=3", "TILED=YES"])
        out.SetGeoTransform(source.GetGeoTransform())
        out.SetProjection(source.GetProjection())
        out.SetMetadata(source.GetMetadata())
        for b in range(1, count + 1):
            band = out.GetRasterBand(b)
            band.SetNoDataValue(math.nan)
            band.SetDescription(source.GetRasterBand(b).GetDescription())
        for y0 in range(0, height, STRIP_ROWS):
            reporter.report(y0 / height)
            rows = min(STRIP_ROWS, height - y0)
            values = source.ReadAsArray(0, y0, width, rows).reshape(count, rows, width)
            valid = np.isfinite(values).all(axis=0)
            if scl is not None:
                valid &= scl_valid(scl.ReadAsArray(0, y0, width, rows))
            values[:, ~valid] = np.nan
            clear += int(valid.sum())
            for b in range(count):
                out.GetRasterBand(b + 1).WriteArray(values[b], 0, y0)
        out.FlushCache()
        out = None
        if clear == 0:
            raise _NothingClear()
    return clear


class _NothingClear(Exception):
    pass


def search_and_download(api: str, bbox: Sequence[float], start: dt.date, end: dt.date, out_folder: str,
                        max_cloud: float = DEFAULT_MAX_CLOUD, collection: Optional[str] = None,
                        bands: Optional[Sequence[str]] = None, list_only: bool = False,
                        progress: Optional[ProgressCallback] = None,
                        cancelled: Optional[CancelledCallback] = None,
                        on_found=None) -> SearchOutcome:
    """Searches, reports what was found (``on_found(list)``), then writes the per-date GeoTIFFs."""
    import time

    started = time.perf_counter()
    reporter = as_reporter(progress, cancelled)
    reporter.report(0.0, "Searching")
    found = search(api, bbox, start, end, max_cloud, collection, bands)
    if not found:
        raise EngineError(f"No Sentinel-2 L2A image was found over {[round(float(v), 5) for v in bbox]} between "
                          f"{start} and {end} with at most {max_cloud:g} % cloud cover. Widen the dates, raise the "
                          "cloud limit, or check that the area (west, south, east, north in degrees) is right.")
    if on_found is not None:
        on_found(found)
    if list_only:
        return SearchOutcome(found, [], [], time.perf_counter() - started)
    written, warnings = download(found, bbox, out_folder, bands, reporter.span(0.05, 1.0).report_callback(),
                                 cancelled)
    return SearchOutcome(found, written, warnings, time.perf_counter() - started)
