"""Peak memory of ``predict_raster`` on synthetic rasters of growing size (512^2, 2048^2, 4096^2 pixels).

Each size runs in its own subprocess, which reports its peak resident set size (``ru_maxrss``); the target is the
4096^2 run within 1.2x of the 512^2 run, i.e. memory that does not grow with the raster. The network is an
untrained, slimmed ``lite`` STCLN (widths 8/16, one
Transformer layer): its speed is not the point here.

    .venv/bin/python bench/memory.py [--sizes 512 2048 4096] [--dates 3] [--markdown docs/BENCHMARKS_memory.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

BANDS = ["B02", "B03", "B04", "B08"]
CLASSES = ["winter wheat", "maize", "sugar beet", "grassland", "rapeseed"]


def write_scene(folder: Path, size: int, dates: int) -> list[str]:
    """Per-date uint16 GeoTIFFs (tiled, DEFLATE) of a field-like pattern, written in strips to keep this process small."""
    import numpy as np
    from osgeo import gdal, osr

    gdal.UseExceptions()
    folder.mkdir(parents=True, exist_ok=True)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32631)
    rng = np.random.default_rng(0)
    paths = []
    for t in range(dates):
        date = dt.date(2021, 4, 1) + dt.timedelta(days=40 * t)
        path = folder / f"S2_{date:%Y%m%d}_bench.tif"
        paths.append(str(path))
        if path.exists():
            continue
        tmp = path.with_suffix(".partial.tif")
        ds = gdal.GetDriverByName("GTiff").Create(str(tmp), size, size, len(BANDS), gdal.GDT_UInt16,
                                                  ["TILED=YES", "COMPRESS=DEFLATE"])
        ds.SetGeoTransform((500000.0, 10.0, 0.0, 5700000.0, 0.0, -10.0))
        ds.SetProjection(srs.ExportToWkt())
        for b in range(len(BANDS)):
            ds.GetRasterBand(b + 1).SetDescription(BANDS[b])
            ds.GetRasterBand(b + 1).SetNoDataValue(0)
        strip = 256
        for y in range(0, size, strip):
            h = min(strip, size - y)
            yy, xx = np.mgrid[y : y + h, 0:size]
            field = ((xx // 37) * 7 + (yy // 29) * 13) % 11  # rectangular "fields"
            for b in range(len(BANDS)):
                value = 800 + 250 * field + 300 * b + 200 * t + rng.integers(0, 60, field.shape)
                ds.GetRasterBand(b + 1).WriteArray(value.astype(np.uint16), 0, y)
        ds = None
        os.replace(tmp, path)
    return paths


def child(images: list[str], out: str, tile: int, overlap: int, block: int) -> dict:
    """Runs in the subprocess: maps the scene and reports peak RSS."""
    import numpy as np
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    from engine.bundle import ModelBundle
    from engine.classes import ClassTable
    from engine.data import open_time_series
    from engine.inference import predict_raster
    from engine.model import STCLN, make_config

    torch.manual_seed(0)
    # A slimmed lite network: the pipeline's memory is measured, not the network's speed.
    config = make_config("lite", len(BANDS), len(CLASSES), spatial_channels=(8, 16), d_model=16, n_heads=2,
                         n_layers=1, d_ff=32, sta_channels=4)
    bundle = ModelBundle(config, STCLN(config).state_dict(), BANDS, [2000.0] * 4, [1000.0] * 4,
                         classes=ClassTable.from_names(CLASSES))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with open_time_series(images) as series:
        result = predict_raster(bundle, series, out, out.replace(".tif", "_conf.tif"), tile=tile, overlap=overlap,
                                block=block, batch_size=16, device="cpu", precision="fp32")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "pixels": result.pixels,
        "seconds": round(time.perf_counter() - started, 1),
        "rss_before_mib": round(before / 1024, 1),
        "peak_rss_mib": round(peak / 1024, 1),
        "mapped_pixels": result.mapped_pixels,
        "classes_seen": int(np.count_nonzero(result.class_counts[1:])),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 2048, 4096])
    parser.add_argument("--dates", type=int, default=3)
    parser.add_argument("--tile", type=int, default=32)
    parser.add_argument("--overlap", type=int, default=8)
    parser.add_argument("--block", type=int, default=512)
    parser.add_argument("--work", default=None, help="folder for the synthetic rasters (default: a temporary one)")
    parser.add_argument("--gdal-cache-mb", type=int, default=None,
                        help="GDAL_CACHEMAX for the runs (predict_raster still caps it at its gdal_cache_mb)")
    parser.add_argument("--markdown", default=None, help="write the table to this Markdown file")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        spec = json.loads(args.child)
        print("RESULT " + json.dumps(child(spec["images"], spec["out"], args.tile, args.overlap, args.block)))
        return 0

    work = Path(args.work or tempfile.mkdtemp(prefix="cropmapper-mem-"))
    rows = []
    for size in args.sizes:
        images = write_scene(work / f"scene_{size}", size, args.dates)
        spec = json.dumps({"images": images, "out": str(work / f"map_{size}.tif")})
        env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
        if args.gdal_cache_mb is not None:
            env["GDAL_CACHEMAX"] = str(args.gdal_cache_mb)
        command = [sys.executable, __file__, "--child", spec, "--tile", str(args.tile), "--overlap",
                   str(args.overlap), "--block", str(args.block)]
        proc = subprocess.run(command, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
        row = json.loads(proc.stdout.split("RESULT ", 1)[1])
        row["size"] = size
        rows.append(row)
        print(json.dumps(row), flush=True)
    base = rows[0]["peak_rss_mib"]
    for row in rows:
        row["ratio_to_first"] = round(row["peak_rss_mib"] / base, 3)
    verdict = rows[-1]["ratio_to_first"] <= 1.2
    print(f"largest / smallest peak RSS: {rows[-1]['ratio_to_first']} ({'within' if verdict else 'above'} the 1.2x target)")
    if args.markdown:
        write_markdown(Path(args.markdown), rows, args, verdict)
    return 0


def write_markdown(path: Path, rows: list[dict], args, verdict: bool) -> None:
    import platform

    import torch

    lines = [
        "| raster (px) | pixels | seconds | RSS before mapping (MiB) | peak RSS (MiB) | peak / first |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['size']} x {r['size']} | {r['pixels']:,} | {r['seconds']} | {r['rss_before_mib']} | "
                     f"{r['peak_rss_mib']} | {r['ratio_to_first']} |")
    cache = (f"GDAL_CACHEMAX={args.gdal_cache_mb} MB" if args.gdal_cache_mb is not None
             else "predict_raster's default GDAL cache cap")
    argv, shown = sys.argv[1:], []
    for i, a in enumerate(argv):
        if a == "--work" or (i and argv[i - 1] == "--work") or a.startswith("--markdown") or (
                i and argv[i - 1] == "--markdown"):
            continue
        shown.append(a)
    command = " ".join(["bench/memory.py", *shown, "--markdown", str(path)])
    section = "\n".join([
        f"### {dt.date.today().isoformat()}: {args.dates} dates x {len(BANDS)} bands, tile {args.tile}, overlap "
        f"{args.overlap}, block {args.block}, {cache}",
        "",
        f"Command: `.venv/bin/python {command}`  ",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, CPU, fp32, "
        "untrained slimmed `lite` STCLN (spatial 8/16, d 16, 1 layer).",
        "",
        *lines,
        "",
        f"Target (largest within 1.2x of the smallest): **{'met' if verdict else 'not met'}** "
        f"({rows[-1]['ratio_to_first']}x).",
        "",
    ])
    header = "# Memory of raster mapping (`predict_raster`)\n\n"
    text = path.read_text(encoding="utf-8") if path.exists() else header
    path.write_text(text.rstrip("\n") + "\n\n" + section, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
