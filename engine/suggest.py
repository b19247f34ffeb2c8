"""Which fields to label next: parcels (or segments of the map) ranked by uncertainty, spread over classes and space.

Uncertainty sampling as in sits (``sits_uncertainty_sampling``), at the level a user digitises: per candidate
polygon, the class probabilities averaged over its pixels, their normalised entropy as the uncertainty. The ranking
is greedy: each next pick maximises ``uncertainty x class_factor ** (picks of its predicted class so far) x
min(1, distance to the nearest pick / spacing)``, so the list does not fill with one confusing class or one corner.
``spacing`` is half the side of the square each pick would get if the picks tiled the candidates' extent evenly.

Candidates: the polygons of a parcel layer (optionally only those whose class field is empty), or, without one,
segments of the map (connected pixels of one class after removing specks smaller than ``min_segment_pixels``).
Candidates more than half covered by ``exclude`` polygons (fields already labelled) are left out.

The result is a GeoPackage layer ``suggested_fields`` in the images' CRS with ``rank`` (1 = label first),
``crop_class``, ``crop_value``, ``crop_prob``, ``uncertainty``, ``area_ha`` and ``source_fid``.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from .atomic import atomic_output, check_writable
from .errors import EngineError
from .progress import CancelledCallback, ProgressCallback, as_reporter

LAYER_NAME = "suggested_fields"
DEFAULT_COUNT = 20
CLASS_FACTOR = 0.5  # each earlier pick of the same predicted class halves a candidate's score
MIN_SEGMENT_PIXELS = 20


@dataclass
class SuggestOutcome:
    path: str
    layer: str
    suggestions: list[dict]  # rank, source_fid, crop_class, crop_value, crop_prob, uncertainty, area_ha
    candidates: int
    seconds: float


def rank_for_labelling(uncertainty: np.ndarray, predicted: np.ndarray, xy: np.ndarray, count: int,
                       class_factor: float = CLASS_FACTOR, spacing: Optional[float] = None) -> list[int]:
    """Indices of the ``count`` candidates to label first (greedy; see the module docstring)."""
    uncertainty = np.asarray(uncertainty, np.float64)
    predicted = np.asarray(predicted)
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    n = len(uncertainty)
    count = min(int(count), n)
    if count <= 0:
        return []
    if spacing is None:
        span = xy.max(axis=0) - xy.min(axis=0) if n else np.zeros(2)
        extent = float(max(span[0], 1.0) * max(span[1], 1.0))
        spacing = 0.5 * math.sqrt(extent / count)
    spacing = max(float(spacing), 1e-9)
    nearest = np.full(n, np.inf)
    picks_of_class: dict = {}
    chosen: list[int] = []
    available = np.ones(n, bool)
    for _ in range(count):
        class_weight = np.array([class_factor ** picks_of_class.get(c, 0) for c in predicted])
        space_weight = np.minimum(1.0, nearest / spacing)
        # A tiny share of the plain uncertainty breaks ties (e.g. every candidate next to a pick) by uncertainty.
        score = uncertainty * (class_weight * space_weight + 1e-6)
        score[~available] = -np.inf
        best = int(np.argmax(score))
        chosen.append(best)
        available[best] = False
        picks_of_class[predicted[best]] = picks_of_class.get(predicted[best], 0) + 1
        nearest = np.minimum(nearest, np.hypot(*(xy - xy[best]).T))
    return chosen


def suggest_fields(
    model_path: str,
    series,
    out_gpkg: str,
    parcels: Optional[str] = None,
    parcels_layer: Optional[str] = None,
    unlabelled_field: Optional[str] = None,
    exclude: Optional[str] = None,
    exclude_layer: Optional[str] = None,
    count: int = DEFAULT_COUNT,
    options=None,
    min_segment_pixels: int = MIN_SEGMENT_PIXELS,
    progress: Optional[ProgressCallback] = None,
    cancelled: Optional[CancelledCallback] = None,
) -> SuggestOutcome:
    """Writes the ``count`` fields to label next to ``out_gpkg`` (layer ``suggested_fields``); see the module doc.

    ``series``: a ``pipeline.SeriesInput``; ``options``: ``pipeline.PredictOptions`` (tile, device, smoothing, ...).
    """
    from . import pipeline
    from .inference import predict_raster
    from .inference.fields import stats_from_stack
    from .inference.uncertainty import normalised_entropy

    started = time.perf_counter()
    reporter = as_reporter(progress, cancelled)
    if int(count) != count or count < 1:
        raise EngineError(f"The number of fields to suggest must be a whole number of at least 1 (got {count}).")
    out = check_writable(out_gpkg)
    if out.is_dir():
        raise EngineError(f"The output '{out}' is a folder. Give a file name such as '{out / 'suggested_fields.gpkg'}'.")
    options = options or pipeline.PredictOptions()
    bundle = pipeline._load_classifier(model_path)
    work = Path(tempfile.mkdtemp(prefix=".cropmapper-suggest-", dir=str(out.parent)))
    try:
        with pipeline.open_series(series) as ts:
            bundle.check_bands(ts.band_names)
            grid = ts.grid
            run = dict(tile=options.tile, overlap=options.overlap, batch_size=options.batch_size, device=options.device,
                       smoothing=options.smoothing)
            candidates = work / "candidates.gpkg"
            if parcels:
                reporter.report(0.0, "Reading the parcels")
                found = _write_candidates(parcels, parcels_layer, grid, candidates, unlabelled_field, exclude, exclude_layer)
                _no_candidates(found, parcels, unlabelled_field)
                result = predict_raster(bundle, ts, work / "map.tif", extent_mask=str(candidates),
                                        field_vector=str(candidates), parcel_vector=str(candidates), **run,
                                        progress=reporter.span(0.02, 0.9).report_callback(), cancelled=cancelled)
                stats = result.field_stats
            else:
                result = predict_raster(bundle, ts, work / "map.tif", out_probabilities=work / "probs.tif", **run,
                                        progress=reporter.span(0.0, 0.8).report_callback(), cancelled=cancelled)
                reporter.report(0.8, "Cutting the map into segments")
                segments = _segments(result.map_path, work / "segments.gpkg", min_segment_pixels)
                found = _write_candidates(str(segments), None, grid, candidates, None, exclude, exclude_layer)
                _no_candidates(found, None, None)
                stats = stats_from_stack(result.probabilities_path, str(candidates), None,
                                         reporter=reporter.span(0.85, 0.9))
            pixel_area = grid.pixel_area_m2
            geographic = grid.is_geographic
        reporter.report(0.9, "Ranking the candidates")
        mapped = stats.counts[1:] > 0
        if not mapped.any():
            raise EngineError("No candidate parcel has a mapped pixel (all outside the images or under clouds).")
        means = stats.sums[1:] / np.maximum(stats.counts[1:], 1)[:, None]
        info = _candidate_info(candidates)  # fid -> (source_fid, x, y, area m2)
        index = np.flatnonzero(mapped)
        fids = [stats.fids[i] for i in index]
        uncertainty = normalised_entropy(means[index].T)
        predicted = means[index].argmax(axis=1)
        xy = np.array([info[f][1:3] for f in fids])
        picks = rank_for_labelling(uncertainty, predicted, xy, count)
        rows = []
        for rank, i in enumerate(picks, start=1):
            fid = fids[i]
            value = int(predicted[i]) + 1
            area_m2 = info[fid][3] if not geographic else float(stats.counts[1:][index[i]]) * pixel_area
            rows.append({
                "rank": rank, "source_fid": int(info[fid][0]), "crop_class": bundle.classes[value - 1].name,
                "crop_value": value, "crop_prob": float(means[index[i], value - 1]),
                "uncertainty": float(uncertainty[i]), "area_ha": area_m2 / 10_000.0, "fid": fid,
            })
        _write_suggestions(candidates, rows, out)
        reporter.report(1.0, "Suggestions written")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for row in rows:
        row.pop("fid")
    return SuggestOutcome(str(out), LAYER_NAME, rows, int(mapped.sum()), time.perf_counter() - started)


def suggest_unlabelled(model_path: str, series, labels, out_gpkg: str, options=None, count: int = DEFAULT_COUNT,
                       progress: Optional[ProgressCallback] = None,
                       cancelled: Optional[CancelledCallback] = None) -> Optional[SuggestOutcome]:
    """The fields to label next among the polygons of ``labels`` (a ``pipeline.LabelInput``) whose class is empty;
    None when every polygon is labelled."""
    if count_unlabelled(labels.path, labels.layer, labels.class_field) == 0:
        return None
    return suggest_fields(model_path, series, out_gpkg, parcels=labels.path, parcels_layer=labels.layer,
                          unlabelled_field=labels.class_field, count=count, options=options, progress=progress,
                          cancelled=cancelled)


def count_unlabelled(vector: str, layer: Optional[str], class_field: str) -> int:
    """Polygons of the layer whose ``class_field`` is empty (NULL or blank)."""
    from .inference.vectors import open_polygon_layer

    dataset, source = open_polygon_layer(vector, layer, "field")
    index = source.GetLayerDefn().GetFieldIndex(class_field)
    if index < 0:
        return 0
    empty = sum(1 for f in source if not f.IsFieldSetAndNotNull(index) or not str(f.GetField(index)).strip())
    dataset = None
    return empty


def _no_candidates(found: int, parcels: Optional[str], unlabelled_field: Optional[str]) -> None:
    if found:
        return
    if parcels and unlabelled_field:
        raise EngineError(f"Every parcel of '{parcels}' has a value in '{unlabelled_field}' (or is excluded): "
                          "there is no unlabelled parcel to suggest.")
    raise EngineError("No candidate polygon is left to suggest (all are empty or lie in the excluded fields).")


def _srs(wkt: str):
    from osgeo import osr

    srs = osr.SpatialReference()
    srs.ImportFromWkt(wkt)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def _transform_to(layer, target):
    from osgeo import osr

    source = layer.GetSpatialRef()
    if source is None:
        return None
    source = source.Clone()
    source.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return None if source.IsSame(target) else osr.CoordinateTransformation(source, target)


def _write_candidates(vector: str, layer: Optional[str], grid, out: Path, unlabelled_field: Optional[str],
                      exclude: Optional[str], exclude_layer: Optional[str]) -> int:
    """Copies the candidate polygons (reprojected to the grid's CRS) to ``out``; returns how many."""
    from osgeo import ogr

    from .inference.vectors import open_polygon_layer

    target_srs = _srs(grid.crs_wkt)
    dataset, source = open_polygon_layer(vector, layer, "parcel")
    field_index = -1
    if unlabelled_field:
        field_index = source.GetLayerDefn().GetFieldIndex(unlabelled_field)
        if field_index < 0:
            raise EngineError(f"The parcel layer has no field '{unlabelled_field}'.")
    blockers = _exclusion_layer(exclude, exclude_layer, target_srs)
    transform = _transform_to(source, target_srs)
    driver = ogr.GetDriverByName("GPKG")
    out_ds = driver.CreateDataSource(str(out))
    out_layer = out_ds.CreateLayer("candidates", target_srs, ogr.wkbMultiPolygon)
    out_layer.CreateField(ogr.FieldDefn("source_fid", ogr.OFTInteger64))
    definition = out_layer.GetLayerDefn()
    written = 0
    out_layer.StartTransaction()
    for feature in source:
        geometry = feature.GetGeometryRef()
        if geometry is None or geometry.IsEmpty():
            continue
        if field_index >= 0 and feature.IsFieldSetAndNotNull(field_index) and str(feature.GetField(field_index)).strip():
            continue
        geometry = geometry.Clone()
        if transform is not None:
            geometry.Transform(transform)
        if blockers is not None and _covered_share(geometry, blockers) > 0.5:
            continue
        out_feature = ogr.Feature(definition)
        out_feature.SetField("source_fid", feature.GetFID())
        out_feature.SetGeometry(ogr.ForceToMultiPolygon(geometry))
        out_layer.CreateFeature(out_feature)
        written += 1
    out_layer.CommitTransaction()
    out_ds = None
    dataset = None
    return written


def _covered_share(geometry, blockers) -> float:
    """Share of ``geometry``'s area covered by the polygons of ``blockers`` (overlaps among them counted once)."""
    area = geometry.GetArea()
    if area <= 0:
        return 0.0
    blockers.SetSpatialFilter(geometry)
    try:
        covered = None
        for blocker in blockers:
            part = blocker.GetGeometryRef().Intersection(geometry)
            if part is not None and not part.IsEmpty():
                covered = part if covered is None else covered.Union(part)
    finally:
        blockers.SetSpatialFilter(None)
    return 0.0 if covered is None else covered.GetArea() / area


def _exclusion_layer(exclude: Optional[str], layer: Optional[str], target_srs):
    """The polygons to exclude, in memory in the grid's CRS (None without any)."""
    if not exclude:
        return None
    from osgeo import ogr

    from .inference.vectors import open_polygon_layer

    dataset, source = open_polygon_layer(exclude, layer, "labelled fields")
    transform = _transform_to(source, target_srs)
    memory = ogr.GetDriverByName("Memory").CreateDataSource("exclude")
    out = memory.CreateLayer("exclude", target_srs, ogr.wkbMultiPolygon)
    for feature in source:
        geometry = feature.GetGeometryRef()
        if geometry is None or geometry.IsEmpty():
            continue
        geometry = geometry.Clone()
        if transform is not None:
            geometry.Transform(transform)
        out_feature = ogr.Feature(out.GetLayerDefn())
        out_feature.SetGeometry(geometry)
        out.CreateFeature(out_feature)
    out._keep = memory  # the layer lives as long as its data source
    return out


def _segments(map_path: str, out: Path, min_pixels: int) -> Path:
    """Polygons of connected same-class pixels of the map (4-connected), specks below ``min_pixels`` merged away."""
    from osgeo import gdal, ogr

    source = gdal.Open(map_path)
    band = source.GetRasterBand(1)
    memory = gdal.GetDriverByName("MEM").CreateCopy("", source)
    sieved = memory.GetRasterBand(1)
    mask = gdal.GetDriverByName("MEM").Create("", source.RasterXSize, source.RasterYSize, 1, gdal.GDT_Byte)
    mask.GetRasterBand(1).WriteArray((band.ReadAsArray() > 0).astype(np.uint8))
    if min_pixels > 1:
        gdal.SieveFilter(sieved, mask.GetRasterBand(1), sieved, int(min_pixels), 4)
    vectors = ogr.GetDriverByName("GPKG").CreateDataSource(str(out))
    layer = vectors.CreateLayer("segments", source.GetSpatialRef(), ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("class_value", ogr.OFTInteger))
    gdal.Polygonize(sieved, mask.GetRasterBand(1), layer, 0, [])
    vectors = None
    return out


def _candidate_info(candidates: Path) -> dict[int, tuple[int, float, float, float]]:
    from osgeo import ogr

    dataset = ogr.Open(str(candidates))
    layer = dataset.GetLayer(0)
    info = {}
    for feature in layer:
        geometry = feature.GetGeometryRef()
        point = geometry.PointOnSurface()
        info[feature.GetFID()] = (feature.GetField("source_fid"), point.GetX(), point.GetY(), geometry.GetArea())
    return info


def _write_suggestions(candidates: Path, rows: list[dict], out: Path) -> None:
    from osgeo import ogr

    source_ds = ogr.Open(str(candidates))
    source = source_ds.GetLayer(0)
    with atomic_output(out) as tmp:
        target_ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(tmp))
        if target_ds is None:
            raise EngineError(f"Cannot create the GeoPackage '{out}'. Check the folder.")
        target = target_ds.CreateLayer(LAYER_NAME, source.GetSpatialRef(), ogr.wkbMultiPolygon, ["GEOMETRY_NAME=geom"])
        for name, kind in (("rank", ogr.OFTInteger), ("crop_class", ogr.OFTString), ("crop_value", ogr.OFTInteger),
                           ("crop_prob", ogr.OFTReal), ("uncertainty", ogr.OFTReal), ("area_ha", ogr.OFTReal),
                           ("source_fid", ogr.OFTInteger64)):
            target.CreateField(ogr.FieldDefn(name, kind))
        target.StartTransaction()
        for row in rows:
            feature = ogr.Feature(target.GetLayerDefn())
            for key in ("rank", "crop_class", "crop_value", "crop_prob", "uncertainty", "area_ha", "source_fid"):
                feature.SetField(key, row[key])
            candidate = source.GetFeature(row["fid"])  # kept in a name: its geometry dies with it
            feature.SetGeometry(candidate.GetGeometryRef())
            if target.CreateFeature(feature) != 0:
                raise EngineError(f"Cannot write the suggestions to '{out}'. Check the free disk space.")
        target.CommitTransaction()
        target_ds = None
    source_ds = None
