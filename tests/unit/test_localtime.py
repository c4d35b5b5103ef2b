"""Local Europe/Stockholm date-times of the Cosmic CSV dialect: offsets, DST gap and overlap."""

import datetime as dt

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mvg_sync.ingest import localtime
from mvg_sync.ingest.localtime import (
    ERROR_DATE,
    ERROR_DATETIME,
    ERROR_GAP,
    ERROR_OVERLAP,
    parse_local_date,
    parse_local_datetime,
    to_local_string,
)

UTC = dt.UTC


def _parse(values: list[str | None]) -> pl.DataFrame:
    frame = pl.DataFrame({"raw": values}, schema={"raw": pl.String})
    return frame.select(parse_local_datetime(pl.col("raw")).alias("r")).unnest("r")


@pytest.mark.parametrize(
    ("raw", "utc"),
    [
        ("2026-01-15 10:00", dt.datetime(2026, 1, 15, 9, 0, tzinfo=UTC)),  # CET, +01
        ("2026-07-01 10:00", dt.datetime(2026, 7, 1, 8, 0, tzinfo=UTC)),  # CEST, +02
        ("2026-03-29 01:59", dt.datetime(2026, 3, 29, 0, 59, tzinfo=UTC)),  # before the gap
        ("2026-03-29 03:00", dt.datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),  # after the gap
        ("2026-10-25 01:59", dt.datetime(2026, 10, 24, 23, 59, tzinfo=UTC)),  # before overlap
        ("2026-10-25 03:00", dt.datetime(2026, 10, 25, 2, 0, tzinfo=UTC)),  # after overlap
        (" 2026-12-31 23:59 ", dt.datetime(2026, 12, 31, 22, 59, tzinfo=UTC)),
    ],
)
def test_contract_local_time_offsets(raw, utc):
    assert _parse([raw]).row(0) == (utc, None)


def test_contract_value_dtype_is_utc_microseconds():
    assert _parse(["2026-01-15 10:00"]).schema["value"] == pl.Datetime("us", "UTC")


@pytest.mark.parametrize("raw", ["2026-03-29 02:00", "2026-03-29 02:30", "2026-03-29 02:59"])
def test_contract_dst_gap_is_nonexistent(raw):
    assert _parse([raw]).row(0) == (None, ERROR_GAP)


@pytest.mark.parametrize("raw", ["2026-10-25 02:00", "2026-10-25 02:30", "2026-10-25 02:59"])
def test_contract_dst_overlap_is_ambiguous(raw):
    assert _parse([raw]).row(0) == (None, ERROR_OVERLAP)


@pytest.mark.parametrize(
    "raw",
    [
        "2026-02-30 10:00",
        "2026-13-01 10:00",
        "2026-01-15 25:00",
        "2026-01-15 10:60",
        "2026-1-5 9:00",
        "2026-01-15T10:00",
        "2026-01-15 10:00:00",
        "2026-01-15",
        "garbage",
        "15/01/2026 10:00",
    ],
)
def test_contract_bad_date_time(raw):
    assert _parse([raw]).row(0) == (None, ERROR_DATETIME)


def test_contract_empty_date_time_is_null_without_error():
    expected = pl.DataFrame(
        {"value": [None, None, None], "error": [None, None, None]},
        schema={"value": pl.Datetime("us", "UTC"), "error": pl.String},
    )
    assert_frame_equal(_parse(["", "  ", None]), expected)


def test_contract_mixed_column_keeps_row_order():
    result = _parse(["2026-03-29 02:30", "2026-01-15 10:00", "x", "2026-10-25 02:30", None])
    assert result["error"].to_list() == [ERROR_GAP, None, ERROR_DATETIME, ERROR_OVERLAP, None]
    assert result["value"].to_list()[1] == dt.datetime(2026, 1, 15, 9, tzinfo=UTC)


def test_contract_parse_local_date():
    frame = pl.DataFrame(
        {"raw": ["2024-02-29", "2026-02-29", "2026-13-01", "2026-1-5", "", None, "2026-11-26"]}
    )
    result = frame.select(parse_local_date(pl.col("raw")).alias("r")).unnest("r")
    expected = pl.DataFrame(
        {
            "value": [dt.date(2024, 2, 29), None, None, None, None, None, dt.date(2026, 11, 26)],
            "error": [None, ERROR_DATE, ERROR_DATE, ERROR_DATE, None, None, None],
        },
        schema={"value": pl.Date, "error": pl.String},
    )
    assert_frame_equal(result, expected)


def test_contract_to_local_string_round_trips():
    raws = ["2026-01-15 10:00", "2026-07-01 10:00", "2026-10-25 03:00", "2026-03-29 03:00"]
    parsed = _parse(raws)
    assert parsed.select(to_local_string(pl.col("value"))).to_series().to_list() == raws


def test_contract_fast_table_agrees_with_polars_time_zone_data():
    # Every half hour across the table's years and both of its edges (before 1970, after
    # 2070), checked against Polars' own per-row conversion: same UTC value, same error kind.
    naive = pl.concat(
        [
            pl.datetime_range(dt.date(start, 1, 1), dt.date(end, 1, 1), "30m", eager=True)
            for start, end in [(1968, 1972), (1979, 2032), (2068, 2072)]
        ]
    ).alias("naive")
    frame = pl.DataFrame({"naive": naive}).with_columns(
        raw=pl.col("naive").dt.strftime("%Y-%m-%d %H:%M")
    )
    unique = pl.col("naive").dt.replace_time_zone(
        "Europe/Stockholm", ambiguous="null", non_existent="null"
    )
    earliest = pl.col("naive").dt.replace_time_zone(
        "Europe/Stockholm", ambiguous="earliest", non_existent="null"
    )
    expected = frame.select(
        value=unique.dt.convert_time_zone("UTC"),
        error=pl.when(unique.is_not_null())
        .then(pl.lit(None, dtype=pl.String))
        .when(earliest.is_null())
        .then(pl.lit(ERROR_GAP))
        .otherwise(pl.lit(ERROR_OVERLAP)),
    )
    result = frame.select(parse_local_datetime(pl.col("raw")).alias("r")).unnest("r")
    assert_frame_equal(result, expected)
    # The range really holds transitions of both kinds (the comparison is not vacuous).
    assert result["error"].value_counts().height == 3


def test_contract_fast_table_sampled_by_day_equals_the_table_of_every_hour():
    # Issue 12: the table samples only the hours of days whose midnights differ in offset;
    # every hour of 1970-2070 sampled must give the very same segments.
    sampled = localtime._stockholm_segments()
    hours = pl.datetime_range(localtime._TABLE_FROM, localtime._TABLE_TO, "1h", closed="left", time_unit="us",
                              eager=True)
    every_hour = localtime._segments(localtime._offsets(hours))
    for ours, reference in zip(sampled, every_hour, strict=True):
        assert ours.equals(reference), ours.name
    assert (sampled[1] == localtime._GAP).sum() == (sampled[1] == localtime._OVERLAP).sum() > 80
