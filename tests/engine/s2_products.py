"""Sentinel-2 products for the tests, built from the real cut products in ``../shared/data/herault_s2_l2a``.

Variants a user meets: the product zipped as downloaded, re-processed with baseline 04.00 (``BOA_ADD_OFFSET`` -1000
and every DN raised by 1000, so the same ground), complete with granule metadata and 60 m bands, as L1C, in another
UTM zone, with a band file missing. JP2 files are written losslessly with GDAL's JP2OpenJPEG driver.
"""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from osgeo import gdal

gdal.UseExceptions()

PRODUCTS = "herault_s2_l2a/products"
EMPTY_PRODUCT = "S2B_MSIL2A_20180212T104139_N0206_R008_T31TEJ_20180212T124738.SAFE"
JP2_OPTIONS = ["REVERSIBLE=YES", "QUALITY=100"]


def real_products(shared_data: Path) -> list[Path]:
    return sorted((shared_data / PRODUCTS).glob("*.SAFE"))


def band_files(product: Path) -> list[Path]:
    return sorted(product.glob("GRANULE/*/IMG_DATA/**/*.jp2"))


def write_jp2(path: Path, values: np.ndarray, like: gdal.Dataset) -> None:
    """``values`` as a lossless JP2 with the georeferencing of ``like``."""
    mem = gdal.GetDriverByName("MEM").Create("", values.shape[1], values.shape[0], 1, gdal.GDT_UInt16)
    mem.SetGeoTransform(like.GetGeoTransform())
    mem.SetProjection(like.GetProjection())
    mem.GetRasterBand(1).WriteArray(values)
    gdal.GetDriverByName("JP2OpenJPEG").CreateCopy(str(path), mem, options=JP2_OPTIONS)


def rewrite_bands(product: Path, change: Callable[[str, np.ndarray], np.ndarray]) -> None:
    """Rewrites every band file's DNs with ``change(band, values)`` (SCL included; the band name is passed)."""
    for path in band_files(product):
        band = re.search(r"_(B\d\dA?|SCL|B8A)(_\d\dm)?\.jp2$", path.name).group(1)
        dataset = gdal.Open(str(path))
        values = dataset.ReadAsArray()
        new = change(band, values)
        del_path = path.with_suffix(".old.jp2")
        path.rename(del_path)
        write_jp2(path, new, dataset)
        dataset = None
        del_path.unlink()


def copy_product(source: Path, folder: Path, rename: Optional[Callable[[str], str]] = None) -> Path:
    """A copy of a ``.SAFE`` folder in ``folder`` (optionally renamed)."""
    name = rename(source.name) if rename else source.name
    target = folder / name
    shutil.copytree(source, target)
    return target


def set_metadata(product: Path, edit: Callable[[str], str]) -> None:
    mtd = next(product.glob("MTD_MSIL*.xml"))
    mtd.write_text(edit(mtd.read_text(encoding="utf-8")), encoding="utf-8")


def make_baseline_0400(source: Path, folder: Path) -> Path:
    """The product as baseline 04.00+ would ship it: BOA_ADD_OFFSET -1000 per band, every valid DN + 1000."""
    product = copy_product(source, folder, lambda n: re.sub(r"_N\d{4}_", "_N0400_", n))

    def edit(text: str) -> str:
        text = re.sub(r"<PROCESSING_BASELINE>[^<]*<", "<PROCESSING_BASELINE>04.00<", text)
        offsets = "".join(f'<BOA_ADD_OFFSET band_id="{i}">-1000</BOA_ADD_OFFSET>' for i in range(13))
        text, done = re.subn(r"(</\w*QUANTIFICATION_VALUES_LIST>)",
                             rf"\1<BOA_ADD_OFFSET_VALUES_LIST>{offsets}</BOA_ADD_OFFSET_VALUES_LIST>", text, count=1,
                             flags=re.IGNORECASE)
        assert done == 1, "no quantification values list in the metadata"
        return text

    set_metadata(product, edit)
    rewrite_bands(product, lambda band, v: v if band == "SCL" else np.where(v > 0, v + 1000, 0).astype(np.uint16))
    return product


def make_complete(source: Path, folder: Path) -> Path:
    """The product with granule metadata (MTD_TL.xml) and 60 m bands (B01, B09), as complete downloads have."""
    product = copy_product(source, folder)
    granule = next(product.glob("GRANULE/*"))
    (granule / "MTD_TL.xml").write_text("<?xml version='1.0'?><n1:Level-2A_Tile_ID "
                                        "xmlns:n1='https://psd-14.sentinel2.eo.esa.int/PSD/S2_PDI_Level-2A_Tile_"
                                        "Metadata.xsd'/>", encoding="utf-8")
    r60 = granule / "IMG_DATA" / "R60m"
    r60.mkdir()
    b05 = next(granule.glob("IMG_DATA/R20m/*_B05_20m.jp2"))
    source_dataset = gdal.Open(str(b05))
    coarse = gdal.Translate("", source_dataset, format="MEM", xRes=60, yRes=60, resampleAlg="average")
    for band in ("B01", "B09"):
        gdal.GetDriverByName("JP2OpenJPEG").CreateCopy(str(r60 / b05.name.replace("_B05_20m", f"_{band}_60m")),
                                                      coarse, options=JP2_OPTIONS)
    return product


def make_l1c(source: Path, folder: Path) -> Path:
    """An L1C-like product: MTD_MSIL1C.xml with QUANTIFICATION_VALUE and RADIO_ADD_OFFSET, bands in IMG_DATA."""
    product = copy_product(source, folder, lambda n: n.replace("MSIL2A", "MSIL1C"))
    mtd = product / "MTD_MSIL2A.xml"
    text = mtd.read_text(encoding="utf-8")
    granule = next(product.glob("GRANULE/*"))
    listed = []
    for path in band_files(product):
        match = re.search(r"_(B\d\dA?|B8A|SCL)_\d\dm\.jp2$", path.name)
        if match.group(1) == "SCL":
            path.unlink()
            continue
        target = granule / "IMG_DATA" / re.sub(r"^L2A_", "", path.name).replace(path.name[match.end(1):], ".jp2")
        path.rename(target)
        listed.append(f"<IMAGE_FILE>{target.relative_to(product).with_suffix('')}</IMAGE_FILE>")
    offsets = "".join(f'<RADIO_ADD_OFFSET band_id="{i}">-1000</RADIO_ADD_OFFSET>' for i in range(13))
    start = re.search(r"<PRODUCT_START_TIME>[^<]*</PRODUCT_START_TIME>", text).group(0)
    spacecraft = re.search(r"<SPACECRAFT_NAME>[^<]*</SPACECRAFT_NAME>", text).group(0)
    (product / "MTD_MSIL1C.xml").write_text(
        f"<?xml version='1.0'?><n1:Level-1C_User_Product xmlns:n1='https://psd-14.sentinel2.eo.esa.int/PSD/"
        f"User_Product_Level-1C.xsd'><n1:General_Info><Product_Info>{start}"
        f"<PRODUCT_URI>{product.name}</PRODUCT_URI><PROCESSING_BASELINE>04.00</PROCESSING_BASELINE>"
        f"<Datatake>{spacecraft}</Datatake><Product_Organisation><Granule_List><Granule>{''.join(listed)}"
        f"</Granule></Granule_List></Product_Organisation></Product_Info>"
        f"<Product_Image_Characteristics><QUANTIFICATION_VALUE unit='none'>10000</QUANTIFICATION_VALUE>"
        f"<Radiometric_Offset_List>{offsets}</Radiometric_Offset_List></Product_Image_Characteristics>"
        f"</n1:General_Info></n1:Level-1C_User_Product>", encoding="utf-8")
    mtd.unlink()
    rewrite_bands(product, lambda band, v: np.where(v > 0, v + 1000, 0).astype(np.uint16))
    return product


def make_other_zone(source: Path, folder: Path, epsg: int = 32632) -> Path:
    """The product with its band files reprojected to another UTM zone (as the overlapping tile of the next zone)."""
    product = copy_product(source, folder, lambda n: n.replace("_T31TEJ_", "_T32TLP_"))
    for path in band_files(product):
        resolution = 10 if "_10m" in path.name else 20
        warped = gdal.Warp("", str(path), format="MEM", dstSRS=f"EPSG:{epsg}", xRes=resolution, yRes=resolution,
                           resampleAlg="near", srcNodata=0, dstNodata=0, targetAlignedPixels=True)
        path.unlink()
        gdal.GetDriverByName("JP2OpenJPEG").CreateCopy(str(path), warped, options=JP2_OPTIONS)
    return product


def zip_product(product: Path, folder: Path) -> Path:
    """``<name>.SAFE.zip`` holding the ``.SAFE`` folder, as the Copernicus Data Space delivers it."""
    target = folder / f"{product.name}.zip"
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as archive:
        for path in sorted(product.rglob("*")):
            archive.write(path, path.relative_to(product.parent))
    return target
