"""E-service report rules R24-R29: each breach planted with its near misses."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mvg_sync.rules.eservice import (
    CSV_COLUMNS,
    ESERVICE_CANCEL_REASON,
    ESERVICE_REBOOK_REASON,
    ESERVICE_USER,
    eservice_report,
    is_eservice_event,
)

UTC_DT = pl.Datetime("us", "UTC")
UNIT = "SE2321000233-HC01"
OTHER_UNIT = "SE2321000233-HC02"
PATIENT = "195811243269"
SERVICE = "Primärvård|distans video|läkare"
NO_REBOOK_SERVICE = "Primärvård|mottagning|sjuksköterska|fotvård"
RADIO_SERVICE = "Strålbehandling|mottagning|läkare"
STAFF = "Eichmann, Albin, Medicinsk sekreterare"

# Visit at 2026-11-20 10:00 local (+01:00) = 09:00 UTC.
VISIT = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
EARLY = VISIT - timedelta(days=3)  # well before the 24 h limit
REG_FROM, REG_TO = date(2026, 11, 1), date(2026, 11, 30)


def _event(event_id: str, **overrides) -> dict:
    row = {
        "event_id": event_id,
        "registered_at": EARLY,
        "event_type": "cancel",
        "booking_id": f"B-{event_id}",
        "basis_id": None,
        "patient_id": PATIENT,
        "patient_id_kind": "personnummer",
        "patient_name": "Fields, Jenny",
        "previous_start": VISIT,
        "new_start": None,
        "care_service": SERVICE,
        "contact_type": "Distansbesök - video",
        "unit_hsa_id": UNIT,
        "unit_name": "Hälsocentral Norr",
        "reason": ESERVICE_CANCEL_REASON,
        "comment": "Bokning via webbtidbok",
        "user_name": ESERVICE_USER,
    }
    if overrides.get("event_type") == "rebook":
        row["reason"] = ESERVICE_REBOOK_REASON
        row["new_start"] = VISIT + timedelta(days=2)
    row.update(overrides)
    return row


def _events(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "event_id": pl.String, "registered_at": UTC_DT, "event_type": pl.String,
            "booking_id": pl.String, "basis_id": pl.String, "patient_id": pl.String,
            "patient_id_kind": pl.String, "patient_name": pl.String,
            "previous_start": UTC_DT, "new_start": UTC_DT, "care_service": pl.String,
            "contact_type": pl.String, "unit_hsa_id": pl.String, "unit_name": pl.String,
            "reason": pl.String, "comment": pl.String, "user_name": pl.String,
        },
    )


def _catalogue() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "care_service": [SERVICE, NO_REBOOK_SERVICE, RADIO_SERVICE],
            "is_web_bookable": [True, True, True],
            "clinic24_role": ["lakare", "sjukskoterska", "lakare"],
            "patient_may_rebook": [True, False, True],
            "patient_may_cancel": [True, True, True],
        }
    )


def _basis(basis_id: str, registered_at: datetime, **overrides) -> dict:
    row = {
        "basis_id": basis_id,
        "patient_id": PATIENT,
        "patient_id_kind": "personnummer",
        "patient_name": "Fields, Jenny",
        "care_service": SERVICE,
        "contact_type": "Distansbesök - video",
        "visit_type": "Återbesök",
        "unit_hsa_id": UNIT,
        "unit_name": "Hälsocentral Norr",
        "monitoring_date": date(2026, 12, 15),
        "status": "planned",
        "booking_id": None,
        "booked_start_at": None,
        "referral_id": None,
        "is_acute": False,
        "registered_at": registered_at,
        "changed_at": registered_at,
    }
    row.update(overrides)
    return row


def _bases(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "basis_id": pl.String, "patient_id": pl.String, "patient_id_kind": pl.String,
            "patient_name": pl.String, "care_service": pl.String, "contact_type": pl.String,
            "visit_type": pl.String, "unit_hsa_id": pl.String, "unit_name": pl.String,
            "monitoring_date": pl.Date, "status": pl.String, "booking_id": pl.String,
            "booked_start_at": UTC_DT, "referral_id": pl.String, "is_acute": pl.Boolean,
            "registered_at": UTC_DT, "changed_at": UTC_DT,
        },
    )


def _put_back_for(rows: list[dict]) -> pl.DataFrame:
    """A basis put back right after each cancel, so R27 stays quiet unless a test wants it."""
    return _bases([
        _basis(f"PB-{r['event_id']}", r["registered_at"], care_service=r["care_service"],
               unit_hsa_id=r["unit_hsa_id"], patient_id=r["patient_id"])
        for r in rows if r.get("event_type", "cancel") == "cancel"
    ])


def _breaches(rows: list[dict], bases: pl.DataFrame | None = None, **kw) -> dict[str, str]:
    result = eservice_report(
        _events(rows), _catalogue(), _put_back_for(rows) if bases is None else bases,
        registered_from=kw.pop("registered_from", REG_FROM),
        registered_to=kw.pop("registered_to", REG_TO), **kw,
    )
    return dict(zip(result.detail["event_id"], result.detail["breaches"], strict=True))


# --- R28 ---------------------------------------------------------------------------------------

def test_r28_reason_decides_not_user():
    assert is_eservice_event("Patienten avbokar via e-tjänst")
    assert is_eservice_event(" Patienten  ombokar via E-tjänst ")
    assert not is_eservice_event("Patienten avbokar")
    assert not is_eservice_event("Felaktig registrering")
    assert not is_eservice_event(None)


def test_r28_staff_reason_under_eservice_user_is_excluded_but_counted():
    rows = [
        _event("E1"),
        _event("S1", reason="Patienten avbokar", user_name=ESERVICE_USER),
        _event("S2", reason="Felaktig registrering", user_name=STAFF),
    ]
    result = eservice_report(_events(rows), _catalogue(), _put_back_for(rows),
                             registered_from=REG_FROM, registered_to=REG_TO)
    assert result.detail["event_id"].to_list() == ["E1"]
    summary = result.summary.row(0, named=True)
    assert summary["cancellations"] == 3
    assert summary["eservice_cancellations"] == 1
    assert summary["eservice_share"] == pytest.approx(1 / 3)


def test_r28_eservice_reason_under_staff_user_is_eservice_and_shows_user():
    rows = [_event("E1", user_name=STAFF)]
    result = eservice_report(_events(rows), _catalogue(), _put_back_for(rows),
                             registered_from=REG_FROM, registered_to=REG_TO)
    row = result.detail.row(0, named=True)
    assert row["user_name"] == STAFF
    assert row["is_eservice_user"] is False
    assert row["breaches"] == ""


# --- R24 ---------------------------------------------------------------------------------------

def test_r24_exactly_24h_before_is_not_a_breach():
    rows = [
        _event("C24", registered_at=VISIT - timedelta(hours=24)),
        _event("R24", event_type="rebook", registered_at=VISIT - timedelta(hours=24)),
    ]
    assert _breaches(rows) == {"C24": "", "R24": ""}


def test_r24_23h59_before_is_a_breach_for_cancel_and_rebook():
    late = VISIT - timedelta(hours=23, minutes=59)
    rows = [
        _event("C", registered_at=late),
        _event("R", event_type="rebook", registered_at=late),
        _event("AFTER", registered_at=VISIT + timedelta(minutes=5)),
    ]
    assert _breaches(rows) == {"C": "R24", "R": "R24", "AFTER": "R24"}


def test_r24_counts_elapsed_hours_across_dst_change():
    # Visit 2026-10-25 10:00 CET (09:00 UTC); clocks went back at 03:00 that night, so
    # 10:00 CEST the day before (08:00 UTC) is 25 h earlier and allowed; 09:00 UTC is 24 h.
    visit = datetime(2026, 10, 25, 9, 0, tzinfo=UTC)
    rows = [
        _event("OK", previous_start=visit, registered_at=datetime(2026, 10, 24, 9, 0, tzinfo=UTC)),
        _event("LATE", previous_start=visit,
                registered_at=datetime(2026, 10, 24, 9, 1, tzinfo=UTC)),
    ]
    assert _breaches(rows, registered_from=date(2026, 10, 1)) == {"OK": "", "LATE": "R24"}


# --- R25 ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("days", "expected"),
    [(-7, ""), (-8, "R25"), (14, ""), (15, "R25"), (0, "")],
)
def test_r25_rebook_window_bounds(days, expected):
    # Rebooked well in advance so R24 stays out of it; -8 days before a visit 20 Nov is 12 Nov.
    rows = [_event("R", event_type="rebook", registered_at=VISIT - timedelta(days=10),
                   new_start=VISIT + timedelta(days=days))]
    assert _breaches(rows) == {"R": expected}


def test_r25_uses_local_dates_not_utc():
    # New start 2026-11-20 00:30 local (19 Nov 23:30 UTC) is -7 days from 27 Nov locally,
    # while a UTC date comparison would call it -8.
    previous = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    new = datetime(2026, 11, 19, 23, 30, tzinfo=UTC)  # 2026-11-20 00:30 local
    rows = [_event("R", event_type="rebook", registered_at=EARLY, previous_start=previous,
                   new_start=new)]
    assert _breaches(rows) == {"R": ""}


def test_r25_never_applies_to_cancellations():
    rows = [_event("C", new_start=VISIT + timedelta(days=40))]
    assert _breaches(rows) == {"C": ""}


# --- R26 ---------------------------------------------------------------------------------------

def test_r26_catalogue_no_rebook_is_a_breach_only_for_rebook():
    rows = [
        _event("R", event_type="rebook", care_service=NO_REBOOK_SERVICE),
        _event("C", care_service=NO_REBOOK_SERVICE),  # cancelling it is allowed
    ]
    assert _breaches(rows) == {"R": "R26", "C": ""}


def test_r26_radiotherapy_by_unit_or_service_name():
    rows = [
        _event("UNIT", unit_name="Strålbehandlingsmottagning Gävle", event_type="rebook"),
        _event("SERV", care_service=RADIO_SERVICE),
        _event("OTHER", unit_name="Strålbehandlingsmottagning Gävle X", event_type="rebook"),
    ]
    assert _breaches(rows) == {"UNIT": "R26", "SERV": "R26", "OTHER": ""}


def test_r26_service_missing_from_catalogue_is_not_flagged():
    rows = [_event("R", event_type="rebook", care_service="Okänd|tjänst|läkare")]
    assert _breaches(rows) == {"R": ""}


# --- R27 ---------------------------------------------------------------------------------------

def test_r27_cancel_without_put_back_basis_is_a_breach():
    rows = [_event("C")]
    older = _basis("OLD", EARLY - timedelta(seconds=1))  # registered before the event
    other_service = _basis("OS", EARLY, care_service=NO_REBOOK_SERVICE)
    other_unit = _basis("OU", EARLY, unit_hsa_id=OTHER_UNIT)
    other_patient = _basis("OP", EARLY, patient_id="200001012384")
    bases = _bases([older, other_service, other_unit, other_patient])
    assert _breaches(rows, bases=bases) == {"C": "R27"}


def test_r27_basis_registered_at_the_event_time_is_put_back():
    rows = [_event("C")]
    assert _breaches(rows, bases=_bases([_basis("PB", EARLY)])) == {"C": ""}


def test_r27_put_back_basis_since_booked_still_counts():
    rows = [_event("C")]
    bases = _bases([_basis("PB", EARLY + timedelta(hours=1), status="booked")])
    assert _breaches(rows, bases=bases) == {"C": ""}


def test_r27_own_basis_reopened_counts_as_put_back():
    rows = [_event("C", basis_id="OWN")]
    reopened = _basis("OWN", EARLY - timedelta(days=30), changed_at=EARLY + timedelta(minutes=1))
    still_booked = _basis("OWN", EARLY - timedelta(days=30), status="booked",
                          changed_at=EARLY + timedelta(minutes=1))
    assert _breaches(rows, bases=_bases([reopened])) == {"C": ""}
    assert _breaches(rows, bases=_bases([still_booked])) == {"C": "R27"}


def test_r27_never_applies_to_rebookings():
    rows = [_event("R", event_type="rebook")]
    assert _breaches(rows, bases=_bases([])) == {"R": ""}


def test_all_breaches_joined_in_ascending_order():
    rows = [_event("ALL", care_service=RADIO_SERVICE, registered_at=VISIT - timedelta(hours=2))]
    assert _breaches(rows, bases=_bases([])) == {"ALL": "R24;R26;R27"}
    rows = [_event("RB", event_type="rebook", care_service=NO_REBOOK_SERVICE,
                   registered_at=VISIT - timedelta(hours=1), new_start=VISIT + timedelta(days=20))]
    assert _breaches(rows) == {"RB": "R24;R25;R26"}


# --- R29 filters, columns, summary ---------------------------------------------------------------

def test_r29_detail_columns_and_values():
    rows = [_event("C", basis_id="OWN", registered_at=VISIT - timedelta(hours=1))]
    bases = _bases([_basis("OWN", EARLY - timedelta(days=30), monitoring_date=date(2026, 11, 25),
                           status="booked")])
    result = eservice_report(_events(rows), _catalogue(), bases,
                             registered_from=REG_FROM, registered_to=REG_TO)
    assert result.csv.columns == list(CSV_COLUMNS)
    row = result.detail.row(0, named=True)
    assert row["monitoring_date"] == date(2026, 11, 25)
    assert row["booking_date"] == date(2026, 11, 20)
    assert row["cancel_reason"] == ESERVICE_CANCEL_REASON
    assert row["rebook_reason"] is None
    assert row["booking_info"] == "Bokning via webbtidbok"
    assert row["breaches"] == "R24;R27"


def test_r29_registration_period_uses_local_dates():
    # 2026-11-30 23:30 UTC is 1 December locally: outside a November period.
    rows = [_event("IN", registered_at=datetime(2026, 10, 31, 23, 30, tzinfo=UTC),
                   previous_start=datetime(2026, 11, 25, 9, tzinfo=UTC)),
            _event("OUT", registered_at=datetime(2026, 11, 30, 23, 30, tzinfo=UTC),
                   previous_start=datetime(2026, 12, 25, 9, tzinfo=UTC))]
    assert list(_breaches(rows)) == ["IN"]


def test_r29_booking_or_monitoring_period_and_unit_filters():
    rows = [
        _event("BOOKED_IN", previous_start=datetime(2026, 12, 2, 9, tzinfo=UTC)),
        _event("MON_IN", basis_id="B1"),
        _event("NEW_IN", event_type="rebook", new_start=datetime(2026, 12, 3, 9, tzinfo=UTC)),
        _event("OUT"),
        _event("OTHER_UNIT", unit_hsa_id=OTHER_UNIT,
               previous_start=datetime(2026, 12, 2, 9, tzinfo=UTC)),
    ]
    bases = _bases([_basis("B1", EARLY - timedelta(days=40), monitoring_date=date(2026, 12, 5)),
                    *[_basis(f"P{i}", EARLY, unit_hsa_id=u) for i, u in
                      enumerate([UNIT, OTHER_UNIT])]])
    got = _breaches(rows, bases=bases, booked_from=date(2026, 12, 1),
                    booked_to=date(2026, 12, 31), unit=UNIT)
    assert sorted(got) == ["BOOKED_IN", "MON_IN", "NEW_IN"]
    # Open lower bound; the previous start (20 Nov) of the other rows is inside.
    got = _breaches(rows, bases=bases, booked_to=date(2026, 11, 30))
    assert sorted(got) == ["MON_IN", "NEW_IN", "OUT"]


def test_r29_summary_per_unit_and_iso_week():
    rows = [
        _event("A", registered_at=datetime(2026, 11, 16, 8, tzinfo=UTC)),  # W47
        _event("B", registered_at=datetime(2026, 11, 19, 8, tzinfo=UTC),
               event_type="rebook"),  # W47, 25 h before the visit: no breach
        _event("C", registered_at=datetime(2026, 11, 20, 8, 30, tzinfo=UTC)),  # W47, R24
        _event("D", registered_at=datetime(2026, 11, 23, 8, tzinfo=UTC),
               reason="Felaktig registrering", user_name=STAFF),  # W48, staff
    ]
    result = eservice_report(_events(rows), _catalogue(), _put_back_for(rows),
                             registered_from=REG_FROM, registered_to=REG_TO)
    got = result.summary.select(
        "week", "cancellations", "rebookings", "eservice_cancellations", "eservice_rebookings",
        "eservice_share", "breaches_r24", "breaches_r27", "events_with_breach",
    )
    expected = pl.DataFrame(
        {
            "week": ["2026-W47", "2026-W48"],
            "cancellations": [2, 1],
            "rebookings": [1, 0],
            "eservice_cancellations": [2, 0],
            "eservice_rebookings": [1, 0],
            "eservice_share": [1.0, 0.0],
            "breaches_r24": [1, 0],
            "breaches_r27": [0, 0],
            "events_with_breach": [1, 0],
        },
        schema_overrides={c: pl.UInt32 for c in [
            "cancellations", "rebookings", "eservice_cancellations", "eservice_rebookings",
            "breaches_r24", "breaches_r27", "events_with_breach"]},
    )
    assert_frame_equal(got, expected)


def test_reversed_registration_period_is_refused():
    with pytest.raises(ValueError, match="registered_from"):
        eservice_report(_events([]), _catalogue(), _bases([]),
                        registered_from=REG_TO, registered_to=REG_FROM)
