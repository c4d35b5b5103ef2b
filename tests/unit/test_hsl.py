"""HSL web-slot coverage R20-R23: covered units, weekdays, professions, released slots, markers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mvg_sync.rules.hsl import CSV_COLUMNS, hsl_coverage, hsl_weekdays

UTC_DT = pl.Datetime("us", "UTC")
HC = "SE2321000233-HC01"        # public health centre, primary care
SPEC = "SE2321000233-SP01"      # public specialist clinic
PRIVATE = "SE2321000233-PR01"   # private health centre
RADIO = "SE2321000233-ST01"     # radiotherapy unit: not covered
MON, TUE = date(2026, 11, 23), date(2026, 11, 24)
AS_OF = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)  # before every slot day: nothing released

DOC_SERVICE = "Primärvård|distans video|läkare"
NURSE_SERVICE = "Primärvård|distans video|sjuksköterska"
PHYSIO_SERVICE = "Primärvård|mottagning|fysioterapeut"


def _units() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "unit_hsa_id": [HC, SPEC, PRIVATE, RADIO],
            "unit_name": ["HC Norr", "Hudmottagningen", "Privata HC", "Strålbehandlingsmottagning Gävle"],
            "unit_type": ["Hälsocentral", "Specialistmottagning", "Hälsocentral",
                          "Strålbehandlingsmottagning"],
            "care_level": ["Primärvård", "Specialistvård", "Primärvård", "Specialistvård"],
            "is_public": [True, True, False, True],
        }
    )


_counter = iter(range(1, 1_000_000))


def _slot(unit: str, day: date, profession: str, service: str, *, hour: int = 9,
          marker: str | None = "MVG distans", web: bool = True, status: str = "free",
          slot_id: str | None = None) -> dict:
    start = datetime(day.year, day.month, day.day, hour - 1, 0, tzinfo=UTC)  # local = hour (CET)
    return {
        "slot_id": slot_id or f"T{next(_counter)}",
        "unit_hsa_id": unit,
        "resource_hsa_id": None,
        "resource_name": None,
        "profession": profession,
        "start_at": start,
        "end_at": start + timedelta(minutes=20),
        "schedule_marker": marker,
        "care_service": service,
        "is_web_bookable": web,
        "status": status,
        "booking_id": "BK" if status == "booked" else None,
    }


def _slots(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "slot_id": pl.String, "unit_hsa_id": pl.String, "resource_hsa_id": pl.String,
            "resource_name": pl.String, "profession": pl.String, "start_at": UTC_DT,
            "end_at": UTC_DT, "schedule_marker": pl.String, "care_service": pl.String,
            "is_web_bookable": pl.Boolean, "status": pl.String, "booking_id": pl.String,
        },
    )


def _full_day(unit: str, day: date, physio: bool) -> list[dict]:
    rows = [_slot(unit, day, "Läkare", DOC_SERVICE),
            _slot(unit, day, "Sjuksköterska", NURSE_SERVICE)]
    if physio:
        rows.append(_slot(unit, day, "Fysioterapeut", PHYSIO_SERVICE, marker="MVG fysiskt"))
    return rows


def _cov(rows, *, date_from=MON, date_to=TUE, as_of=AS_OF):
    return hsl_coverage(_slots(rows), _units(), date_from=date_from, date_to=date_to, as_of=as_of)


def test_r22_unit_missing_nurse_on_one_weekday_is_listed_first():
    rows = [*_full_day(HC, MON, physio=True), *_full_day(HC, TUE, physio=True),
            *_full_day(SPEC, MON, physio=False), *_full_day(SPEC, TUE, physio=False)]
    rows = [r for r in rows if not (r["unit_hsa_id"] == HC and r["start_at"].date() == TUE
                                    and r["profession"] == "Sjuksköterska")]
    result = _cov(rows)
    assert result.csv.columns[:5] == list(CSV_COLUMNS)
    first = result.coverage.row(0, named=True)
    assert (first["unit_hsa_id"], first["date"], first["profession"]) == (HC, TUE, "sjuksköterska")
    assert (first["web_slots"], first["compliant"]) == (0, False)
    assert result.coverage["compliant"].to_list() == [False] + [True] * 9
    assert result.coverage.height == 2 * 3 + 2 * 2  # HC: 3 professions, SPEC: 2


def test_r22_private_and_other_unit_types_are_not_covered():
    rows = [*_full_day(PRIVATE, MON, physio=True), *_full_day(RADIO, MON, physio=False)]
    result = _cov(rows, date_to=MON)
    assert set(result.coverage["unit_hsa_id"]) == {HC, SPEC}
    assert not result.coverage["compliant"].any()


def test_r22_physiotherapist_only_in_primary_care():
    result = _cov([], date_to=MON)
    got = result.coverage.select("unit_hsa_id", "profession").sort("unit_hsa_id", "profession")
    expected = pl.DataFrame({
        "unit_hsa_id": [HC, HC, HC, SPEC, SPEC],
        "profession": ["fysioterapeut", "läkare", "sjuksköterska", "läkare", "sjuksköterska"],
    })
    assert_frame_equal(got, expected)


@pytest.mark.parametrize(
    "holiday", [date(2026, 12, 24), date(2026, 12, 25), date(2027, 1, 6), date(2027, 1, 1)]
)
def test_r22_holidays_are_not_weekdays(holiday):
    assert holiday not in hsl_weekdays(holiday - timedelta(days=3), holiday + timedelta(days=3))


def test_r22_weekdays_around_christmas_2026():
    # 24 Thu (Julafton), 25 Fri, 26 Sat, 27 Sun, 28 Mon: only the Monday and Wednesday 23 remain.
    assert hsl_weekdays(date(2026, 12, 23), date(2026, 12, 28)) == [date(2026, 12, 23),
                                                                    date(2026, 12, 28)]


def test_r22_saturday_and_holiday_need_no_slots_and_holiday_is_listed():
    result = _cov([], date_from=date(2027, 1, 2), date_to=date(2027, 1, 6))  # Sat .. Wed Epiphany
    assert sorted(set(result.coverage["date"])) == [date(2027, 1, 4), date(2027, 1, 5)]
    assert result.excluded_days["date"].to_list() == [date(2027, 1, 6)]
    assert result.excluded_days["holiday"].to_list() == ["Trettondedag jul"]


def test_r23_slot_offered_for_three_care_services_counts_once():
    rows = [_slot(HC, MON, "Läkare", s, slot_id="ONE")
            for s in [DOC_SERVICE, "Primärvård|mottagning|läkare", "Primärvård|telefon|läkare"]]
    cov = _cov(rows, date_to=MON).coverage
    doctor = cov.filter((pl.col("unit_hsa_id") == HC) & (pl.col("profession") == "läkare"))
    assert doctor["web_slots"].to_list() == [1]


def test_r20_r22_only_web_published_mvg_slots_count_booked_or_not():
    rows = [
        _slot(HC, MON, "Läkare", DOC_SERVICE, status="booked"),             # counts
        _slot(HC, MON, "Läkare", DOC_SERVICE, web=False),                   # not published
        _slot(HC, MON, "Läkare", DOC_SERVICE, marker="Akut"),               # not an MVG marker
        _slot(HC, MON, "Läkare", DOC_SERVICE, marker=None),                 # no marker
        _slot(HC, MON, "Sjuksköterska", NURSE_SERVICE, marker="MVG distans + fysiskt"),
        _slot(HC, MON, "Undersköterska", NURSE_SERVICE),                    # not a nurse
    ]
    cov = _cov(rows, date_to=MON).coverage.filter(pl.col("unit_hsa_id") == HC)
    got = dict(zip(cov["profession"], cov["web_slots"], strict=True))
    assert got == {"läkare": 1, "sjuksköterska": 1, "fysioterapeut": 0}


def test_r21_free_slots_released_once_past_0700_local():
    rows = [
        _slot(HC, MON, "Läkare", DOC_SERVICE, hour=10),
        _slot(HC, MON, "Läkare", DOC_SERVICE, hour=11, status="booked"),
        _slot(HC, TUE, "Läkare", DOC_SERVICE, hour=10),
    ]

    def released(as_of):
        cov = _cov(rows, as_of=as_of).coverage.filter(
            (pl.col("unit_hsa_id") == HC) & (pl.col("profession") == "läkare"))
        return dict(zip(cov["date"], cov["released_at_0700"], strict=True))

    # Monday 07:00 local is 06:00 UTC.
    assert released(datetime(2026, 11, 23, 5, 59, tzinfo=UTC)) == {MON: 0, TUE: 0}
    assert released(datetime(2026, 11, 23, 6, 0, tzinfo=UTC)) == {MON: 1, TUE: 0}
    # released slots were published, so they still count for R22
    cov = _cov(rows, as_of=datetime(2026, 11, 24, 12, tzinfo=UTC)).coverage
    doctor = cov.filter((pl.col("unit_hsa_id") == HC) & (pl.col("profession") == "läkare"))
    assert doctor.select("date", "web_slots", "released_at_0700").rows() == [
        (MON, 2, 1), (TUE, 1, 1)]


def test_r23_marker_mixing_professions_is_a_configuration_error():
    rows = [
        _slot(HC, MON, "Läkare", DOC_SERVICE, slot_id="S1"),
        _slot(HC, MON, "Läkare", NURSE_SERVICE, slot_id="S1"),      # same slot, nurse service
        _slot(HC, MON, "Fysioterapeut", PHYSIO_SERVICE, marker="MVG fysiskt"),
        _slot(HC, TUE, "Sjuksköterska", NURSE_SERVICE, marker="MVG fysiskt"),  # own slot: fine
        _slot(SPEC, MON, "Läkare", DOC_SERVICE),                   # one profession: fine
        _slot(SPEC, MON, "Läkare", "Annat|x|läkare", marker="Lokal markering"),
        _slot(SPEC, MON, "Kurator", "Annat|x|kurator", marker="Lokal markering"),  # not MVG
    ]
    errors = _cov(rows, date_to=MON).marker_errors
    expected = pl.DataFrame(
        {
            "unit_hsa_id": [HC],
            "schedule_marker": ["MVG distans"],
            "professions": ["läkare, sjuksköterska"],
            "care_services": [f"{DOC_SERVICE}; {NURSE_SERVICE}"],
            "slots": [1],
        },
        schema_overrides={"slots": pl.UInt32},
    )
    assert_frame_equal(errors, expected)


def test_r22_per_unit_summary_counts_non_compliant_days():
    rows = [*_full_day(HC, MON, physio=True), _slot(HC, TUE, "Läkare", DOC_SERVICE)]
    per_unit = _cov(rows).per_unit.filter(pl.col("unit_hsa_id") == HC)
    got = dict(zip(per_unit["profession"], per_unit["non_compliant_days"], strict=True))
    assert got == {"läkare": 0, "sjuksköterska": 1, "fysioterapeut": 1}


def test_naive_as_of_is_refused():
    with pytest.raises(ValueError, match="timezone"):
        hsl_coverage(_slots([]), _units(), date_from=MON, date_to=MON,
                     as_of=datetime(2026, 11, 23, 8, 0))  # noqa: DTZ001 - the point of the test
