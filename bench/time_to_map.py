"""Time to a crop map: the demo generator at 1024 x 1024 px, 10 bands, 24 dates, about 150 fields, and
``pipeline.map_crops`` with its defaults (``lite``, pre-training on, the labelled layer holding 25 % of the fields).

    python bench/time_to_map.py [--json FILE] [--quick] [--size 1024] [--time-budget MINUTES]

Wall time and peak resident memory per stage (pre-train, train, predict, evaluate; told apart by map_crops'
progress spans) and the test mIoU. Peak RSS per stage is sampled from /proc/self/statm every 0.1 s (Linux).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine import pipeline  # noqa: E402
from engine.demo import make_demo_scene  # noqa: E402

# map_crops' progress spans (engine/pipeline.py _map_crops) -> stage
STAGES = ((0.30, "pretrain"), (0.75, "train"), (0.95, "predict"), (1.01, "evaluate"))


class StageMeter:
    """Wall seconds and peak RSS (MiB) per stage, switched by the progress fraction."""

    def __init__(self) -> None:
        self.stage = "prepare"
        self.began = time.perf_counter()
        self.seconds: dict[str, float] = {}
        self.peak: dict[str, float] = {}
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _rss_mib(self) -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self._page / 2**20

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            self.peak[self.stage] = max(self.peak.get(self.stage, 0.0), self._rss_mib())

    def progress(self, fraction: float, message: str) -> None:
        stage = next(name for end, name in STAGES if fraction < end)
        if stage != self.stage:
            self.switch(stage)

    def switch(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[self.stage] = self.seconds.get(self.stage, 0.0) + now - self.began
        self.began, self.stage = now, stage

    def stop(self) -> None:
        self.switch("done")
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="write the results to this JSON file")
    parser.add_argument("--quick", action="store_true", help="a smoke test: 256 x 256 px, 8 dates")
    parser.add_argument("--size", type=int, default=None, help="scene width and height in px (default 1024)")
    parser.add_argument("--dates", type=int, default=None, help="dates (default 24)")
    parser.add_argument("--time-budget", type=float, default=None, help="map_crops time_budget_minutes")
    parser.add_argument("--keep", default=None, help="folder to keep the scene and the outputs in")
    args = parser.parse_args()
    size = args.size or (256 if args.quick else 1024)
    dates = args.dates or (8 if args.quick else 24)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        began = time.perf_counter()
        scene = make_demo_scene(folder / "scene", size=size, dates=dates, label_share=0.25,
                                field_scale=6.0 * size / 1024)
        scene_seconds = time.perf_counter() - began
        from osgeo import ogr

        source = ogr.Open(str(scene.fields))
        fields = source.GetLayerByName("parcels").GetFeatureCount()
        labelled = source.GetLayerByName("labelled").GetFeatureCount()
        source = None
        series = pipeline.SeriesInput(images=[str(p) for p in scene.images],
                                      cloud_masks=[str(p) for p in scene.cloud_masks])
        labels = pipeline.LabelInput(path=str(scene.fields), class_field=scene.class_field, layer="labelled")
        meter = StageMeter()
        started = time.perf_counter()
        outcome = pipeline.map_crops(series, labels, str(folder / "out"), pretrain_options=pipeline.PretrainOptions(),
                                     progress=meter.progress, time_budget_minutes=args.time_budget)
        total = time.perf_counter() - started
        meter.stop()
    result = {
        "command": " ".join(["python"] + sys.argv),
        "setting": {"size": size, "dates": dates, "bands": 10, "fields": fields, "labelled_fields": labelled,
                    "options": "map_crops defaults: lite, pre-training on (PretrainOptions()), TrainOptions()",
                    "time_budget_minutes": args.time_budget},
        "scene_seconds": scene_seconds,
        "total_seconds": total,
        "stage_seconds": meter.seconds,
        "stage_peak_rss_mib": meter.peak,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "test_miou": outcome.report.metrics["miou"] if outcome.report else None,
        "test_overall_accuracy": outcome.report.metrics["overall_accuracy"] if outcome.report else None,
        "train_schedule": outcome.train.schedule if outcome.train else None,
        "time_budget_note": outcome.time_budget_note,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }
    print(f"{size} x {size} px, {dates} dates, {fields} fields ({labelled} labelled): map in {total / 60:.1f} min "
          f"({', '.join(f'{k} {v:.0f} s' for k, v in meter.seconds.items())}), "
          f"peak RSS {result['peak_rss_mib']:.0f} MiB, test mIoU {result['test_miou']:.3f}; load {load_before} -> {result['load_average_after']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
