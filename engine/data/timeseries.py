"""Opening a satellite image time series from rasters, lazily, aligned on one grid, read window by window."""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np
from osgeo import gdal

from ..errors import EngineError
from .buffers import block_zeros
from .dates import DateLike, date_from_filename, date_from_metadata, parse_date, parse_user_dates, strip_date
from .grid import RasterGrid
from .masks import cloud_valid, data_valid, scl_valid
from .normalization import EXTREME_STD, plausible_range

gdal.UseExceptions()

LAYOUTS = ("per-date", "per-band", "stack")
STACK_ORDERS = ("date-major", "band-major")

_BAND_TOKEN = re.compile(
    r"(?<![A-Za-z0-9])(B0?\d{1,2}A?|NDVI|EVI2?|NDWI|NDMI|NBR|SAVI|MSAVI2?|GNDVI|NDRE|LAI|FAPAR|VV|VH)(?![A-Za-z0-9])",
    re.IGNORECASE,
)


def canonical_band_name(name: str) -> str:
    """Sentinel-2 band names in one spelling (``b4``, ``B4`` and ``B04`` -> ``B04``; ``b8a`` -> ``B8A``)."""
    text = name.strip()
    match = re.fullmatch(r"[Bb]0?(\d{1,2}|8[Aa])", text)
    if match:
        number = match.group(1).upper()
        return "B8A" if number == "8A" else f"B{int(number):02d}"
    return text.upper() if _BAND_TOKEN.fullmatch(text) else text


def _band_from_filename(path: str) -> Optional[str]:
    match = _BAND_TOKEN.search(Path(path).stem)
    return canonical_band_name(match.group(1)) if match else None


@dataclass
class _Source:
    """One raster, aligned on the reference grid (directly, or through a warped VRT with an alpha band)."""

    path: str
    dataset: gdal.Dataset
    original: gdal.Dataset  # kept referenced: a warped VRT reads from it
    band_count: int
    alpha_band: Optional[int]
    nodata: list[Optional[float]]  # per band (index 0 = band 1)

    def read(self, bands: Sequence[int], x0: int, y0: int, w: int, h: int) -> dict[int, np.ndarray]:
        """The requested bands (1-based; the alpha band included when asked for) of a window inside the grid."""
        try:
            array = self.dataset.ReadAsArray(x0, y0, w, h, band_list=list(bands))
        except RuntimeError as exc:
            array, detail = None, f" ({exc})"
        else:
            detail = ""
        if array is None:
            raise EngineError(f"Cannot read from '{self.path}'{detail}: the file is damaged or incomplete (an "
                              "interrupted download or copy?). Download or export it again.")
        array = np.asarray(array).reshape(len(bands), h, w)
        return {band: array[i] for i, band in enumerate(bands)}


def _open(path: Union[str, os.PathLike], what: str) -> gdal.Dataset:
    path = str(path)
    if not Path(path).exists() and not path.startswith("/vsi"):
        raise EngineError(f"The {what} '{path}' does not exist. Check the path.")
    try:
        dataset = gdal.Open(path)
    except RuntimeError as exc:
        raise EngineError(f"The {what} '{path}' cannot be read as a raster ({exc}). Use a GeoTIFF or another "
                          "raster format GDAL reads.") from None
    if dataset is None or dataset.RasterCount == 0:
        raise EngineError(f"The {what} '{path}' cannot be read as a raster (no raster bands). Use a GeoTIFF or "
                          "another raster format GDAL reads.")
    return dataset


def _require_crs(dataset: gdal.Dataset, path: str) -> None:
    if not dataset.GetProjection():
        raise EngineError(
            f"The raster '{path}' has no coordinate reference system (CRS), so it cannot be placed on a map or "
            "matched with the field polygons. Assign its CRS first (QGIS: Raster > Projections > Assign Projection, "
            "or gdal_edit.py -a_srs EPSG:XXXX)."
        )
    gt = dataset.GetGeoTransform(can_return_null=True)
    if gt is None:
        raise EngineError(f"The raster '{path}' has no georeferencing (geotransform). Georeference it first.")


def _align(dataset: gdal.Dataset, path: str, grid: RasterGrid, resample: str, nodata: Optional[float]) -> _Source:
    """The raster as seen on ``grid``: itself if already on it, else an in-memory warped VRT."""
    _require_crs(dataset, path)
    count = dataset.RasterCount
    band_nodata = [nodata if nodata is not None else dataset.GetRasterBand(b).GetNoDataValue()
                   for b in range(1, count + 1)]
    if RasterGrid.from_dataset(dataset).same_as(grid):
        return _Source(path, dataset, dataset, count, None, band_nodata)
    source_nodata = band_nodata[0] if band_nodata and all(v == band_nodata[0] for v in band_nodata) else None
    options = gdal.WarpOptions(
        format="VRT",
        outputBounds=grid.bounds,
        width=grid.width,
        height=grid.height,
        dstSRS=grid.crs_wkt,
        resampleAlg=resample,
        dstAlpha=True,  # alpha 0 = outside the source raster or nodata there
        srcNodata=source_nodata,
        dstNodata=source_nodata,
    )
    try:
        warped = gdal.Warp("", dataset, options=options)
    except RuntimeError as exc:
        raise EngineError(f"The raster '{path}' cannot be aligned to the reference grid ({exc}).") from None
    return _Source(path, warped, dataset, count, warped.RasterCount, band_nodata)


def grid_coverage(dataset: gdal.Dataset, grid: RasterGrid) -> float:
    """Share (0..1) of ``grid``'s area that the footprint of ``dataset`` covers (in the grid's CRS)."""
    from osgeo import ogr, osr

    def box(xmin: float, ymin: float, xmax: float, ymax: float) -> ogr.Geometry:
        ring = ogr.Geometry(ogr.wkbLinearRing)
        for x, y in ((xmin, ymin), (xmax, ymin), (xmax, ymax), (xmin, ymax), (xmin, ymin)):
            ring.AddPoint_2D(x, y)
        polygon = ogr.Geometry(ogr.wkbPolygon)
        polygon.AddGeometry(ring)
        return polygon

    own = RasterGrid.from_dataset(dataset)
    footprint = box(*own.bounds)
    if own.crs_wkt and grid.crs_wkt:
        source, target = osr.SpatialReference(), osr.SpatialReference()
        source.ImportFromWkt(own.crs_wkt)
        target.ImportFromWkt(grid.crs_wkt)
        if not source.IsSame(target):
            for srs in (source, target):
                srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
            footprint = footprint.Clone()
            footprint.Segmentize(max(own.bounds[2] - own.bounds[0], own.bounds[3] - own.bounds[1]) / 16)
            if footprint.Transform(osr.CoordinateTransformation(source, target)) != 0:
                return 1.0  # cannot tell: the warp will say what it finds
    area = box(*grid.bounds)
    return float(footprint.Intersection(area).GetArea() / area.GetArea()) if area.GetArea() > 0 else 1.0


def _check_masks_cover(dataset: gdal.Dataset, path: str, what: str, grid: RasterGrid) -> None:
    """A mask must cover the images: where it has no pixel, clouds would silently become nodata everywhere."""
    share = grid_coverage(dataset, grid)
    if share < 0.999:
        raise EngineError(
            f"The {what} '{path}' covers only {share:.0%} of the images' extent, so the rest of the map would be "
            f"empty. Give {what}s on the images' grid (or a larger one)."
        )


def _input_warnings(paths: list[str], datasets: list[gdal.Dataset], grid: RasterGrid,
                    timestamps: list[dt.datetime], layout: str) -> list[str]:
    """Dates whose raster misses the grid, and acquisitions given twice."""
    warnings = []
    if layout == "per-date":
        for path, dataset in zip(paths, datasets):
            share = grid_coverage(dataset, grid)
            if share < 0.5:
                warnings.append(f"The image '{path}' covers only {share:.0%} of the grid: that date is nodata "
                                "elsewhere. Check its extent and CRS.")
    counts: dict[dt.datetime, int] = {}
    for time in timestamps:
        counts[time] = counts.get(time, 0) + 1
    twice = sorted(t for t, n in counts.items() if n > 1)
    if twice:
        listed = ", ".join(t.isoformat(sep=" ", timespec="minutes") for t in twice[:5])
        warnings.append(f"{len(twice)} acquisition time(s) occur more than once ({listed}): the same image may have "
                        "been given twice. Both were kept.")
    return warnings


def _dataset_time(dataset: gdal.Dataset, path: str) -> Optional[dt.datetime]:
    """The acquisition time of a single-date raster: metadata, first band, file name, then TIFFTAG_DATETIME."""
    band = dataset.GetRasterBand(1)
    return (
        date_from_metadata(dataset.GetMetadata())
        or date_from_metadata(band.GetMetadata())
        or (parse_date(band.GetDescription()) if dataset.RasterCount == 1 else None)
        or date_from_filename(path)
        or date_from_metadata(dataset.GetMetadata(), fallback=True)
    )


def _band_time(dataset: gdal.Dataset, band_number: int) -> Optional[dt.datetime]:
    """The acquisition time of one band of a multi-date raster: band metadata, then band description."""
    band = dataset.GetRasterBand(band_number)
    return date_from_metadata(band.GetMetadata()) or parse_date(band.GetDescription())


def _descriptions(dataset: gdal.Dataset) -> list[str]:
    return [dataset.GetRasterBand(b).GetDescription().strip() for b in range(1, dataset.RasterCount + 1)]


def _complete_names(names: Sequence[str]) -> bool:
    return all(names) and len(set(names)) == len(names)


@dataclass
class _Layout:
    entries: list[list[tuple[int, int]]]  # per date (input order), per band: (source index, band number)
    times: list[Optional[dt.datetime]]
    band_names: list[str]
    described_by: list[str]  # per date: file (or file:band) the date belongs to, for messages


def _per_date(datasets: list[gdal.Dataset], paths: list[str]) -> _Layout:
    counts = {ds.RasterCount for ds in datasets}
    if len(counts) > 1:
        detail = ", ".join(f"{Path(p).name}: {ds.RasterCount}" for p, ds in zip(paths, datasets))
        raise EngineError(f"With one raster per date, every raster needs the same bands, but the band counts "
                          f"differ ({detail}). Use rasters with the same bands.")
    count = counts.pop()
    names = [[canonical_band_name(d) for d in _descriptions(ds)] for ds in datasets]
    entries: list[list[tuple[int, int]]] = []
    if all(_complete_names(n) for n in names):
        reference = names[0]
        for index, image_names in enumerate(names):
            if set(image_names) != set(reference):
                raise EngineError(
                    f"The raster '{paths[index]}' has bands {image_names}, but '{paths[0]}' has {reference}. "
                    "Every date needs the same bands."
                )
            entries.append([(index, image_names.index(name) + 1) for name in reference])
        band_names = list(reference)
    else:
        entries = [[(index, b) for b in range(1, count + 1)] for index in range(len(datasets))]
        file_bands = {_band_from_filename(p) for p in paths}
        if count == 1 and len(file_bands) == 1 and None not in file_bands:
            band_names = [file_bands.pop()]  # type: ignore[list-item]
        elif _complete_names(names[0]):
            band_names = names[0]
        else:
            band_names = [f"B{b}" for b in range(1, count + 1)]
    times = [_dataset_time(ds, p) for ds, p in zip(datasets, paths)]
    return _Layout(entries, times, band_names, list(paths))


def _per_band(datasets: list[gdal.Dataset], paths: list[str]) -> _Layout:
    counts = {ds.RasterCount for ds in datasets}
    if len(counts) > 1:
        detail = ", ".join(f"{Path(p).name}: {ds.RasterCount}" for p, ds in zip(paths, datasets))
        raise EngineError(f"With one raster per band, every raster needs one band per date and the same number of "
                          f"dates, but the band counts differ ({detail}).")
    count = counts.pop()
    names = []
    for index, path in enumerate(paths):
        name = _band_from_filename(path) or strip_date(Path(path).stem)
        names.append(name or f"B{index + 1}")
    if not _complete_names(names):
        names = [f"B{index + 1}" for index in range(len(paths))]
    entries = [[(index, t + 1) for index in range(len(datasets))] for t in range(count)]
    times = [_band_time(datasets[0], t + 1) for t in range(count)]
    where = [f"{paths[0]} band {t + 1}" for t in range(count)]
    return _Layout(entries, times, names, where)


def _stack(dataset: gdal.Dataset, path: str, order: str, band_names: Optional[Sequence[str]],
           dates: Optional[Sequence[DateLike]]) -> _Layout:
    total = dataset.RasterCount
    band_times = [_band_time(dataset, b) for b in range(1, total + 1)]
    if band_names:
        n_bands = len(band_names)
    elif dates:
        n_bands = total // max(len(dates), 1)
    elif all(band_times):
        n_bands = total // len(set(band_times))
    else:
        raise EngineError(
            f"The stack '{path}' has {total} bands, but neither its band descriptions nor its metadata say which "
            "date each band belongs to. Give the dates (one per date) or the band names (one per band of a date)."
        )
    if n_bands < 1 or total % n_bands:
        raise EngineError(f"The stack '{path}' has {total} bands, which is not a whole number of dates x "
                          f"{n_bands} bands. Check the dates or band names given.")
    n_dates = total // n_bands

    def band_number(t: int, c: int) -> int:
        return (t * n_bands + c if order == "date-major" else c * n_dates + t) + 1

    entries = [[(0, band_number(t, c)) for c in range(n_bands)] for t in range(n_dates)]
    times = [band_times[band_number(t, 0) - 1] for t in range(n_dates)]
    if all(band_times) and any(band_times[b - 1] != times[t] for t, row in enumerate(entries) for _, b in row):
        other = STACK_ORDERS[1 - STACK_ORDERS.index(order)]
        raise EngineError(f"The band dates of the stack '{path}' do not follow the '{order}' order (each date's "
                          f"bands together). Choose the '{other}' stack order.")
    descriptions = _descriptions(dataset)
    names = [canonical_band_name(strip_date(descriptions[band_number(0, c) - 1])) for c in range(n_bands)]
    if not _complete_names(names):
        names = [f"B{c + 1}" for c in range(n_bands)]
    where = [f"{path} band {band_number(t, 0)}" for t in range(n_dates)]
    return _Layout(entries, times, names, where)


def _mask_entries(paths: Sequence[str], what: str, grid: RasterGrid, image_times: list[dt.datetime],
                  sources: list[_Source]) -> list[tuple[int, int]]:
    """One (source index, band) per date of the series, in the images' date order.

    Mask files are matched to the dates by their own acquisition times when every mask has one that matches an
    image; otherwise by position (one band per date, in the order of the images).
    """
    entries: list[tuple[int, int]] = []
    times: list[Optional[dt.datetime]] = []
    for path in paths:
        dataset = _open(path, what)
        _require_crs(dataset, str(path))
        _check_masks_cover(dataset, str(path), what, grid)
        sources.append(_align(dataset, str(path), grid, "near", None))
        for band in range(1, dataset.RasterCount + 1):
            entries.append((len(sources) - 1, band))
            times.append(_dataset_time(dataset, str(path)) if dataset.RasterCount == 1 else _band_time(dataset, band))
    if len(entries) != len(image_times):
        raise EngineError(f"There are {len(entries)} {what}s (bands) for {len(image_times)} dates. Give one "
                          f"{what} per date, in the same order as the images.")
    if all(times) and sorted(times) == sorted(image_times):  # type: ignore[type-var]
        by_time: dict[dt.datetime, list[tuple[int, int]]] = {}
        for entry, time in zip(entries, times):
            by_time.setdefault(time, []).append(entry)  # type: ignore[arg-type]
        return [by_time[time].pop(0) for time in image_times]
    return entries


class TimeSeries:
    """A lazily read image time series on one grid; ``read`` returns one window at a time.

    Dates are sorted by time; two acquisitions on the same day are both kept.
    """

    def __init__(self, grid: RasterGrid, timestamps: list[dt.datetime], band_names: list[str],
                 entries: list[list[tuple[int, int]]], sources: list[_Source],
                 cloud: Optional[list[Optional[tuple[int, int]]]], scl: Optional[list[Optional[tuple[int, int]]]],
                 layout: str, paths: list[str], open_args: dict, warnings: Optional[list[str]] = None,
                 virtual_files=None) -> None:
        self.grid = grid
        self.timestamps = timestamps
        self.dates: list[dt.date] = [t.date() for t in timestamps]
        self.band_names = band_names
        self.layout = layout
        self.paths = paths
        self.aligned_paths = [s.path for s in sources if s.alpha_band is not None]
        self._entries = entries
        self._sources = sources
        self._cloud = cloud
        self._scl = scl
        self._open_args = open_args
        # about the inputs (products skipped or merged, duplicate dates, dates off the grid), for the run's outcome
        self.warnings: list[str] = list(warnings or [])
        self._virtual_files = virtual_files  # in-memory VRTs of Sentinel-2 products, removed by close()
        self._limits: Optional[tuple[np.ndarray, np.ndarray]] = None  # per band: lowest, highest plausible value
        self._extreme = 0
        self._extreme_lock = threading.Lock()

    def __repr__(self) -> str:
        return (f"TimeSeries({len(self.timestamps)} dates {self.dates[0]}..{self.dates[-1]}, "
                f"bands {self.band_names}, {self.grid.width}x{self.grid.height} px)")

    def __reduce__(self):
        # GDAL datasets cannot be pickled; a copy in another process reopens the files.
        return (_reopen, (self._open_args,))

    @property
    def num_dates(self) -> int:
        return len(self.timestamps)

    @property
    def num_bands(self) -> int:
        return len(self.band_names)

    @property
    def has_cloud_masks(self) -> bool:
        return bool(self._cloud or self._scl)

    def exclude_extremes(self, mean: Sequence[float], std: Sequence[float], bands: Optional[Sequence[str]] = None
                         ) -> None:
        """From now on, values far outside these statistics (``plausible_range``) are invalid observations.

        ``mean`` and ``std`` are per band of ``bands`` (default: all bands). ``extreme_observations`` counts them.
        """
        low = np.full(len(self.band_names), -np.inf, np.float64)
        high = np.full(len(self.band_names), np.inf, np.float64)
        for i, m, s in zip(self.band_indices(bands), mean, std):
            low[i], high[i] = plausible_range(float(m), float(s))
        self._limits = (low, high)

    @property
    def extreme_observations(self) -> int:
        """Observations (date, band, pixel) read so far that were invalid for lying far outside the statistics."""
        return self._extreme

    def extreme_warning(self) -> Optional[str]:
        if not self._extreme:
            return None
        return (f"{self._extreme} observation(s) (date x band x pixel) lay more than {EXTREME_STD:g} standard "
                "deviations from their band's mean (such as -3.4e38, the float32 minimum that some tools write "
                "for nodata) and were treated as invalid. If they are nodata, set the rasters' nodata value.")

    def band_indices(self, bands: Optional[Sequence[str]] = None) -> list[int]:
        """Positions of the named bands in ``band_names`` (all bands when None); missing names raise EngineError."""
        if bands is None:
            return list(range(len(self.band_names)))
        lookup = {canonical_band_name(name): i for i, name in enumerate(self.band_names)}
        missing = [name for name in bands if canonical_band_name(name) not in lookup]
        if missing:
            raise EngineError(
                f"The images lack the band(s) {', '.join(missing)} that the model needs. The images have bands "
                f"{', '.join(self.band_names)}. Use images with the model's bands ({', '.join(bands)}), or set the "
                "band names (band descriptions or the band names option) if they are only named differently."
            )
        return [lookup[canonical_band_name(name)] for name in bands]

    def read(self, x0: int, y0: int, w: int, h: int, bands: Optional[Sequence[str]] = None
             ) -> tuple[np.ndarray, np.ndarray]:
        """One window: ``x`` float32 ``(T, C, h, w)`` and ``valid`` bool ``(T, h, w)``.

        Parts of the window outside the raster, nodata, NaN, clouds and invalid SCL classes are invalid, and
        ``x`` is 0 there. ``bands`` selects and orders bands by name.
        """
        if self._sources is None:
            raise EngineError("The time series was closed.")
        channels = self.band_indices(bands)
        n_dates = len(self.timestamps)
        x = block_zeros((n_dates, len(channels), h, w), np.float32)
        valid = block_zeros((n_dates, h, w), bool)
        cx0, cy0, cw, ch = self.grid.clip_window(x0, y0, w, h)
        if cw == 0 or ch == 0:
            return x, valid
        inner_x = x[:, :, cy0 - y0:cy0 - y0 + ch, cx0 - x0:cx0 - x0 + cw]
        inner_valid = np.ones((n_dates, ch, cw), bool)
        window = (cx0, cy0, cw, ch)

        data_requests: dict[int, list[tuple[int, int, int]]] = {}
        for t, bands_of_date in enumerate(self._entries):
            for out_c, c in enumerate(channels):
                source, band = bands_of_date[c]
                data_requests.setdefault(source, []).append((band, t, out_c))
        for source_index, requests in data_requests.items():
            source = self._sources[source_index]
            arrays, alpha = self._read_source(source, [r[0] for r in requests], window)
            for band, t, out_c in requests:
                values = arrays[band]
                ok = data_valid(values, source.nodata[band - 1])
                if alpha is not None:
                    ok &= alpha
                if self._limits is not None:
                    self._drop_extremes(values, ok, channels[out_c])
                inner_valid[t] &= ok
                inner_x[t, out_c] = values
        for entries, check in ((self._cloud, "cloud"), (self._scl, "scl")):
            if not entries:
                continue
            mask_requests: dict[int, list[tuple[int, int]]] = {}
            for t, entry in enumerate(entries):
                if entry is None:  # a date without this kind of mask (a product among plain rasters, or vice versa)
                    continue
                source, band = entry
                mask_requests.setdefault(source, []).append((band, t))
            for source_index, requests in mask_requests.items():
                source = self._sources[source_index]
                arrays, alpha = self._read_source(source, [r[0] for r in requests], window)
                for band, t in requests:
                    values = arrays[band]
                    ok = cloud_valid(values, source.nodata[band - 1]) if check == "cloud" else scl_valid(values)
                    if alpha is not None:
                        ok &= alpha
                    inner_valid[t] &= ok
        inner_x *= inner_valid[:, None]
        inner_x[~np.isfinite(inner_x)] = 0  # NaN * 0 stays NaN
        valid[:, cy0 - y0:cy0 - y0 + ch, cx0 - x0:cx0 - x0 + cw] = inner_valid
        return x, valid

    def _drop_extremes(self, values: np.ndarray, ok: np.ndarray, channel: int) -> None:
        """Marks values outside the plausible range of ``channel`` invalid in ``ok`` (in place) and counts them."""
        low, high = self._limits[0][channel], self._limits[1][channel]
        with np.errstate(invalid="ignore"):
            extreme = ok & ((values < low) | (values > high))
        count = int(extreme.sum())
        if count:
            ok &= ~extreme
            with self._extreme_lock:
                self._extreme += count

    @staticmethod
    def _read_source(source: _Source, bands: list[int], window: tuple[int, int, int, int]
                     ) -> tuple[dict[int, np.ndarray], Optional[np.ndarray]]:
        wanted = sorted(set(bands))
        if source.alpha_band is not None:
            wanted.append(source.alpha_band)
        arrays = source.read(wanted, *window)
        alpha = arrays.pop(source.alpha_band) > 0 if source.alpha_band is not None else None
        return arrays, alpha

    def close(self) -> None:
        """Releases the open files."""
        self._sources = None  # type: ignore[assignment]
        if self._virtual_files is not None:
            self._virtual_files.remove()
            self._virtual_files = None

    def __enter__(self) -> "TimeSeries":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _reopen(kwargs: dict) -> TimeSeries:
    return open_time_series(**kwargs)


def open_time_series(
    images: Union[str, Iterable[str]],
    layout: str = "per-date",
    cloud_masks: Optional[Iterable[str]] = None,
    scl: Optional[Iterable[str]] = None,
    dates: Optional[Sequence[DateLike]] = None,
    band_names: Optional[Sequence[str]] = None,
    reference: Optional[str] = None,
    stack_order: str = "date-major",
    nodata: Optional[float] = None,
    bands: Optional[Sequence[str]] = None,
    bbox: Optional[Sequence[float]] = None,
    bbox_crs: Optional[str] = None,
) -> TimeSeries:
    """Opens a time series (metadata only; pixels are read by ``TimeSeries.read``).

    ``layout``: ``per-date`` (one raster per acquisition, bands inside), ``per-band`` (one raster per band or index,
    one raster band per date) or ``stack`` (one raster of dates x bands in ``stack_order``). Rasters on other grids
    are aligned onto the grid of ``reference`` (default: the first image) with warped VRTs, bilinear for the images
    and nearest for ``cloud_masks`` (non-zero = cloud) and ``scl`` (Sentinel-2 scene classification).
    ``dates`` (one per date, in the images' order) override dates found in metadata or file names.

    Sentinel-2 products (``.SAFE`` folders, ``.SAFE.zip``) may be among the ``per-date`` images: ``bands`` of them
    are read (default ``sentinel2.DEFAULT_BANDS``), harmonised, on a 10 m grid, their SCL masking clouds; masks
    given in ``cloud_masks`` / ``scl`` then belong to the plain rasters (one per plain raster, in order). ``bbox``
    (xmin, ymin, xmax, ymax in ``bbox_crs``, default the grid's CRS) restricts the grid to an area.
    """
    paths = [str(images)] if isinstance(images, (str, os.PathLike)) else [str(p) for p in images]
    cloud_paths = [str(p) for p in cloud_masks] if cloud_masks else []
    scl_paths = [str(p) for p in scl] if scl else []
    open_args = dict(images=paths, layout=layout, cloud_masks=cloud_paths or None, scl=scl_paths or None,
                     dates=list(dates) if dates else None, band_names=list(band_names) if band_names else None,
                     reference=reference, stack_order=stack_order, nodata=nodata,
                     bands=list(bands) if bands else None, bbox=list(bbox) if bbox else None,
                     bbox_crs=bbox_crs)
    if not paths:
        raise EngineError("No images were given. Choose the rasters of the time series.")
    if layout not in LAYOUTS:
        raise EngineError(f"Unknown layout '{layout}'. Use one of: {', '.join(LAYOUTS)}.")
    if stack_order not in STACK_ORDERS:
        raise EngineError(f"Unknown stack order '{stack_order}'. Use one of: {', '.join(STACK_ORDERS)}.")
    if layout == "stack" and len(paths) != 1:
        raise EngineError(f"The 'stack' layout takes one raster holding every date, but {len(paths)} were given. "
                          "Use the 'per-date' layout for one raster per date.")

    prepared = _prepare_products(paths, layout, bands, reference, bbox, bbox_crs)
    try:
        return _open_prepared(prepared, paths, layout, cloud_paths, scl_paths, dates, band_names, reference,
                              stack_order, nodata, bbox, bbox_crs, open_args)
    except BaseException:
        if prepared is not None:
            prepared.files.remove()
        raise


def _prepare_products(paths: list[str], layout: str, bands, reference, bbox, bbox_crs):
    """The Sentinel-2 products among ``paths`` turned into VRTs (``sentinel2.PreparedImages``), None if none."""
    from . import sentinel2

    if not any(sentinel2.is_product_path(p) for p in paths) and not (reference and sentinel2.is_product_path(reference)):
        return None
    if layout != "per-date":
        raise EngineError(f"Sentinel-2 products (.SAFE, .SAFE.zip) hold one date each: use the 'per-date' layout, "
                          f"not '{layout}'.")
    prepared = sentinel2.prepare_images(paths, bands, reference, bbox, bbox_crs)
    if len(prepared.images) < 2:
        prepared.files.remove()
        skipped = "; ".join(prepared.warnings)
        raise EngineError(f"A time series needs at least 2 dates, but only {len(prepared.images)} usable was found"
                          f"{' (' + skipped + ')' if skipped else ''}. Add the other acquisitions.")
    return prepared


def _open_prepared(prepared, paths, layout, cloud_paths, scl_paths, dates, band_names, reference, stack_order,
                   nodata, bbox, bbox_crs, open_args) -> TimeSeries:
    if prepared is not None:
        paths = prepared.images
    datasets = [_open(p, "image") for p in paths]
    for dataset, path in zip(datasets, paths):
        _require_crs(dataset, path)
    if prepared is not None:
        grid = prepared.grid
    elif reference:
        reference_dataset = _open(reference, "reference raster")
        _require_crs(reference_dataset, reference)
        grid = RasterGrid.from_dataset(reference_dataset)
    else:
        grid = RasterGrid.from_dataset(datasets[0])
    if bbox and prepared is None:
        from .sentinel2 import clip_grid

        grid = clip_grid(grid, bbox, bbox_crs, f"'{reference or paths[0]}'")

    if layout == "per-date":
        described = _per_date(datasets, paths)
    elif layout == "per-band":
        described = _per_band(datasets, paths)
    else:
        described = _stack(datasets[0], paths[0], stack_order, band_names, dates)

    n_dates = len(described.entries)
    if dates:
        if len(dates) != n_dates:
            raise EngineError(f"{len(dates)} dates were given for {n_dates} dates in the images. Give one date per "
                              "acquisition, in the order of the images.")
        try:
            times = parse_user_dates(dates)
        except ValueError as exc:
            raise EngineError(f"The given date {exc}.") from None
    else:
        missing = [where for where, time in zip(described.described_by, described.times) if time is None]
        if missing:
            raise EngineError(
                f"No acquisition date was found for {len(missing)} of {n_dates} dates (e.g. '{missing[0]}'). "
                "Put the date in the file names (e.g. S2_20210612.tif, 2021-06-12, or Sentinel-2 product names), "
                "set ACQUISITION_DATE (or ACQUISITION_DATETIME) in the raster metadata, or give the dates "
                "explicitly (one per date, in the order of the images)."
            )
        times = list(described.times)  # type: ignore[arg-type]
    if n_dates < 2:
        hint = ("" if layout != "per-date" else " If this raster holds several dates, choose the 'stack' or "
                "'per-band' layout.")
        raise EngineError(f"A time series needs at least 2 dates, but only {n_dates} was found "
                          f"({described.described_by[0]}). Add the other acquisitions.{hint}")

    names = list(described.band_names)
    if band_names:
        if len(band_names) != len(names):
            raise EngineError(f"{len(band_names)} band names were given, but the images have {len(names)} bands "
                              f"per date ({', '.join(names)}).")
        names = [canonical_band_name(str(n)) for n in band_names]
        if not _complete_names(names):
            raise EngineError(f"The band names {list(band_names)} must be distinct and not empty.")

    sources = [_align(ds, p, grid, "bilinear", nodata) for ds, p in zip(datasets, paths)]
    if prepared is None:
        cloud = _mask_entries(cloud_paths, "cloud mask", grid, times, sources) if cloud_paths else None
        scl_entries = _mask_entries(scl_paths, "SCL raster", grid, times, sources) if scl_paths else None
    else:
        cloud, scl_entries = _product_masks(prepared, cloud_paths, scl_paths, grid, times, sources)

    order = sorted(range(n_dates), key=lambda t: times[t])
    series = TimeSeries(
        grid=grid,
        timestamps=[times[t] for t in order],
        band_names=names,
        entries=[described.entries[t] for t in order],
        sources=sources,
        cloud=[cloud[t] for t in order] if cloud else None,
        scl=[scl_entries[t] for t in order] if scl_entries else None,
        layout=layout,
        paths=list(open_args["images"]),
        open_args=open_args,
        warnings=prepared.warnings if prepared is not None else None,
        virtual_files=prepared.files if prepared is not None else None,
    )
    series.warnings += _input_warnings(paths, datasets, grid, [times[t] for t in order], layout)
    return series


def _product_masks(prepared, cloud_paths: list[str], scl_paths: list[str], grid: RasterGrid,
                   times: list[dt.datetime], sources: list[_Source]):
    """Per date: the products' own SCL; the user's cloud masks / SCL rasters for the plain rasters."""
    plain = [t for t, is_product in enumerate(prepared.is_product) if not is_product]
    # L1C products have no SCL: the user's masks then cover every date
    targets = plain if plain else list(range(len(times)))
    cloud: Optional[list[Optional[tuple[int, int]]]] = None
    if cloud_paths:
        cloud = [None] * len(times)
        for t, entry in zip(targets, _mask_entries(cloud_paths, "cloud mask", grid, [times[t] for t in targets],
                                                   sources)):
            cloud[t] = entry
    scl: list[Optional[tuple[int, int]]] = [None] * len(times)
    if scl_paths:
        for t, entry in zip(targets, _mask_entries(scl_paths, "SCL raster", grid, [times[t] for t in targets],
                                                   sources)):
            scl[t] = entry
    for t, path in enumerate(prepared.product_scl):
        if path is not None:
            sources.append(_align(_open(path, "SCL raster"), path, grid, "near", None))
            scl[t] = (len(sources) - 1, 1)
    return cloud, (scl if any(e is not None for e in scl) else None)


def describe_images(images: Iterable[str], layout: str = "per-date"
                    ) -> list[tuple[str, Optional[dt.date], list[str]]]:
    """For each image: its path, the acquisition date found (None if none) and its band names, for a preview.

    For multi-date rasters (``per-band``, ``stack``) the date is the earliest one found in its bands. A file that
    cannot be read gets ``(path, None, [])``; ``open_time_series`` reports the problem in full.
    """
    from .sentinel2 import describe_product, is_product_path

    described: list[tuple[str, Optional[dt.date], list[str]]] = []
    for path in (str(p) for p in images):
        if is_product_path(path):
            described.append((path, *describe_product(path)))
            continue
        try:
            dataset = _open(path, "image")
        except EngineError:
            described.append((path, None, []))
            continue
        if layout == "per-date":
            time = _dataset_time(dataset, path)
            names = [canonical_band_name(d) for d in _descriptions(dataset)]
            if not _complete_names(names):
                token = _band_from_filename(path) if dataset.RasterCount == 1 else None
                names = [token] if token else [f"B{b}" for b in range(1, dataset.RasterCount + 1)]
        else:
            times = [t for t in (_band_time(dataset, b) for b in range(1, dataset.RasterCount + 1)) if t]
            time = min(times) if times else None
            if layout == "per-band":
                names = [_band_from_filename(path) or strip_date(Path(path).stem) or "B1"]
            else:
                names = [canonical_band_name(strip_date(d)) for d in _descriptions(dataset)]
                names = list(dict.fromkeys(n for n in names if n))
        described.append((path, time.date() if time else None, names))
    return described
