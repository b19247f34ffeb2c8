#!/usr/bin/env python3
"""Builds the installable plugin ZIP: dist/cropmapper-<version>.zip with one top folder ``cropmapper/``.

Only what the plugin needs at runtime goes in (LICENSE, metadata.txt, the entry modules, engine/, ui/, processing/,
resources/, the user guide and its pictures); tests, caches, virtual environments, data, build outputs and installed
packages stay out.
Standard library only, so it runs with any Python 3.
"""

from __future__ import annotations

import argparse
import configparser
import re
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOP = "cropmapper"
FILES = ("__init__.py", "plugin.py", "metadata.txt", "LICENSE", "README.md", "docs/USER_GUIDE.md")
FOLDERS = ("engine", "ui", "processing", "resources")
EXCLUDED_PARTS = {"__pycache__", ".pytest_cache", ".mypy_cache", "python_packages", "tests", ".venv", "build", "dist"}
EXCLUDED_SUFFIXES = {".pyc", ".pyo", ".orig", ".rej", ".swp"}


def plugin_version(repo: Path = REPO) -> str:
    """The ``version`` of metadata.txt."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(repo / "metadata.txt", encoding="utf-8")
    return parser["general"]["version"].strip()


def included_files(repo: Path = REPO) -> list[Path]:
    """The files of the package, relative to the repository root, sorted."""
    found = [Path(name) for name in FILES if (repo / name).is_file()]
    for folder in FOLDERS:
        for path in sorted((repo / folder).rglob("*")):
            relative = path.relative_to(repo)
            if not path.is_file() or path.is_symlink():
                continue
            if EXCLUDED_PARTS.intersection(relative.parts) or path.suffix in EXCLUDED_SUFFIXES:
                continue
            if any(part.startswith(".") for part in relative.parts):
                continue
            found.append(relative)
    # The pictures of the user guide (the dialog's Help and Processing's help link open the guide).
    guide_file = repo / "docs" / "USER_GUIDE.md"
    guide = guide_file.read_text(encoding="utf-8") if guide_file.is_file() else ""
    found += sorted({Path("docs") / name for name in re.findall(r"\((img/[^)\s]+\.png)\)", guide)
                     if (repo / "docs" / name).is_file()})
    return sorted(found)


def build(out_dir: Path, repo: Path = REPO) -> Path:
    """Writes the ZIP and returns its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{TOP}-{plugin_version(repo)}.zip"
    tmp = target.with_suffix(".zip.partial")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for relative in included_files(repo):
            archive.write(repo / relative, f"{TOP}/{relative.as_posix()}")
    tmp.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="output folder (default: dist/)")
    args = parser.parse_args(argv)
    target = build(args.out)
    with zipfile.ZipFile(target) as archive:
        count = len(archive.namelist())
    print(f"{target} ({count} files, {target.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
