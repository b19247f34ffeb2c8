"""Sentinel-2 products (.SAFE folders, .SAFE.zip) in the dialog: choosing them, checking them, their area."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from qgis.core import QgsVectorLayer
from qgis.PyQt.QtWidgets import QFileDialog, QMenu, QPushButton, QWidget

from ..engine.data.sentinel2 import find_products, is_product_path

PRODUCT_FILTER = "Sentinel-2 products (*.zip MTD_MSIL2A.xml MTD_MSIL1C.xml);;All files (*)"


def products_in(paths: list[str]) -> list[str]:
    """Products named by a selection: zips and ``.SAFE`` folders as they are, a product's ``MTD_MSIL*.xml`` as its
    folder, a folder as the products inside it."""
    found: list[str] = []
    for path in (str(p) for p in paths):
        if Path(path).name.upper().startswith("MTD_MSIL"):
            path = str(Path(path).parent)
        if is_product_path(path):
            found.append(path)
        elif Path(path).is_dir():
            found += find_products(path)
    return list(dict.fromkeys(found))


def products_button(parent: QWidget, start_dir, add) -> QPushButton:
    """"Add Sentinel-2 products…": zips / metadata files, or a folder of products; ``add(paths)`` receives them."""
    button = QPushButton("Add Sentinel-2 products…", parent)
    button.setToolTip("L2A or L1C products as downloaded (.SAFE.zip or .SAFE folders), no unzipping: the bands are "
                      "read at 10 m, harmonised across processing baselines, and the SCL masks the clouds.")
    menu = QMenu(button)

    def choose_files() -> None:
        paths, _ = QFileDialog.getOpenFileNames(parent, "Sentinel-2 products", start_dir(), PRODUCT_FILTER)
        if paths:
            add(products_in(paths))

    def choose_folder() -> None:
        folder = QFileDialog.getExistingDirectory(parent, "Folder of Sentinel-2 products", start_dir())
        if folder:
            add(products_in([folder]))

    menu.addAction("Zip files or product metadata…", choose_files)
    menu.addAction("A folder of products…", choose_folder)
    button.setMenu(menu)
    return button


def product_problems(path: str) -> Optional[list[str]]:
    """None when ``path`` is no product (the caller checks it as a raster), else the problems found (may be [])."""
    if not is_product_path(path):
        return None
    if not Path(path).exists():
        return [f"The Sentinel-2 product '{path}' does not exist."]
    return []


def series_bbox(images: list[str], fields: Optional[QgsVectorLayer]) -> tuple[Optional[tuple], Optional[str]]:
    """The area read from products: the extent of the field polygons (in their CRS), else the whole grid."""
    if fields is None or not any(is_product_path(p) for p in images) or not fields.crs().isValid():
        return None, None
    extent = fields.extent()
    if extent.isEmpty():
        return None, None
    return (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum()), fields.crs().toWkt()


def plain_masks(images: list[str], masks: list) -> Optional[list]:
    """The masks of the rows that are no products (products bring their own SCL); None when there are none."""
    if not any(is_product_path(p) for p in images):
        return masks
    kept = [m for p, m in zip(images, masks) if not is_product_path(p)]
    return kept if any(kept) else None
