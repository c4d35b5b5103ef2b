"""Cosmic's local Europe/Stockholm date-times and dates to UTC / pl.Date, refusing to guess."""

from __future__ import annotations

import datetime as dt
import functools

import polars as pl

from mvg_sync.timeutil import STOCKHOLM_TZ as STOCKHOLM

UTC = "UTC"

ERROR_DATETIME = "bad date-time"
ERROR_GAP = "nonexistent local time (DST gap)"
ERROR_OVERLAP = "ambiguous local time (DST overlap)"
ERROR_DATE = "bad date"

# chrono's parser alone also takes `2026-1-5 9:00`; the contract says two digits everywhere.
_DATETIME_SHAPE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}$"
_DATE_SHAPE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


# Segment kinds of the local time line.
_OUTSIDE, _NORMAL, _GAP, _OVERLAP = 0, 1, 2, 3
# Years served by the precomputed table; anything else takes Polars' own (slower) conversion.
_TABLE_FROM = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_TABLE_TO = dt.datetime(2070, 1, 1, tzinfo=dt.UTC)


@functools.cache
def _stockholm_segments() -> tuple[pl.Series, pl.Series, pl.Series]:
    """Local time line cut into segments: (start µs, kind, UTC offset µs), sorted by start.

    Derived once from Polars' own time-zone data (so it agrees with `to_local_string`) by
    sampling UTC hours: Stockholm has changed offset only on whole UTC hours since 1970, and
    at most once a day. A per-row `replace_time_zone` costs ~5x a binary search in this table.
    The days whose midnights differ in offset are found first and only their hours sampled
    (issue 12: every hour of the century cost 0.07 CPU-s per process; a test holds the table
    equal to the one of every hour).
    """
    days = _offsets(pl.datetime_range(_TABLE_FROM, _TABLE_TO, "1d", closed="both", time_unit="us", eager=True))
    # each day whose next midnight has another offset, by its 25 hours from midnight to midnight
    hours = (
        days.filter((pl.col("offset_us") != pl.col("offset_us").shift(-1)).fill_null(False))
        .select(utc=pl.datetime_ranges(pl.col("utc"), pl.col("utc").dt.offset_by("1d"), "1h"))
        .explode("utc")
        .get_column("utc")
    )
    first = pl.Series("utc", [_TABLE_FROM], dtype=hours.dtype)
    sample = pl.concat([first, hours]).unique().sort()
    return _segments(_offsets(sample.filter(sample < _TABLE_TO)))


def _offsets(utc: pl.Series) -> pl.DataFrame:
    """Each UTC instant with its epoch and Stockholm's UTC offset then, in µs."""
    return pl.DataFrame({"utc": utc}).with_columns(
        utc_us=pl.col("utc").dt.epoch("us"),
        offset_us=pl.col("utc")
        .dt.convert_time_zone(STOCKHOLM)
        .dt.replace_time_zone(None)
        .dt.epoch("us")
        - pl.col("utc").dt.epoch("us"),
    )


def _segments(hours: pl.DataFrame) -> tuple[pl.Series, pl.Series, pl.Series]:
    """The segments of a sorted sample of UTC hours that holds every hour where the offset changes."""
    changes = hours.filter((pl.col("offset_us") != pl.col("offset_us").shift(1)).fill_null(True))
    starts, kinds, offsets = [-(2**63)], [_OUTSIDE], [0]
    previous = None
    for utc_us, offset in changes.select("utc_us", "offset_us").iter_rows():
        if previous is None:
            starts.append(utc_us + offset)
        elif offset > previous:  # spring forward: these local times never happen
            starts += [utc_us + previous, utc_us + offset]
            kinds.append(_GAP)
        else:  # fall back: these local times happen twice
            starts += [utc_us + offset, utc_us + previous]
            kinds.append(_OVERLAP)
            offsets.append(0)
        if previous is not None and offset > previous:
            offsets.append(0)
        kinds.append(_NORMAL)
        offsets.append(offset)
        previous = offset
    end_local = int(_TABLE_TO.timestamp() * 1_000_000) + previous
    starts.append(end_local)
    kinds.append(_OUTSIDE)
    offsets.append(0)
    return (
        pl.Series("start", starts, dtype=pl.Int64),
        pl.Series("kind", kinds, dtype=pl.Int8),
        pl.Series("offset", offsets, dtype=pl.Int64),
    )


def parse_local_datetime(raw: pl.Expr) -> pl.Expr:
    """Struct `{value: Datetime(us, UTC), error}` from `YYYY-MM-DD HH:MM` Stockholm time.

    A local time in the spring-forward gap or the autumn overlap is an error, never a guess
    (cosmic-extracts.md). Empty or null: both null (required-ness is checked elsewhere).
    """
    f = pl.field
    starts, kinds, offsets = _stockholm_segments()
    staged = (
        pl.struct(text=raw.cast(pl.String).str.strip_chars())
        .struct.with_fields(
            is_empty=f("text").is_null() | (f("text").str.len_bytes() == 0),
            # No parse cache: booking times are mostly distinct, and the cache made it slower.
            naive=pl.when(f("text").str.contains(_DATETIME_SHAPE)).then(
                f("text").str.strptime(
                    pl.Datetime("us"), "%Y-%m-%d %H:%M", strict=False, cache=False
                )
            ),
        )
        .struct.with_fields(local_us=f("naive").dt.epoch("us"))
        .struct.with_fields(
            # A null sorts first and would index -1: keep it null.
            segment=pl.when(f("local_us").is_not_null()).then(
                pl.lit(starts).search_sorted(f("local_us"), side="right") - 1
            )
        )
        .struct.with_fields(
            kind=pl.lit(kinds).gather(f("segment")),
            offset_us=pl.lit(offsets).gather(f("segment")),
        )
        .struct.with_fields(
            # Outside the table (odd years): Polars' own conversion, on those rows only.
            # `ambiguous="null"` leaves gap and overlap null; `earliest` resolves the overlap.
            slow_unique=pl.when(f("kind") == _OUTSIDE)
            .then(f("naive"))
            .dt.replace_time_zone(STOCKHOLM, ambiguous="null", non_existent="null")
            .dt.convert_time_zone(UTC),
            slow_earliest=pl.when(f("kind") == _OUTSIDE)
            .then(f("naive"))
            .dt.replace_time_zone(STOCKHOLM, ambiguous="earliest", non_existent="null"),
        )
        .struct.with_fields(
            value=pl.when(f("kind") == _NORMAL)
            .then((f("local_us") - f("offset_us")).cast(pl.Datetime("us", UTC)))
            .otherwise(f("slow_unique")),
            error=pl.when(f("is_empty"))
            .then(pl.lit(None, dtype=pl.String))
            .when(f("naive").is_null())
            .then(pl.lit(ERROR_DATETIME))
            .when(f("kind") == _GAP)
            .then(pl.lit(ERROR_GAP))
            .when(f("kind") == _OVERLAP)
            .then(pl.lit(ERROR_OVERLAP))
            .when((f("kind") == _OUTSIDE) & f("slow_unique").is_null())
            .then(
                pl.when(f("slow_earliest").is_null())
                .then(pl.lit(ERROR_GAP))
                .otherwise(pl.lit(ERROR_OVERLAP))
            )
            .otherwise(pl.lit(None, dtype=pl.String)),
        )
    )
    return staged.struct.eval(f("value"), f("error"))


def parse_local_date(raw: pl.Expr) -> pl.Expr:
    """Struct `{value: Date, error}` from `YYYY-MM-DD`; impossible dates give `bad date`.

    Empty or null: both null.
    """
    f = pl.field
    staged = (
        pl.struct(text=raw.cast(pl.String).str.strip_chars())
        .struct.with_fields(
            is_empty=f("text").is_null() | (f("text").str.len_bytes() == 0),
            value=pl.when(f("text").str.contains(_DATE_SHAPE)).then(
                f("text").str.to_date("%Y-%m-%d", strict=False)
            ),
        )
        .struct.with_fields(
            error=pl.when(f("is_empty") | f("value").is_not_null())
            .then(pl.lit(None, dtype=pl.String))
            .otherwise(pl.lit(ERROR_DATE))
        )
    )
    return staged.struct.eval(f("value"), f("error"))


def to_local_string(value: pl.Expr) -> pl.Expr:
    """A timezone-aware datetime as `YYYY-MM-DD HH:MM` Stockholm time (to show or send)."""
    return value.dt.convert_time_zone(STOCKHOLM).dt.strftime("%Y-%m-%d %H:%M")
