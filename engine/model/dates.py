"""Positions of acquisition dates for the sinusoidal date encoding."""

from __future__ import annotations

import datetime as _dt
from typing import Sequence

import numpy as np


def season_start_for(dates: Sequence[_dt.date]) -> tuple[int, int]:
    """The season start stored in a model file: month and day of the first acquisition."""
    if not len(dates):
        raise ValueError("no dates given")
    first = min(_as_date(d) for d in dates)
    return first.month, first.day


def _as_date(d: _dt.date) -> _dt.date:
    return d.date() if isinstance(d, _dt.datetime) else d


def _season_anchor(first: _dt.date, season_start: tuple[int, int]) -> _dt.date:
    """The latest occurrence of ``season_start`` on or before ``first`` (29 Feb falls back to 28 Feb)."""
    month, day = season_start
    for year in (first.year, first.year - 1):
        try:
            anchor = _dt.date(year, month, day)
        except ValueError:
            anchor = _dt.date(year, month, 28)
        if anchor <= first:
            return anchor
    raise AssertionError("unreachable")


def date_positions(
    dates: Sequence[_dt.date],
    season_start: tuple[int, int] | None = None,
    mode: str = "date",
) -> np.ndarray:
    """Positions (T,) float32 of sorted acquisition ``dates`` (repeats allowed, each kept).

    ``date``: days since the latest ``season_start`` (month, day) on or before the first date (default: the first
    date itself), so dropping a date never shifts the others. ``index``: 0..T-1, the authors' acquisition index.
    """
    if mode == "index":
        return np.arange(len(dates), dtype=np.float32)
    if mode != "date":
        raise ValueError(f"mode must be 'date' or 'index', not {mode!r}")
    if not len(dates):
        return np.zeros(0, dtype=np.float32)
    days = [_as_date(d) for d in dates]
    anchor = _season_anchor(min(days), season_start or season_start_for(days))
    return np.array([(d - anchor).days for d in days], dtype=np.float32)
