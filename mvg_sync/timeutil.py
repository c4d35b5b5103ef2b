"""Local Swedish time: the one place that knows about Europe/Stockholm and `as_of`."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

# The one definition of Swedish local time: the IANA name (for Polars' time-zone arguments and
# Prefect schedules) and the zone (for datetimes). Every module imports these.
STOCKHOLM_TZ = "Europe/Stockholm"
STOCKHOLM = ZoneInfo(STOCKHOLM_TZ)


def resolve_as_of(value: str | datetime | None) -> datetime:
    """`--as-of` (ISO date-time with offset) or the wall clock; always timezone-aware.

    Called once at the top of a flow or command and handed down (STYLE 5).
    """
    if value is None:
        return datetime.now(tz=UTC).astimezone(STOCKHOLM)
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        raise ValueError("as_of must carry a UTC offset, e.g. 2026-11-26T08:00:00+01:00")
    return value.astimezone(STOCKHOLM)


def utc_now() -> datetime:
    """The wall clock, for event timestamps (acceptance, settlement), never for rules."""
    return datetime.now(tz=UTC)
