"""Processing algorithm ``cropmapper:search``: Sentinel-2 L2A from a STAC API, only the area, one GeoTIFF per date."""

from __future__ import annotations

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessingException,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingOutputNumber,
    QgsProcessingParameterDateTime,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from . import params
from .base import CropMapperAlgorithm


class SearchAlgorithm(CropMapperAlgorithm):
    STAC = "STAC"
    COLLECTION = "COLLECTION"
    EXTENT = "EXTENT"
    START = "START"
    END = "END"
    MAX_CLOUD = "MAX_CLOUD"
    BANDS = "BANDS"
    OUTPUT_FOLDER = "OUTPUT_FOLDER"
    IMAGES = "IMAGES"
    COUNT = "COUNT"

    def name(self) -> str:
        return "search"

    def displayName(self) -> str:  # noqa: N802
        return "Search Sentinel-2 (STAC)"

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            "Searches a STAC API (Earth Search, Planetary Computer, Copernicus Data Space, or any URL) for "
            "Sentinel-2 L2A images over an extent (e.g. that of the field polygons) and dates, then reads only that "
            "window of each image's cloud-optimised GeoTIFFs over HTTP (no full download). Each date is written "
            "as one GeoTIFF: reflectance x 10000 harmonised across processing baselines, clouds, shadows and snow "
            "(SCL) as nodata. Use the written files as the time series of the other CropMapper algorithms."
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802
        from ..engine.data.sentinel2 import DEFAULT_BANDS
        from ..engine.stac import DEFAULT_MAX_CLOUD, PRESETS

        params.add(self, QgsProcessingParameterString(self.STAC, "STAC API", defaultValue="earth-search"),
                   f"A preset ({', '.join(PRESETS)}) or the URL of a STAC API.")
        params.add(self, params._advanced(QgsProcessingParameterString(self.COLLECTION, "Collection",
                                                                        optional=True)),
                   "The Sentinel-2 L2A collection (default: the preset's, 'sentinel-2-l2a').")
        params.add(self, QgsProcessingParameterExtent(self.EXTENT, "Area"),
                   "The area to read, e.g. the extent of the field polygons layer.")
        params.add(self, QgsProcessingParameterDateTime(self.START, "First date",
                                                        type=QgsProcessingParameterDateTime.Date),
                   "The first acquisition date searched.")
        params.add(self, QgsProcessingParameterDateTime(self.END, "Last date",
                                                        type=QgsProcessingParameterDateTime.Date),
                   "The last acquisition date searched.")
        params.add(self, QgsProcessingParameterNumber(self.MAX_CLOUD, "Maximum cloud cover (%)",
                                                      QgsProcessingParameterNumber.Double,
                                                      defaultValue=DEFAULT_MAX_CLOUD, minValue=0, maxValue=100),
                   "Images with more cloud cover (over the whole tile, as the catalogue says) are left out.")
        params.add(self, params._advanced(QgsProcessingParameterString(
            self.BANDS, "Bands", defaultValue=",".join(DEFAULT_BANDS))),
                   "Comma-separated Sentinel-2 bands; 20 m bands are resampled to 10 m.")
        params.add(self, QgsProcessingParameterFolderDestination(self.OUTPUT_FOLDER, "Output folder"),
                   "Where the per-date GeoTIFFs are written.")
        self.addOutput(QgsProcessingOutputMultipleLayers(self.IMAGES, "Images (one per date)"))
        self.addOutput(QgsProcessingOutputNumber(self.COUNT, "Number of dates written"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from ..engine.stac import search_and_download

        wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
        rect = self.parameterAsExtent(parameters, self.EXTENT, context, wgs84)
        if rect.isEmpty():
            raise QgsProcessingException("Choose the area to search (e.g. the extent of the fields layer).")
        start = self.parameterAsDateTime(parameters, self.START, context).date()
        end = self.parameterAsDateTime(parameters, self.END, context).date()
        if not start.isValid() or not end.isValid():
            raise QgsProcessingException("Choose the first and the last date.")
        folder = self.parameterAsString(parameters, self.OUTPUT_FOLDER, context)
        bands = [b for b in self.parameterAsString(parameters, self.BANDS, context).split(",") if b.strip()]

        def show(found) -> None:
            feedback.pushInfo(f"{len(found)} image(s) found:")
            for image in found:
                feedback.pushInfo(f"  {image.describe()}")

        progress, cancelled = self.callbacks(feedback)
        outcome = self.run_engine(
            lambda: search_and_download(
                self.parameterAsString(parameters, self.STAC, context),
                (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()),
                start.toPyDate(), end.toPyDate(), folder,
                max_cloud=self.parameterAsDouble(parameters, self.MAX_CLOUD, context),
                collection=self.parameterAsString(parameters, self.COLLECTION, context) or None,
                bands=bands or None, progress=progress, cancelled=cancelled, on_found=show),
            feedback,
        )
        for warning in outcome.warnings:
            feedback.reportError(warning, fatalError=False)
        return {self.OUTPUT_FOLDER: folder, self.IMAGES: outcome.written, self.COUNT: len(outcome.written)}
