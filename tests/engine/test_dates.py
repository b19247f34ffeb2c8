"""Date positions for the date encoding."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from engine.model import date_positions, season_start_for


def test_same_day_acquisitions_are_both_kept():
    dates = [dt.date(2021, 3, 1), dt.date(2021, 3, 11), dt.date(2021, 3, 11), dt.date(2021, 4, 1)]
    pos = date_positions(dates)
    assert pos.dtype == np.float32 and pos.shape == (4,)
    np.testing.assert_array_equal(pos, [0, 10, 10, 31])


def test_season_start_keeps_positions_when_first_date_is_dropped():
    dates = [dt.date(2021, 3, 5), dt.date(2021, 3, 15), dt.date(2021, 5, 4)]
    start = season_start_for(dates)
    assert start == (3, 5)
    full = date_positions(dates, season_start=start)
    np.testing.assert_array_equal(date_positions(dates[1:], season_start=start), full[1:])
    np.testing.assert_array_equal(full, [0, 10, 60])


def test_season_start_after_first_date_counts_from_previous_year():
    dates = [dt.date(2021, 1, 10), dt.date(2021, 2, 1)]
    np.testing.assert_array_equal(date_positions(dates, season_start=(11, 1)), [70, 92])
    # a leap-day season start in a non-leap year falls back to 28 February
    np.testing.assert_array_equal(date_positions([dt.date(2021, 3, 1)], season_start=(2, 29)), [1])


def test_index_mode_and_errors():
    dates = [dt.date(2021, 3, 1), dt.date(2021, 3, 1), dt.date(2021, 9, 1)]
    np.testing.assert_array_equal(date_positions(dates, mode="index"), [0, 1, 2])
    with pytest.raises(ValueError):
        date_positions(dates, mode="doy")
    with pytest.raises(ValueError):
        season_start_for([])
