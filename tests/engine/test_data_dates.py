"""Acquisition dates from metadata values and file names."""

import datetime as dt

import pytest

from engine.data.dates import date_from_filename, date_from_metadata, parse_date, parse_user_dates, strip_date


@pytest.mark.parametrize(
    "text, expected",
    [
        ("S2A_MSIL2A_20210612T103031_N0300_R108_T32UNE_20210612T134236.SAFE", dt.datetime(2021, 6, 12, 10, 30, 31)),
        ("T32UNE_20210705T103031_B04_10m.jp2", dt.datetime(2021, 7, 5, 10, 30, 31)),
        ("S2_20151208T101125_NDVI.tif", dt.datetime(2015, 12, 8, 10, 11, 25)),
        ("field_2021-06-12.tif", dt.datetime(2021, 6, 12)),
        ("S2L2A_20201101_monthly.tif", dt.datetime(2020, 11, 1)),
        ("2021-06-12T10:30:31", dt.datetime(2021, 6, 12, 10, 30, 31)),
        ("2021-06-12T10:30:31.024Z", dt.datetime(2021, 6, 12, 10, 30, 31)),
        ("2021:06:12 10:30:31", dt.datetime(2021, 6, 12, 10, 30, 31)),  # TIFFTAG_DATETIME
        ("scene_20211312_then_20210102.tif", dt.datetime(2021, 1, 2)),  # month 13 is not a date: next candidate
    ],
)
def test_parse_date_formats(text, expected):
    assert parse_date(text) == expected


@pytest.mark.parametrize("text", ["B04.tif", "image_123456789.tif", "T32UNE.tif", "", None, "2021-13-45"])
def test_parse_date_none(text):
    assert parse_date(text) is None


def test_parse_date_objects():
    assert parse_date(dt.date(2020, 3, 4)) == dt.datetime(2020, 3, 4)
    assert parse_date(dt.datetime(2020, 3, 4, 5, 6)) == dt.datetime(2020, 3, 4, 5, 6)


def test_metadata_priority_and_fallback():
    metadata = {"TIFFTAG_DATETIME": "2023:01:01 00:00:00", "ACQUISITION_DATE": "2021-06-12"}
    assert date_from_metadata(metadata) == dt.datetime(2021, 6, 12)
    assert date_from_metadata({"TIFFTAG_DATETIME": "2023:01:01 00:00:00"}) is None
    assert date_from_metadata({"TIFFTAG_DATETIME": "2023:01:01 00:00:00"}, fallback=True) == dt.datetime(2023, 1, 1)
    assert date_from_metadata({"acquisition_datetime": "2015-07-11T10:00:08"}) == dt.datetime(2015, 7, 11, 10, 0, 8)


def test_filename_uses_name_not_folders():
    assert date_from_filename("/data/2020-01-01/B04.tif") is None
    assert date_from_filename("/data/x/S2_20200105.tif") == dt.datetime(2020, 1, 5)


def test_strip_date():
    assert strip_date("2021-06-12_B04") == "B04"
    assert strip_date("B8A_20210612") == "B8A"
    assert strip_date("NDVI") == "NDVI"


def test_parse_user_dates():
    assert parse_user_dates(["2021-06-12", dt.date(2021, 7, 1)]) == [dt.datetime(2021, 6, 12), dt.datetime(2021, 7, 1)]
    with pytest.raises(ValueError, match="June"):
        parse_user_dates(["June"])
