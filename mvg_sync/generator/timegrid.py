"""Local wall-clock arithmetic for the generator: minutes and days since 1970-01-01, Stockholm time."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import polars as pl

from mvg_sync.timeutil import STOCKHOLM

EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
MINUTES_PER_DAY = 1440
# Generated clock times stay inside 07:00-19:59: no DST gap (02:00-03:00) or fold is ever hit.
FIRST_MINUTE = 7 * 60
LAST_MINUTE = 19 * 60 + 59


def as_local(value: datetime) -> datetime:
    """The aware datetime in Europe/Stockholm; a naive one is refused."""
    if value.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    return value.astimezone(STOCKHOLM)


def day_number(value: date) -> int:
    """Days since 1970-01-01."""
    return value.toordinal() - EPOCH_ORDINAL


def from_day_number(days: int) -> date:
    return date.fromordinal(int(days) + EPOCH_ORDINAL)


def local_minute(value: datetime) -> int:
    """Minutes since 1970-01-01 00:00 on the Stockholm wall clock (seconds dropped)."""
    local = as_local(value)
    return day_number(local.date()) * MINUTES_PER_DAY + local.hour * 60 + local.minute


def weekday(days: np.ndarray) -> np.ndarray:
    """Monday = 0; 1970-01-01 was a Thursday."""
    return (days + 3) % 7


def business_hours(minutes: np.ndarray) -> np.ndarray:
    """Clamp each wall-clock time into 07:00-19:59 of its own day."""
    day = minutes // MINUTES_PER_DAY
    return day * MINUTES_PER_DAY + np.clip(minutes % MINUTES_PER_DAY, FIRST_MINUTE, LAST_MINUTE)


def to_datetime(name: str, minutes: np.ndarray) -> pl.Series:
    """Naive local `pl.Datetime` (wall-clock time as the CSV shows it)."""
    return pl.Series(name, minutes.astype(np.int64) * 60_000_000).cast(pl.Datetime("us"))


def to_date(name: str, days: np.ndarray) -> pl.Series:
    return pl.Series(name, days.astype(np.int32)).cast(pl.Date)


def datetime_minutes(series: pl.Series) -> np.ndarray:
    """Inverse of `to_datetime`; nulls become -1."""
    return (series.cast(pl.Datetime("us")).cast(pl.Int64) // 60_000_000).fill_null(-1).to_numpy()


def date_parts(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Year, month, day of each day number."""
    d = np.datetime64("1970-01-01", "D") + days.astype("timedelta64[D]")
    months = d.astype("datetime64[M]")
    year = months.astype("datetime64[Y]").astype(np.int64) + 1970
    month = months.astype(np.int64) % 12 + 1
    day = (d - months).astype(np.int64) + 1
    return year, month, day
