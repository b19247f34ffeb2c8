"""A real STAC API (``rustac serve``, in-memory backend) over items built from the Herault products, with their
bands as cloud-optimised GeoTIFFs served by a local HTTP server that answers range requests (GDAL's /vsicurl/
needs them; python's http.server does not)."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Iterator

from osgeo import gdal, osr

gdal.UseExceptions()

BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12", "SCL")
COMMON_NAMES = {"B02": "blue", "B03": "green", "B04": "red", "B05": "rededge1", "B06": "rededge2",
                "B07": "rededge3", "B08": "nir", "B8A": "nir08", "B11": "swir16", "B12": "swir22", "SCL": "scl"}


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with ``Range: bytes=a-b`` answered by 206 Partial Content."""

    def log_message(self, *args) -> None:  # quiet
        pass

    def send_head(self):
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        path = self.translate_path(self.path)
        if not match or not os.path.isfile(path):
            return super().send_head()
        size = os.path.getsize(path)
        start = int(match.group(1))
        end = min(int(match.group(2)) if match.group(2) else size - 1, size - 1)
        if start >= size:
            self.send_error(416)
            return None
        handle = open(path, "rb")  # noqa: SIM115 - closed by copyfile's caller
        handle.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", "image/tiff")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self._remaining = end - start + 1
        return handle

    def copyfile(self, source, outputfile) -> None:
        remaining = getattr(self, "_remaining", None)
        if remaining is None:
            return super().copyfile(source, outputfile)
        outputfile.write(source.read(remaining))
        self._remaining = None


class RefusingHandler(http.server.BaseHTTPRequestHandler):
    """A server that answers every request with 403 Forbidden."""

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        body = b'{"code": "Forbidden", "description": "no access"}'
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def http_server(handler, folder: Path | None = None) -> Iterator[str]:
    """A threaded HTTP server on localhost; yields its base URL."""
    factory = (lambda *a, **k: handler(*a, directory=str(folder), **k)) if folder else handler
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), factory)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def make_cogs(product: Path, folder: Path) -> dict[str, Path]:
    """The product's band files as COGs in ``folder / <product name>``."""
    target = folder / product.stem
    target.mkdir(parents=True)
    cogs = {}
    for band in BANDS:
        source = next(product.glob(f"GRANULE/*/IMG_DATA/R*m/*_{band}_*m.jp2"))
        cogs[band] = target / f"{band}.tif"
        gdal.Translate(str(cogs[band]), str(source), format="COG", creationOptions=["BLOCKSIZE=64"])
    return cogs


def item_for(product: Path, cogs: dict[str, Path], base_url: str, root: Path, baseline_0400: bool = False) -> dict:
    """A STAC item as Earth Search describes Sentinel-2 L2A (common-name asset keys, raster:bands scale/offset)."""
    name = product.name
    time_match = re.search(r"_(\d{8}T\d{6})_", name)
    stamp = time.strptime(time_match.group(1), "%Y%m%dT%H%M%S")
    dataset = gdal.Open(str(cogs["B02"]))
    gt, width, height = dataset.GetGeoTransform(), dataset.RasterXSize, dataset.RasterYSize
    utm = osr.SpatialReference()
    utm.ImportFromWkt(dataset.GetProjection())
    wgs84 = osr.SpatialReference()
    wgs84.ImportFromEPSG(4326)
    wgs84.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    west, south, east, north = osr.CoordinateTransformation(utm, wgs84).TransformBounds(
        gt[0], gt[3] + height * gt[5], gt[0] + width * gt[1], gt[3], 21)
    assets = {}
    for band, path in cogs.items():
        asset = {"href": f"{base_url}/{path.relative_to(root).as_posix()}",
                 "type": "image/tiff; application=geotiff; profile=cloud-optimized", "roles": ["data"]}
        if band != "SCL":
            asset["raster:bands"] = [{"nodata": 0, "data_type": "uint16", "scale": 0.0001,
                                      "offset": -0.1 if baseline_0400 else 0.0}]
        assets[COMMON_NAMES[band]] = asset
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": product.stem, "collection": "sentinel-2-l2a",
        "bbox": [west, south, east, north],
        "geometry": {"type": "Polygon", "coordinates": [[[west, south], [east, south], [east, north],
                                                         [west, north], [west, south]]]},
        "properties": {"datetime": time.strftime("%Y-%m-%dT%H:%M:%SZ", stamp), "platform": name[:3].lower().replace(
            "s2", "sentinel-2"), "eo:cloud_cover": 10.0, "s2:mgrs_tile": "31TEJ", "sat:relative_orbit": 8,
            "s2:processing_baseline": "05.00" if baseline_0400 else name.split("_")[3][1:3] + "." + name.split("_")[3][3:]},
        "assets": assets, "links": [],
        "stac_extensions": ["https://stac-extensions.github.io/raster/v1.1.0/schema.json"],
    }


@contextlib.contextmanager
def stac_api(items: list[dict], folder: Path) -> Iterator[str]:
    """``rustac serve`` on localhost with ``items`` loaded; yields the API URL."""
    path = folder / "items.json"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": items}), encoding="utf-8")
    rustac = shutil.which("rustac") or str(Path(sys.executable).parent / "rustac")
    port = free_port()
    address = f"127.0.0.1:{port}"
    process = subprocess.Popen([rustac, "serve", "--addr", address, "--create-collections", str(path)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://{address}"
    try:
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/collections", timeout=2) as response:
                    if response.status == 200 and b"sentinel-2-l2a" in response.read():
                        break
            except OSError:
                pass
            if process.poll() is not None or time.time() > deadline:
                output = process.stdout.read().decode(errors="replace") if process.stdout else ""
                raise RuntimeError(f"rustac serve did not start: {output[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
