"""The layering rule of DESIGN.md: the engine never imports QGIS or PyQt, and imports itself only relatively."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[2] / "engine"


def _imports(path: Path) -> list[tuple[str, int]]:
    """(module, level) of every import statement in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.module or "", node.level))
    return found


def test_engine_sources_import_neither_qgis_nor_qt_nor_themselves_absolutely():
    offenders = []
    for path in ENGINE.rglob("*.py"):
        for module, level in _imports(path):
            top = module.split(".")[0]
            if level == 0 and top in {"qgis", "PyQt5", "PyQt6", "qgis_process", "engine", "cropmapper"}:
                offenders.append(f"{path.relative_to(ENGINE.parent)}: import {module}")
    assert not offenders, "\n".join(offenders)


def test_whole_engine_loads_without_qgis():
    """Importing every engine module in a fresh interpreter loads no QGIS or Qt module."""
    modules = sorted(
        ".".join(p.relative_to(ENGINE.parent).with_suffix("").parts)
        for p in ENGINE.rglob("*.py")
        if p.name != "__main__.py"
    )
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name.removesuffix('.__init__'))\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('qgis', 'PyQt5', 'sip'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ENGINE.parent, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
