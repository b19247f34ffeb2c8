"""The help of each option, as Processing shows it, for the dialog's tooltips: read from the *Map crops*
algorithm's parameter definitions, so that the text is written once (in ``processing/``)."""

from __future__ import annotations

from functools import lru_cache

GUIDE = "docs/USER_GUIDE.md"  # the user guide, shipped inside the plugin folder


@lru_cache(maxsize=1)
def processing_help() -> dict[str, str]:
    """Parameter name -> help text of ``cropmapper:mapcrops``."""
    from ..processing.mapcrops import MapCropsAlgorithm

    algorithm = MapCropsAlgorithm()
    algorithm.initAlgorithm()
    return {definition.name(): definition.help() for definition in algorithm.parameterDefinitions()}


def guide_path() -> str:
    """The user guide's file in the plugin folder."""
    from pathlib import Path

    return str(Path(__file__).resolve().parent.parent / GUIDE)
