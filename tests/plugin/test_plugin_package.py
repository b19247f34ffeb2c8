"""`make package`: one top folder cropmapper/, what the plugin needs, nothing else; the extracted ZIP loads."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_package_zip(tmp_path):
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "package_plugin.py"), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    version = next(
        line.split("=", 1)[1].strip() for line in (REPO / "metadata.txt").read_text().splitlines()
        if line.startswith("version=")
    )
    archive_path = tmp_path / f"cropmapper-{version}.zip"
    with zipfile.ZipFile(archive_path) as archive:
        names = archive.namelist()
        archive.extractall(tmp_path / "plugins")
    assert {name.split("/")[0] for name in names} == {"cropmapper"}
    for needed in ("__init__.py", "plugin.py", "metadata.txt", "LICENSE", "resources/icon.svg", "engine/pipeline.py",
                   "processing/provider.py", "processing/mapcrops.py", "ui/installer.py", "docs/USER_GUIDE.md",
                   "docs/img/dialog_run.png"):
        assert f"cropmapper/{needed}" in names, needed
    for name in names:
        parts = name.split("/")
        assert not {"tests", "__pycache__", ".venv", "build", "dist", "python_packages", "bench"} & set(parts), name
        assert not name.endswith((".pyc", ".tif", ".gpkg")), name
        assert not any(part.startswith(".") for part in parts), name

    script = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from qgis.core import QgsApplication; app = QgsApplication([], False); app.initQgis();"
        "import cropmapper; p = cropmapper.classFactory(None); p.initProcessing();"
        "print(cropmapper.__file__);"
        "print(len(QgsApplication.processingRegistry().providerById('cropmapper').algorithms()));"
        "p.unload(); app.exitQgis()"
    )
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    loaded = subprocess.run([sys.executable, "-c", script, str(tmp_path / "plugins")], capture_output=True, text=True,
                            timeout=120, env=env)
    assert loaded.returncode == 0, loaded.stderr
    lines = loaded.stdout.split()
    assert lines[0].startswith(str(tmp_path / "plugins" / "cropmapper"))
    assert lines[1] == "8"
