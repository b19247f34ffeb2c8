"""``python -m engine search``: Sentinel-2 L2A from a STAC API, the window of the fields, one GeoTIFF per date."""

from __future__ import annotations

import argparse
import datetime as dt

from .errors import EngineError

EXAMPLE = ("python -m engine search --stac earth-search --bbox 3.29 43.61 3.33 43.65 --start 2018-01-01 "
           "--end 2018-12-31 --max-cloud 30 --out s2/")
NEXT_STEP = "then: python -m engine train --images s2/*.tif --labels fields.gpkg --class-field crop --out crops.cropmodel"


def add_search_arguments(p: argparse.ArgumentParser) -> None:
    from .stac import DEFAULT_MAX_CLOUD, PRESETS

    p.add_argument("--stac", default="earth-search",
                   help=f"STAC API: a preset ({', '.join(PRESETS)}) or the API's URL (default earth-search)")
    p.add_argument("--collection", default=None, help="collection to search (default: the preset's Sentinel-2 L2A)")
    p.add_argument("--bbox", nargs=4, type=float, required=True, metavar=("WEST", "SOUTH", "EAST", "NORTH"),
                   help="area in degrees (EPSG:4326), e.g. the fields' extent; only this window is read")
    p.add_argument("--start", required=True, metavar="YYYY-MM-DD", help="first acquisition date")
    p.add_argument("--end", required=True, metavar="YYYY-MM-DD", help="last acquisition date")
    p.add_argument("--max-cloud", type=float, default=DEFAULT_MAX_CLOUD,
                   help=f"maximum cloud cover of an image in %% (default {DEFAULT_MAX_CLOUD:g})")
    p.add_argument("--bands", nargs="+", default=None, metavar="BAND",
                   help="bands to read (default: B02 B03 B04 B05 B06 B07 B08 B8A B11 B12)")
    p.add_argument("--list", action="store_true", help="only list what was found, write nothing")
    p.add_argument("--out", default=None, help="folder for the per-date GeoTIFFs (needed unless --list)")


def _date(text: str, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise EngineError(f"The {what} date '{text}' is not a date: write it as YYYY-MM-DD.") from None


def run_search(args, progress) -> dict:
    from .stac import search_and_download

    if not args.list and not args.out:
        raise EngineError("Give --out, the folder for the GeoTIFFs (or --list to only list the images).")

    def show(found) -> None:
        print(f"{len(found)} image(s) found:")
        for image in found:
            print(f"  {image.describe()}")

    outcome = search_and_download(args.stac, args.bbox, _date(args.start, "start"), _date(args.end, "end"),
                                  args.out or "", max_cloud=args.max_cloud, collection=args.collection,
                                  bands=args.bands, list_only=args.list, progress=progress, on_found=show)
    for warning in outcome.warnings:
        print(f"warning: {warning}")
    if outcome.written:
        print(f"{len(outcome.written)} date(s) written to {args.out}; {NEXT_STEP}")
    return {"found": [f.item_id for f in outcome.found], "written": outcome.written, "warnings": outcome.warnings,
            "seconds": outcome.seconds}
