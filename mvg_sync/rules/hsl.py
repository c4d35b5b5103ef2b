"""HSL web-slot coverage: web-bookable MVG slots per covered unit, weekday and profession (R20-R23)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache

import holidays
import polars as pl

from mvg_sync.timeutil import STOCKHOLM as _STOCKHOLM
from mvg_sync.timeutil import STOCKHOLM_TZ as LOCAL_TZ

# R20: the schedule markers whose slots MVG publishes.
MVG_MARKERS = ("MVG distans", "MVG distans + fysiskt", "MVG fysiskt")
# R22: units the HSL decision covers (with `is_public`).
COVERED_UNIT_TYPES = ("Hälsocentral", "Specialistmottagning")
PRIMARY_CARE = "Primärvård"
DOCTOR, NURSE, PHYSIO = "läkare", "sjuksköterska", "fysioterapeut"
PROFESSIONS = (DOCTOR, NURSE, PHYSIO)
# R21: unbooked slots go back to the unit at 07:00 on their own day.
RELEASE_TIME = time(7, 0)

CSV_COLUMNS = ("unit_hsa_id", "date", "profession", "web_slots", "compliant")


@lru_cache(maxsize=64)
def _swedish_holidays(year: int) -> holidays.HolidayBase:
    # `de_facto` adds Midsommarafton, Julafton and Nyårsafton: not legal holidays, but days
    # the region's clinics are closed like one, so demanding web slots on them is wrong.
    return holidays.Sweden(years=year, include_sundays=False,
                           categories=("public", "de_facto"), language="sv")


def holiday_name(day: date) -> str | None:
    """The Swedish public (or de facto) holiday on `day`, if any (R22)."""
    return _swedish_holidays(day.year).get(day)


def hsl_weekdays(date_from: date, date_to: date) -> list[date]:
    """R22: the days that need web slots: Monday-Friday that are not Swedish holidays.

    Holidays are public holidays plus the de facto ones (Midsommarafton, Julafton, Nyårsafton).
    """
    days = []
    day = date_from
    while day <= date_to:
        if day.weekday() < 5 and holiday_name(day) is None:
            days.append(day)
        day += timedelta(days=1)
    return days


def profession_group_expr(profession: pl.Expr) -> pl.Expr:
    """R22: map Cosmic's `Yrkesroll` to `läkare` / `sjuksköterska` / `fysioterapeut` (else null).

    `Distriktsläkare`, `ST-läkare` count as doctors; `Distriktssköterska` and other
    `…sjuksköterska` as nurses, but an `Undersköterska` is not a nurse; `Sjukgymnast` is the
    old title of a physiotherapist.
    """
    p = profession.str.strip_chars().str.to_lowercase()
    return (
        pl.when(p.str.ends_with("läkare")).then(pl.lit(DOCTOR))
        .when(p.str.ends_with("sjuksköterska") | (p == "distriktssköterska")).then(pl.lit(NURSE))
        .when(p.str.starts_with("fysioterapeut") | p.str.starts_with("sjukgymnast"))
        .then(pl.lit(PHYSIO))
    )


def care_service_profession_expr(care_service: pl.Expr) -> pl.Expr:
    """R23: the profession segment of a care service name `Area|contact|profession[|speciality]`."""
    return care_service.str.split("|").list.get(2, null_on_oob=True).str.strip_chars().str.to_lowercase()


def covered_units_expr() -> pl.Expr:
    """R22: public health centres and specialist outpatient clinics."""
    return pl.col("is_public").fill_null(False) & pl.col("unit_type").str.strip_chars().is_in(
        COVERED_UNIT_TYPES
    )


def release_moment(day: date) -> datetime:
    """R21: 07:00 local time on `day`, when unbooked slots stop being web-bookable."""
    return datetime.combine(day, RELEASE_TIME, tzinfo=_STOCKHOLM)


@dataclass(frozen=True)
class HslResult:
    """Output of `hsl_coverage`.

    `coverage`: one row per covered unit, weekday and profession (grain `unit_hsa_id`, `date`,
    `profession`), non-compliant rows first; CSV columns first, then `released_at_0700`,
    `unit_name`, `unit_type`.
    `per_unit`: one row per covered unit and profession over the period.
    `marker_errors`: one row per unit and MVG marker whose care services span professions (R23).
    `excluded_days`: the Monday-Friday dates left out as holidays, with their names.
    """

    coverage: pl.DataFrame
    per_unit: pl.DataFrame
    marker_errors: pl.DataFrame
    excluded_days: pl.DataFrame

    @property
    def csv(self) -> pl.DataFrame:
        """hsl_coverage.csv (operations.md) plus the R21 count."""
        return self.coverage.select(*CSV_COLUMNS, "released_at_0700")


def _days_frame(date_from: date, date_to: date, as_of: datetime) -> pl.DataFrame:
    days = hsl_weekdays(date_from, date_to)
    return pl.DataFrame(
        {"date": days, "is_past_release": [as_of >= release_moment(d) for d in days]},
        schema={"date": pl.Date, "is_past_release": pl.Boolean},
    )


def _excluded_days(date_from: date, date_to: date) -> pl.DataFrame:
    rows = []
    day = date_from
    while day <= date_to:
        name = holiday_name(day) if day.weekday() < 5 else None
        if name is not None:
            rows.append({"date": day, "holiday": name})
        day += timedelta(days=1)
    return pl.DataFrame(rows, schema={"date": pl.Date, "holiday": pl.String})


def marker_errors(slots: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """R23: MVG markers that, on some slot, carry care services of more than one profession.

    The marker's care services are the care-service rows of a slot (one slot under a marker is
    offered for every service of that marker), so a slot whose services name two professions
    (third segment of the name) shows a mixed marker. Doctors and nurses each using
    `MVG distans` on their own slots is fine. One row per `unit_hsa_id` and `schedule_marker`
    with the professions and care services of the mixed slots and how many slots mix.
    """
    mixed_slots = (
        slots.lazy()
        .filter(pl.col("schedule_marker").is_in(MVG_MARKERS))
        .with_columns(service_profession=care_service_profession_expr(pl.col("care_service")))
        .filter(pl.col("service_profession").is_not_null())
        .group_by("unit_hsa_id", "schedule_marker", "slot_id")
        .agg(pl.col("service_profession"), pl.col("care_service"))
        .filter(pl.col("service_profession").list.n_unique() > 1)
    )
    return (
        mixed_slots.group_by("unit_hsa_id", "schedule_marker")
        .agg(
            pl.col("service_profession").list.explode(keep_nulls=False, empty_as_null=False).unique().sort().alias("professions"),
            pl.col("care_service").list.explode(keep_nulls=False, empty_as_null=False).unique().sort().alias("care_services"),
            pl.len().cast(pl.UInt32).alias("slots"),
        )
        .with_columns(
            pl.col("professions").list.join(", "),
            pl.col("care_services").list.join("; "),
        )
        .sort("unit_hsa_id", "schedule_marker")
        .collect()
    )


def hsl_coverage(
    slots: pl.DataFrame | pl.LazyFrame,
    units: pl.DataFrame | pl.LazyFrame,
    *,
    date_from: date,
    date_to: date,
    as_of: datetime,
) -> HslResult:
    """R20-R23: web-bookable MVG slots per covered unit, weekday and profession.

    A unit-day-profession complies when it has at least one slot that was published for web
    booking (`is_web_bookable`) under an MVG marker (R20), booked or not (R22). A slot offered
    for several care services is one slot (R23: grain `unit_hsa_id` + `slot_id`).
    `released_at_0700` (R21) counts those slots still free in this snapshot once `as_of` has
    passed 07:00 local on their day (a lower bound: a slot staff booked after 07:00 shows as
    booked). Days are local Swedish dates.
    """
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    if date_from > date_to:
        raise ValueError("date_from is after date_to")
    days = _days_frame(date_from, date_to, as_of)
    professions = pl.DataFrame({"profession": list(PROFESSIONS),
                                "profession_order": list(range(len(PROFESSIONS)))},
                               schema={"profession": pl.String, "profession_order": pl.UInt8})

    covered = (
        units.lazy()
        .filter(covered_units_expr())
        .select("unit_hsa_id", "unit_name", "unit_type", "care_level")
        .join(professions.lazy(), how="cross")
        # physiotherapists only count in primary care
        .filter((pl.col("profession") != PHYSIO) | (pl.col("care_level") == PRIMARY_CARE))
        .join(days.lazy(), how="cross")
    )

    per_slot = (
        slots.lazy()
        .filter(pl.col("schedule_marker").is_in(MVG_MARKERS))
        .with_columns(
            date=pl.col("start_at").dt.convert_time_zone(LOCAL_TZ).dt.date(),
            profession=profession_group_expr(pl.col("profession")),
        )
        .filter(pl.col("profession").is_not_null()
                & pl.col("date").is_between(date_from, date_to))
        .group_by("unit_hsa_id", "slot_id")
        .agg(
            pl.col("date").first(),
            pl.col("profession").first(),
            pl.col("is_web_bookable").fill_null(False).any().alias("is_web"),
            (pl.col("status") == "booked").any().alias("is_booked"),
        )
        .filter(pl.col("is_web"))
    )
    counts = (
        per_slot.join(days.lazy(), on="date", how="inner")
        .group_by("unit_hsa_id", "date", "profession")
        .agg(
            pl.len().cast(pl.UInt32).alias("web_slots"),
            (~pl.col("is_booked") & pl.col("is_past_release")).sum().cast(pl.UInt32)
            .alias("released_at_0700"),
        )
    )
    coverage_lf = (
        covered.join(counts, on=["unit_hsa_id", "date", "profession"], how="left")
        .with_columns(pl.col("web_slots", "released_at_0700").fill_null(0))
        .with_columns(compliant=pl.col("web_slots") >= 1)
        .sort("compliant", "unit_hsa_id", "date", "profession_order")
        .select(*CSV_COLUMNS, "released_at_0700", "unit_name", "unit_type")
    )
    coverage = coverage_lf.collect()
    per_unit = (
        coverage.lazy()
        .group_by("unit_hsa_id", "unit_name", "profession")
        .agg(
            pl.len().cast(pl.UInt32).alias("weekdays"),
            (~pl.col("compliant")).sum().cast(pl.UInt32).alias("non_compliant_days"),
            pl.col("web_slots").sum().cast(pl.UInt32),
            pl.col("released_at_0700").sum().cast(pl.UInt32),
        )
        .join(professions.lazy(), on="profession")
        .sort(pl.col("non_compliant_days"), "unit_hsa_id", "profession_order",
              descending=[True, False, False])
        .drop("profession_order")
        .collect()
    )
    return HslResult(
        coverage=coverage,
        per_unit=per_unit,
        marker_errors=marker_errors(slots),
        excluded_days=_excluded_days(date_from, date_to),
    )
