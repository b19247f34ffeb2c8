"""Saying so when a map came out empty or mostly empty, and why it may have."""

from __future__ import annotations

from typing import Optional

MOSTLY_EMPTY = 0.5  # share of nodata pixels above which a map is worth a warning


def nodata_warning(result, has_cloud_masks: bool, has_extent: bool) -> Optional[str]:
    """A warning for a ``PredictRasterResult`` whose map is all or mostly nodata; None when it is mostly mapped.

    With an area to map, pixels outside it are nodata on purpose, so only an empty map is reported.
    """
    if result.rank != 0 or not result.pixels:
        return None
    share = 1.0 - result.mapped_pixels / result.pixels
    if share <= (0.0 if has_extent else MOSTLY_EMPTY) or (has_extent and result.mapped_pixels):
        return None
    causes = ["no valid observation on any date (nodata in the images"]
    causes[0] += ", or clouds on every date in the cloud masks)" if has_cloud_masks else ")"
    if has_extent:
        causes.append("or they lie outside the area to map (check that it overlaps the images, in their CRS)")
    what = "The whole map is" if result.mapped_pixels == 0 else f"{share:.0%} of the map is"
    return f"{what} no data ({result.pixels - result.mapped_pixels} of {result.pixels} pixels): those pixels have " \
           f"{' '.join(causes)}. Check the nodata value, the cloud masks and the dates."
