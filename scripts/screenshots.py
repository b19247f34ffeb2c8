#!/usr/bin/env python3
"""Makes the screenshots of docs/USER_GUIDE.md in a real QGIS window under Xvfb.

1. Runs CropMapper on the Slovenia sample (engine only, a few epochs) into build/screenshots/run.
2. Starts QGIS (``xvfb-run qgis --code scripts/screenshots_qgis.py``) with this checkout as the plugin; the startup
   script fills the Map crops dialog, loads the styled results, grabs the windows into docs/img and quits QGIS.

Run with the venv's Python: ``.venv/bin/python scripts/screenshots.py``.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "slovenia_s2"
WORK = REPO / "build" / "screenshots"
DATES = slice(14, 30)  # 16 dates of the 2016 season of the sample


def compute() -> Path:
    sys.path.insert(0, str(REPO))
    from engine import pipeline

    images = sorted(str(p) for p in (DATA / "ndvi").glob("*.tif"))[DATES]
    masks = sorted(str(p) for p in (DATA / "cloudmask").glob("*.tif"))[DATES]
    run = WORK / "run"
    if not (run / "crop_map.tif").exists():
        series = pipeline.SeriesInput(images=images, cloud_masks=masks)
        labels = pipeline.LabelInput(str(DATA / "lulc_polygons.gpkg"), "LULC_NAME")
        pipeline.map_crops(
            series, labels, str(run), train_options=pipeline.TrainOptions(epochs=3, test_fraction=0.3),
            progress=lambda f, m: print(f"{f:5.1%} {m}", flush=True),
        )
    (WORK / "inputs.pickle").write_bytes(pickle.dumps({"images": images, "masks": masks,
                                                       "polygons": str(DATA / "lulc_polygons.gpkg")}))
    return run


def shoot() -> None:
    plugin_path = REPO / "build" / "pluginpath"
    plugin_path.mkdir(parents=True, exist_ok=True)
    if not (plugin_path / "cropmapper").exists():
        (plugin_path / "cropmapper").symlink_to(REPO, target_is_directory=True)
    with tempfile.TemporaryDirectory() as config:
        env = dict(os.environ)
        env.pop("QT_QPA_PLATFORM", None)
        env.update(
            PYTHONPATH=sysconfig.get_paths()["purelib"], QGIS_PLUGINPATH=str(plugin_path),
            QGIS_CUSTOM_CONFIG_PATH=config, CROPMAPPER_SHOTS=str(WORK), CROPMAPPER_IMG=str(REPO / "docs" / "img"),
        )
        subprocess.run(
            ["xvfb-run", "-a", "-s", "-screen 0 1500x950x24", "qgis", "--nologo", "--noversioncheck",
             "--code", str(REPO / "scripts" / "screenshots_qgis.py")],
            env=env, check=True, timeout=600,
        )


if __name__ == "__main__":
    compute()
    shoot()
    print("\n".join(sorted(str(p) for p in (REPO / "docs" / "img").glob("*.png"))))
