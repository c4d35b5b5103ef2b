"""The demo's report period starts on the newest day with an e-service event (R28).

Found at 00:52 local time: Cosmic registers events from 07:00, so a demo run before that
had no event today and its e-service report (period: today) was empty.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from mvg_sync.demo import newest_eservice_day
from mvg_sync.rules.eservice import ESERVICE_CANCEL_REASON, ESERVICE_REBOOK_REASON

TODAY = date(2026, 12, 4)


def log(*rows: tuple[str, str]) -> pl.DataFrame:
    """Cosmic's log as the generator holds it: local wall-clock times, the reason an Enum."""
    frame = pl.DataFrame(rows, schema={"Datum": pl.String, "Orsak": pl.String}, orient="row")
    return frame.with_columns(
        pl.col("Datum").str.to_datetime("%Y-%m-%d %H:%M", time_unit="us"),
        pl.col("Orsak").cast(pl.Enum(frame.get_column("Orsak").unique().to_list())),
    )


def test_r28_a_night_run_starts_on_the_last_day_with_a_patients_own_event():
    events = log(
        ("2026-12-02 09:00", ESERVICE_CANCEL_REASON),
        ("2026-12-03 16:30", ESERVICE_REBOOK_REASON),
        ("2026-12-03 19:00", "Patienten sjuk"),  # staff's reason: not the e-service
    )
    assert newest_eservice_day(events, TODAY) == date(2026, 12, 3)


def test_r28_a_day_run_starts_today_and_a_staff_event_does_not_count():
    events = log(
        ("2026-12-03 09:00", ESERVICE_CANCEL_REASON),
        ("2026-12-04 08:15", f"  {ESERVICE_REBOOK_REASON.upper()} "),
        ("2026-12-05 08:00", ESERVICE_CANCEL_REASON),  # after today: not in the period
    )
    assert newest_eservice_day(events, TODAY) == TODAY
    assert newest_eservice_day(log(("2026-12-04 08:00", "Patienten sjuk")), TODAY) == TODAY
