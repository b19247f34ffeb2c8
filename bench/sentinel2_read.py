"""Reading the Herault series three ways: the .SAFE folders, the same products zipped, the prepared GeoTIFFs + SCL.

Prints the median of ``--repeats`` runs of open + read of the whole 232 x 353 px window (10 bands, 9 dates), and
checks that the three give the same arrays. Usage: python bench/sentinel2_read.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import glob
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests" / "engine")]

from engine.data.timeseries import open_time_series  # noqa: E402
from s2_products import real_products, zip_product  # noqa: E402


def timed(images, **kwargs):
    started = time.perf_counter()
    with open_time_series(images, **kwargs) as ts:
        x, valid = ts.read(0, 0, ts.grid.width, ts.grid.height)
    return time.perf_counter() - started, x, valid


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    data = REPO.parent / "shared" / "data"
    products = [str(p) for p in real_products(data)]
    folder = data / "herault_s2_l2a" / "geotiff"
    with tempfile.TemporaryDirectory() as tmp:
        zips = [str(zip_product(Path(p), Path(tmp))) for p in products]
        ways = {
            "SAFE folders": (products, {}),
            "SAFE zips": (zips, {}),
            "GeoTIFF + SCL": (sorted(glob.glob(str(folder / "*.tif"))),
                              {"scl": sorted(glob.glob(str(folder / "scl" / "*.tif")))}),
        }
        results = {name: [timed(images, **kw) for _ in range(args.repeats)] for name, (images, kw) in ways.items()}
    reference = results["GeoTIFF + SCL"][0]
    for name, runs in results.items():
        same = np.array_equal(runs[0][1], reference[1]) and np.array_equal(runs[0][2], reference[2])
        print(f"{name:14s} median {statistics.median(r[0] for r in runs):.3f} s over {len(runs)} runs; "
              f"same arrays as the GeoTIFFs: {same}")


if __name__ == "__main__":
    main()
