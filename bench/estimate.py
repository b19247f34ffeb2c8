"""The dialog's expected time against a real run: ``engine.estimate.estimate_run`` for a Map crops run on the
Slovenia sample, then that run, timed step by step from its progress messages.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/estimate.py [--dates 20:24] [--pretrain 2] [--epochs 3]

Prints the estimate and the measured seconds per step (pre-training, training with its validation, mapping).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data" / "slovenia_s2"

STEP_OF = {"Pre-training": "pretrain", "Training": "train", "Validating": "train", "Mapping": "predict"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dates", default="20:24", help="slice of the sample's dates, e.g. 20:24")
    parser.add_argument("--pretrain", type=int, default=2, help="pre-training epochs (0: none)")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs")
    args = parser.parse_args()

    from osgeo import gdal

    from engine import pipeline
    from engine.data import RasterGrid, rasterize_fields
    from engine.estimate import estimate_run

    start, stop = (int(v) for v in args.dates.split(":"))
    images = sorted(str(p) for p in (DATA / "ndvi").glob("*.tif"))[start:stop]
    masks = sorted(str(p) for p in (DATA / "cloudmask").glob("*.tif"))[start:stop]
    polygons = str(DATA / "lulc_polygons.gpkg")
    dataset = gdal.Open(images[0])
    fields = rasterize_fields(polygons, RasterGrid.from_dataset(dataset), "LULC_NAME")
    _x0, _y0, w, h = fields.window
    began = time.perf_counter()
    estimate = estimate_run(dataset.RasterCount, len(images), dataset.RasterXSize, dataset.RasterYSize, w * h,
                            len(fields.classes), args.pretrain or None, args.epochs, device="cpu")
    print(f"probe {time.perf_counter() - began:.1f} s; estimate: pretrain {estimate.pretrain:.1f} s, "
          f"train {estimate.train:.1f} s, predict {estimate.predict:.1f} s, total {estimate.total:.1f} s")

    measured: dict[str, float] = {}
    current = {"step": None, "since": time.perf_counter()}

    def progress(_fraction: float, message: str) -> None:
        step = STEP_OF.get(message.split(":")[0].split(" ")[0] if message else "", "other")
        if step != current["step"]:
            now = time.perf_counter()
            if current["step"]:
                measured[current["step"]] = measured.get(current["step"], 0.0) + now - current["since"]
            current.update(step=step, since=now)

    with tempfile.TemporaryDirectory() as out:
        began = time.perf_counter()
        pipeline.map_crops(
            pipeline.SeriesInput(images, cloud_masks=masks), pipeline.LabelInput(polygons, "LULC_NAME"),
            str(Path(out) / "run"), train_options=pipeline.TrainOptions(epochs=args.epochs, device="cpu"),
            pretrain_options=pipeline.PretrainOptions(epochs=args.pretrain, device="cpu") if args.pretrain else None,
            predict_options=pipeline.PredictOptions(device="cpu"), progress=progress,
        )
        total = time.perf_counter() - began
    progress(1.0, "")
    print("measured: " + ", ".join(f"{k} {v:.1f} s" for k, v in measured.items()) + f", total {total:.1f} s "
          f"(estimate / measured = {estimate.total / total:.2f})")


if __name__ == "__main__":
    main()
