"""The demo's report period starts on the newest day with an e-service event (R28).

Found at 00:52 local time: Cosmic registers events from 07:00, so a demo run before that
had no event today and its e-service report (period: today) was empty.
"""

from __future__ import annotations

from datetime import date, datetime

import polars as pl

from mvg_sync.demo import newest_eservice_day
from mvg_sync.rules.eservice import ESERVICE_CANCEL_REASON, ESERVICE_REBOOK_REASON

TODAY = date(2026, 12, 4)


def log(*rows: tuple[datetime, str]) -> pl.DataFrame:
    """Cosmic's log as the generator holds it: the reason a categorical (an Enum)."""
    frame = pl.DataFrame(rows, schema={"Datum": pl.Datetime("us"), "Orsak": pl.String}, orient="row")
    return frame.with_columns(pl.col("Orsak").cast(pl.Enum(frame.get_column("Orsak").unique().to_list())))


def test_a_night_run_starts_on_the_last_day_with_a_patients_own_event():
    events = log(
        (datetime(2026, 12, 2, 9, 0), ESERVICE_CANCEL_REASON),
        (datetime(2026, 12, 3, 16, 30), ESERVICE_REBOOK_REASON),
        (datetime(2026, 12, 3, 19, 0), "Patienten sjuk"),  # staff's reason: not the e-service
    )
    assert newest_eservice_day(events, TODAY) == date(2026, 12, 3)


def test_a_day_run_starts_today_and_a_staff_event_does_not_count():
    events = log(
        (datetime(2026, 12, 3, 9, 0), ESERVICE_CANCEL_REASON),
        (datetime(2026, 12, 4, 8, 15), f"  {ESERVICE_REBOOK_REASON.upper()} "),
        (datetime(2026, 12, 5, 8, 0), ESERVICE_CANCEL_REASON),  # after today: not in the period
    )
    assert newest_eservice_day(events, TODAY) == TODAY
    assert newest_eservice_day(log((datetime(2026, 12, 4, 8, 0), "Patienten sjuk")), TODAY) == TODAY
