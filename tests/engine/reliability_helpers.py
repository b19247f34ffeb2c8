"""Fixtures' building blocks for the reliability tests: small real file systems, damaged and altered copies of rasters."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
from osgeo import gdal


@contextlib.contextmanager
def small_disk(size_kib: int) -> Iterator[Path]:
    """A real tmpfs of ``size_kib`` KiB mounted for the test (root only); unmounted and removed afterwards."""
    import pytest

    mount_point = Path(f"/tmp/cropmapper-disk-{uuid.uuid4().hex[:8]}")
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        mount_point.rmdir()
        pytest.skip(f"cannot mount a small file system here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        import gc

        gc.collect()  # an error kept in a reference cycle may still hold a file open there
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)  # detach now, freed when closed
        with contextlib.suppress(OSError):
            mount_point.rmdir()


def fill(folder: Path, leave_kib: int) -> Path:
    """Writes a filler file so that about ``leave_kib`` KiB stay free on the file system of ``folder``."""
    free = shutil.disk_usage(folder).free
    filler = folder / "filler.bin"
    with open(filler, "wb") as handle:
        handle.write(b"\0" * max(0, free - leave_kib * 1024))
    return filler


def files_under(folder: Path, ignore: tuple[str, ...] = ("filler.bin",)) -> list[str]:
    """Every file and folder under ``folder`` (hidden ones included), relative, but for ``ignore``."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name not in ignore)


def float_copies(images: list[str], folder: Path, extreme: Optional[float] = None, pixels: int = 25) -> list[str]:
    """Float32 copies of the images without a nodata tag; with ``extreme``, ``pixels`` pixels of the first date
    (a 5 x 5 square) hold that value in every band, as a tool writing untagged nodata would leave them."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for n, path in enumerate(images):
        target = folder / Path(path).name
        gdal.Translate(str(target), str(path), outputType=gdal.GDT_Float32, noData="none")
        if extreme is not None and n == 0:
            dataset = gdal.Open(str(target), gdal.GA_Update)
            side = int(round(pixels ** 0.5))
            for b in range(1, dataset.RasterCount + 1):
                dataset.GetRasterBand(b).WriteArray(np.full((side, side), extreme, np.float32), 10, 10)
            dataset = None
        out.append(str(target))
    return out


def truncated_copy(path: str, target: Path, keep: float = 0.5) -> str:
    """A copy of ``path`` cut to ``keep`` of its bytes, as an interrupted download leaves it."""
    data = Path(path).read_bytes()
    target.write_bytes(data[: int(len(data) * keep)])
    return str(target)


def file_state(path: str | os.PathLike) -> tuple[bytes, int]:
    """Content and inode of a file, to show it was not replaced."""
    return Path(path).read_bytes(), os.stat(path).st_ino
