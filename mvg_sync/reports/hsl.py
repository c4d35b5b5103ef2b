"""Report 2: HSL web-slot coverage (R20-R23) as a `Report` with Swedish labels."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl

from mvg_sync.reports.format import format_value
from mvg_sync.reports.model import Chart, Report, View
from mvg_sync.rules.hsl import HslResult

WEEKDAYS_SV = ("måndag", "tisdag", "onsdag", "torsdag", "fredag", "lördag", "söndag")

# Unit, day and profession first (what a manager acts on), unit type and HSA-id last.
COVERAGE_LABELS = {
    "unit_name": "Enhet",
    "date": "Datum",
    "weekday": "Veckodag",
    "profession": "Yrkesgrupp",
    "web_slots": "Webbtider",
    "released_at_0700": "Släppta kl. 07",
    "compliant": "Uppfyller HSL",
    "unit_type": "Enhetstyp",
    "unit_hsa_id": "EnhetHSAID",
}
PER_UNIT_LABELS = {
    "unit_name": "Enhet",
    "profession": "Yrkesgrupp",
    "non_compliant_days": "Dagar utan webbtid",
    "weekdays": "Vardagar",
    "web_slots": "Webbtider",
    "released_at_0700": "Släppta kl. 07",
    "unit_hsa_id": "EnhetHSAID",
}
MARKER_LABELS = {
    "unit_hsa_id": "EnhetHSAID",
    "schedule_marker": "Schemamarkering",
    "professions": "Yrkesgrupper",
    "care_services": "Vårdtjänster",
    "slots": "Tider",
}


def _weekday() -> pl.Expr:
    return pl.col("date").dt.weekday().replace_strict(
        dict(enumerate(WEEKDAYS_SV, start=1)), return_dtype=pl.String)


def _coverage_frame(coverage: pl.DataFrame) -> pl.DataFrame:
    return (
        coverage.with_columns(weekday=_weekday(), non_compliant=~pl.col("compliant"))
        .select(*COVERAGE_LABELS, "non_compliant")
        .rename({**COVERAGE_LABELS, "non_compliant": "Avvikelse"})
    )


def build_hsl_report(
    result: HslResult,
    *,
    date_from: date,
    date_to: date,
    as_of: datetime,
    unit: str | None = None,
    generated_at: datetime | None = None,
) -> Report:
    """Report 2 from `hsl_coverage`'s result."""
    coverage = _coverage_frame(result.coverage)
    missing = coverage.filter(~pl.col("Uppfyller HSL")).drop("Avvikelse")
    released = coverage.filter(pl.col("Släppta kl. 07") > 0).drop("Avvikelse", "Uppfyller HSL")

    per_unit_chart = (
        result.per_unit.filter(pl.col("non_compliant_days") > 0)
        .with_columns(label=pl.coalesce("unit_name", "unit_hsa_id"))
        .pivot(on="profession", index="label", values="non_compliant_days",
               aggregate_function="sum")
    )
    for p in ("läkare", "sjuksköterska", "fysioterapeut"):
        if p not in per_unit_chart.columns:
            per_unit_chart = per_unit_chart.with_columns(pl.lit(0, dtype=pl.UInt32).alias(p))
    per_unit_chart = (
        per_unit_chart.with_columns(pl.col("läkare", "sjuksköterska", "fysioterapeut").fill_null(0))
        .with_columns(total=pl.sum_horizontal("läkare", "sjuksköterska", "fysioterapeut"))
        .sort(["total", "label"], descending=[True, False])
        .rename({"label": "Enhet", "läkare": "Läkare", "sjuksköterska": "Sjuksköterska",
                 "fysioterapeut": "Fysioterapeut"})
    )
    per_day = (
        result.coverage.group_by("date")
        .agg(
            (~pl.col("compliant")).sum().alias("Enhetsdagar utan webbtid"),
            pl.col("released_at_0700").sum().alias("Släppta kl. 07"),
        )
        .sort("date")
        .rename({"date": "Datum"})
    )
    charts = (
        Chart("Dagar utan webbtid per enhet och yrkesgrupp", per_unit_chart, "Enhet",
              ("Läkare", "Sjuksköterska", "Fysioterapeut"), stacked=True, horizontal=True,
              max_categories=30),
        Chart("Ej uppfyllda enhet-yrkesgruppsdagar per dag", per_day, "Datum",
              ("Enhetsdagar utan webbtid",), value_label="Antal", max_categories=70),
        Chart("Webbtider släppta till enheten kl. 07 (R21) per dag", per_day, "Datum",
              ("Släppta kl. 07",), value_label="Antal", max_categories=70),
    )
    views = (
        View("Ej uppfyllda enhetsdagar", missing,
             note="Vardagar då en yrkesgrupp saknar webbokningsbar tid (R22)."),
        View("Täckning per dag", coverage, highlight="Avvikelse",
             note="Alla vardagar och yrkesgrupper som HSL-beslutet omfattar; ej uppfyllda först."),
        View("Per enhet", result.per_unit.select(list(PER_UNIT_LABELS)).rename(PER_UNIT_LABELS),
             highlight="Dagar utan webbtid"),
        View("Släppta kl 07", released,
             note="Lediga webbtider som släpptes till enheten kl. 07 på sin dag (R21). "
                  "De räknas ändå som publicerade för HSL-kravet."),
        View("Konfigurationsfel", result.marker_errors.rename(MARKER_LABELS),
             note="MVG-schemamarkeringar med vårdtjänster för flera yrkesgrupper (R23)."),
        View("Uteslutna helgdagar", result.excluded_days.rename(
            {"date": "Datum", "holiday": "Helgdag"}),
             note="Måndag–fredag som inte räknas som vardag (svenska helgdagar)."),
    )
    non_compliant = int((~result.coverage["compliant"]).sum())
    facts = (
        ("Period", f"{date_from.isoformat()} – {date_to.isoformat()}"),
        ("Enhet", unit or "alla offentliga hälsocentraler och specialistmottagningar"),
        ("Läge per", format_value(as_of)),
        ("Enhet-yrkesgruppsdagar", str(result.coverage.height)),
        ("Ej uppfyllda", str(non_compliant)),
        ("Konfigurationsfel (R23)", str(result.marker_errors.height)),
    )
    return Report(
        name="hsl_coverage",
        title="Webbtider enligt HSL-beslutet",
        intro=(
            "Enligt HSL-beslutet ska varje offentlig hälsocentral och specialistmottagning ha "
            "minst en webbokningsbar tid per vardag för läkare och sjuksköterska, och "
            "primärvården även för fysioterapeut (R22). En tid räknas när den publicerats för "
            "webbtidbok under en MVG-schemamarkering (R20), bokad eller inte; en tid som "
            "erbjuds för flera vårdtjänster räknas en gång (R23). Lediga tider släpps till "
            "enheten kl. 07 samma dag (R21) och redovisas separat."
        ),
        views=views,
        charts=charts,
        csv={"hsl_coverage": result.csv},
        facts=facts,
        generated_at=generated_at,
    )
