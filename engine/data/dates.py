"""Acquisition dates from text: GDAL metadata values, band descriptions and file names. No GDAL needed here."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Iterable, Optional, Union

DateLike = Union[str, dt.date, dt.datetime]

# Tried in order; the first pattern that yields a real calendar date wins.
_PATTERNS: tuple[re.Pattern, ...] = (
    # 2021-06-12T10:30:31, 2021-06-12 10:30:31, 2021:06:12 10:30:31 (TIFFTAG_DATETIME)
    re.compile(r"(?<!\d)(\d{4})[-:](\d{2})[-:](\d{2})[T ](\d{2}):(\d{2}):(\d{2})"),
    # 20210612T103031 (Sentinel-2 product, granule and tile file names)
    re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(?!\d)"),
    # 2021-06-12, 2021_06_12, 2021.06.12
    re.compile(r"(?<!\d)(\d{4})[-_.](\d{2})[-_.](\d{2})(?!\d)"),
    # 20210612
    re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})(?!\d)"),
)

# Dataset metadata keys holding the acquisition time, best first. TIFFTAG_DATETIME is often the file's creation
# time, so it is only a last resort (after the file name).
METADATA_KEYS: tuple[str, ...] = (
    "ACQUISITION_DATETIME",
    "ACQUISITION_DATE",
    "SENSING_TIME",
    "SENSING_DATE",
    "DATATAKE_1_DATATAKE_SENSING_START",
    "PRODUCT_START_TIME",
    "DATE_ACQUIRED",
    "DATETIME",
    "DATE",
)
FALLBACK_METADATA_KEYS: tuple[str, ...] = ("TIFFTAG_DATETIME",)


def parse_date(text: Optional[DateLike]) -> Optional[dt.datetime]:
    """The first acquisition date/time found in ``text`` (or the value itself if a date), else None.

    Understands ISO date-times, ``YYYYMMDDTHHMMSS`` (Sentinel-2 names), ``YYYY-MM-DD`` and ``YYYYMMDD``.
    """
    if text is None:
        return None
    if isinstance(text, dt.datetime):
        return text.replace(tzinfo=None)
    if isinstance(text, dt.date):
        return dt.datetime(text.year, text.month, text.day)
    for pattern in _PATTERNS:
        for match in pattern.finditer(str(text)):
            parts = [int(p) for p in match.groups()]
            if not 1950 <= parts[0] <= 2200:
                continue
            try:
                return dt.datetime(*parts)
            except ValueError:
                continue
    return None


def strip_date(text: str) -> str:
    """``text`` without its date token and the separators around it (``'2021-06-12_B04'`` -> ``'B04'``)."""
    for pattern in _PATTERNS:
        match = pattern.search(text)
        if match and parse_date(match.group(0)) is not None:
            text = text[: match.start()] + " " + text[match.end():]
            break
    return re.sub(r"^[\s_\-.:]+|[\s_\-.:]+$", "", re.sub(r"[\s_\-.:]{2,}", "_", text))


def date_from_metadata(metadata: dict[str, str], fallback: bool = False) -> Optional[dt.datetime]:
    """The acquisition time in a GDAL metadata dictionary (keys compared case-insensitively)."""
    upper = {str(k).upper(): v for k, v in (metadata or {}).items()}
    for key in FALLBACK_METADATA_KEYS if fallback else METADATA_KEYS:
        found = parse_date(upper.get(key))
        if found is not None:
            return found
    return None


def date_from_filename(path: str) -> Optional[dt.datetime]:
    """The acquisition time in a file name (the name only, not its folders)."""
    return parse_date(Path(path).name)


def parse_user_dates(values: Iterable[DateLike]) -> list[dt.datetime]:
    """The user's list of dates, each parsed; raises ``ValueError`` naming the first one that is not a date."""
    parsed = []
    for value in values:
        found = parse_date(value)
        if found is None:
            raise ValueError(f"'{value}' is not a date (use YYYY-MM-DD)")
        parsed.append(found)
    return parsed
