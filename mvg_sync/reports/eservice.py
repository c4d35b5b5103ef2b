"""Report 1: e-service cancellations and rebookings (R28, R29) as a `Report` with Swedish labels."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl

from mvg_sync.reports.format import display_patient_id
from mvg_sync.reports.labels import BREACH, EVENT_TYPE, translated
from mvg_sync.reports.model import Chart, Report, View
from mvg_sync.rules.eservice import LOCAL_TZ, EserviceResult

BREACH_TEXT = BREACH

# What a manager acts on first (breaches, unit, event, times), then R29's columns in the order
# of Cosmic's own list, then the ids. eservice.csv keeps the spec's order (rules.eservice).
DETAIL_LABELS = {
    "breaches": "Avvikelser",
    "breach_text": "Avvikelser (förklaring)",
    "unit_name": "Enhet",
    "event_type": "Typ",
    "registered_at": "När",
    "previous_start": "Tidigare tid",
    "new_start": "Ny tid",
    "monitoring_date": "Bevakningsdatum",
    "booking_date": "Bokningsdatum",
    "patient_id": "Personnummer",
    "patient_name": "Namn",
    "care_service": "Vårdtjänst",
    "contact_type": "Kontakttyp",
    "booking_info": "Bokningsinformation",
    "rebook_reason": "Ombokningsorsak",
    "cancel_reason": "Avbokningsorsak",
    "user_name": "Av vem",
    "unit_hsa_id": "EnhetHSAID",
    "event_id": "HändelseID",
    "booking_id": "BokningsID",
}

# Breaches first after unit and week: they are what a manager follows up.
SUMMARY_LABELS = {
    "unit_name": "Enhet",
    "week": "Vecka",
    "events_with_breach": "Händelser med avvikelse",
    "breaches_r24": "R24 < 24 h",
    "breaches_r25": "R25 utanför -7/+14 d",
    "breaches_r26": "R26 ej tillåten tjänst",
    "breaches_r27": "R27 ej åter på väntelista",
    "cancellations": "Avbokningar (alla)",
    "rebookings": "Ombokningar (alla)",
    "eservice_cancellations": "Avbokningar via e-tjänst",
    "eservice_rebookings": "Ombokningar via e-tjänst",
    "eservice_share": "E-tjänstandel",
    "eservice_cancel_share": "E-tjänstandel avbokningar",
    "eservice_rebook_share": "E-tjänstandel ombokningar",
    "unit_hsa_id": "EnhetHSAID",
}
SUMMARY_PERCENT = ("E-tjänstandel", "E-tjänstandel avbokningar", "E-tjänstandel ombokningar")

PATIENT_ID = frozenset({"Personnummer", "patient_id"})
PATIENT_NAME = frozenset({"Namn", "patient_name"})
FREE_TEXT = frozenset({"Bokningsinformation", "booking_info"})


def _breach_text() -> pl.Expr:
    parts = [
        pl.when(pl.col("breaches").str.contains(rule, literal=True)).then(pl.lit(text))
        for rule, text in BREACH_TEXT.items()
    ]
    return pl.concat_str(parts, separator="; ", ignore_nulls=True).fill_null("")


def detail_view_frame(detail: pl.DataFrame) -> pl.DataFrame:
    """The R29 list with Swedish labels and local times."""
    return (
        detail.with_columns(
            pl.col("registered_at", "previous_start", "new_start").dt.convert_time_zone(LOCAL_TZ),
            display_patient_id("patient_id").alias("patient_id"),
            translated("event_type", EVENT_TYPE),
            breach_text=_breach_text(),
        )
        .select(list(DETAIL_LABELS))
        .rename(DETAIL_LABELS)
    )


def _fmt(day: date | None) -> str:
    return day.isoformat() if day else "öppet"


def build_eservice_report(
    result: EserviceResult,
    *,
    registered_from: date,
    registered_to: date,
    booked_from: date | None = None,
    booked_to: date | None = None,
    unit: str | None = None,
    generated_at: datetime | None = None,
) -> Report:
    """Report 1 from `eservice_report`'s result; the arguments are shown as the report's period."""
    detail = detail_view_frame(result.detail)
    breaches = detail.filter(pl.col("Avvikelser") != "")
    summary = result.summary.select(list(SUMMARY_LABELS)).rename(SUMMARY_LABELS)

    weekly = (
        result.summary.group_by("week")
        .agg(pl.col("cancellations", "rebookings", "eservice_cancellations",
                    "eservice_rebookings", "breaches_r24", "breaches_r25", "breaches_r26",
                    "breaches_r27").sum())
        .sort("week")
        .with_columns(
            staff=(pl.col("cancellations") + pl.col("rebookings")
                   - pl.col("eservice_cancellations") - pl.col("eservice_rebookings")),
            share=pl.when((pl.col("cancellations") + pl.col("rebookings")) > 0).then(
                (pl.col("eservice_cancellations") + pl.col("eservice_rebookings"))
                / (pl.col("cancellations") + pl.col("rebookings"))).otherwise(0.0),
        )
        .rename({"week": "Vecka", "eservice_cancellations": "Avbokat via e-tjänst",
                 "eservice_rebookings": "Ombokat via e-tjänst", "staff": "Av personal",
                 "share": "E-tjänstandel", "breaches_r24": "R24", "breaches_r25": "R25",
                 "breaches_r26": "R26", "breaches_r27": "R27"})
    )
    per_unit = (
        result.summary.group_by("unit_hsa_id", "unit_name")
        .agg(pl.col("breaches_r24", "breaches_r25", "breaches_r26", "breaches_r27").sum())
        .with_columns(total=pl.sum_horizontal(pl.col("^breaches_r2.$")),
                      label=pl.coalesce("unit_name", "unit_hsa_id"))
        .filter(pl.col("total") > 0)
        .sort(["total", "label"], descending=[True, False])
        .rename({"label": "Enhet", "breaches_r24": "R24", "breaches_r25": "R25",
                 "breaches_r26": "R26", "breaches_r27": "R27"})
    )
    charts = (
        Chart("Av- och ombokningar per vecka", weekly, "Vecka",
              ("Avbokat via e-tjänst", "Ombokat via e-tjänst", "Av personal"), stacked=True,
              value_label="Antal"),
        Chart("E-tjänstandel av alla av- och ombokningar per vecka", weekly, "Vecka",
              ("E-tjänstandel",), kind="line", percent=True),
        Chart("Avvikelser per vecka och regel", weekly, "Vecka", ("R24", "R25", "R26", "R27"),
              value_label="Antal"),
        Chart("Enheter med flest avvikelser", per_unit, "Enhet", ("R24", "R25", "R26", "R27"),
              stacked=True, horizontal=True, max_categories=25),
    )
    views = (
        View("Avvikelser", breaches,
             note="E-tjänsthändelser som bryter mot R24–R27."),
        View("Alla e-tjänsthändelser", detail, highlight="Avvikelser",
             note="Varje av- och ombokning med orsak via e-tjänst (R28), oavsett användare."),
        View("Per enhet och vecka", summary, percent_columns=SUMMARY_PERCENT,
             highlight="Händelser med avvikelse",
             note="Volymer inklusive personalens av- och ombokningar; e-tjänstandel av alla."),
    )
    facts = (
        ("Registreringsperiod", f"{registered_from.isoformat()} – {registered_to.isoformat()}"),
        ("Bevaknings-/bokningsdatum", f"{_fmt(booked_from)} – {_fmt(booked_to)}"
         if booked_from or booked_to else "alla"),
        ("Enhet", unit or "alla"),
        ("E-tjänsthändelser", str(result.detail.height)),
        ("Med avvikelse", str(breaches.height)),
    )
    return Report(
        name="eservice",
        title="Av- och ombokningar via e-tjänst",
        intro=(
            "Kontrollrapport över av- och ombokningar som patienter gjort själva i Min vård "
            "Gävleborg (orsak ”Patienten avbokar/ombokar via e-tjänst”, R28). Varje rad "
            "flaggas om den bryter mot reglerna: ändrad mindre än 24 timmar före besöket "
            "(R24), ombokad till mer än 7 dagar före eller 14 dagar efter ursprunglig dag "
            "(R25), gjord på en vårdtjänst som patienten inte får av- eller omboka (R26) eller "
            "avbokad utan att bokningsunderlaget lagts åter på väntelistan (R27)."
        ),
        views=views,
        charts=charts,
        csv={"eservice": result.csv},
        facts=facts,
        generated_at=generated_at,
        patient_id_columns=PATIENT_ID,
        patient_name_columns=PATIENT_NAME,
        free_text_columns=FREE_TEXT,
    )
