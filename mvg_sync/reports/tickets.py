"""Report 3: booking tickets (R14-R19) per unit and ISO week, from the snapshots and the ticket record."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime

import polars as pl

from mvg_sync.reports.labels import TICKET_STATUS, translate_frame, translate_reason
from mvg_sync.reports.model import Chart, Report, View
from mvg_sync.rules.ticket_report import TicketReport, ticket_report
from mvg_sync.rules.tickets import plan_tickets
from mvg_sync.store import queries
from mvg_sync.store.types import Connection

SERVICE_REQUEST = "ServiceRequest"
STATUS_SV = TICKET_STATUS
# Status and reason first (what a manager acts on), then unit, basis and dates, ids last.
DETAIL_LABELS = {
    "status": "Status",
    "reason": "Orsak",
    "unit_name": "Enhet",
    "basis_id": "UnderlagsID",
    "care_service": "Vårdtjänst",
    "monitoring_date": "Bevakningsdatum",
    "due_date": "Utfärdas från",
    "is_due": "Förfallen",
    "issued_at": "Utfärdad",
    "booked_at": "Bokad",
    "hours_to_booking": "Timmar till bokning",
    "week": "Vecka",
    "unit_hsa_id": "EnhetHSAID",
}
SUMMARY_LABELS = {
    "unit_name": "Enhet",
    "week": "Vecka",
    **{s: STATUS_SV[s] for s in STATUS_SV},
    "median_hours_to_booking": "Median timmar till bokning",
    "unit_hsa_id": "EnhetHSAID",
}

def ticket_state(con: Connection) -> tuple[pl.DataFrame, pl.DataFrame, list[str]]:
    """(ticket record, issue acceptances, Clinic24's cached unit list) from the state store."""
    return queries.ticket_state(con)


def compute_ticket_report(
    datasets: Mapping[str, pl.DataFrame],
    record: pl.DataFrame,
    issues: pl.DataFrame,
    clinic24_units: list[str],
    *,
    as_of: datetime,
    unit: str | None = None,
    monitoring_from: date | None = None,
    monitoring_to: date | None = None,
) -> tuple[TicketReport, bool]:
    """R14-R19 report rows; the flag says whether Clinic24's unit list was known.

    Before the first sync has fetched Clinic24's unit list, every unit of the unit extract is
    taken to be in Clinic24, so the report still shows what the tickets would be.
    """
    units_known = bool(clinic24_units)
    units = clinic24_units or datasets["units"]["unit_hsa_id"].to_list()
    plan = plan_tickets(
        datasets["booking_bases"], datasets.get("bookings"), datasets["care_services"],
        datasets["units"], units, record, as_of=as_of,
    )
    result = ticket_report(
        plan.report, record, issues, datasets["booking_bases"], datasets.get("bookings"),
        datasets["units"], as_of=as_of, unit=unit,
        monitoring_from=monitoring_from, monitoring_to=monitoring_to,
    )
    return result, units_known


def build_tickets_report(
    result: TicketReport,
    *,
    as_of: datetime,
    units_known: bool = True,
    unit: str | None = None,
    monitoring_from: date | None = None,
    monitoring_to: date | None = None,
    generated_at: datetime | None = None,
) -> Report:
    """Report 3 as a `Report` (Swedish labels; no patient data: basis ids only)."""
    detail = (
        translate_frame(result.detail, {"status": STATUS_SV, "reason": translate_reason})
        .select(list(DETAIL_LABELS)).rename(DETAIL_LABELS)
    )
    summary = result.summary.select(list(SUMMARY_LABELS)).rename(SUMMARY_LABELS)
    weekly = (
        result.summary.group_by("week").agg(pl.col(list(STATUS_SV)).sum()).sort("week")
        .rename({"week": "Vecka", **STATUS_SV})
    )
    counts = {s: int((result.detail["status"] == s).sum()) for s in STATUS_SV}
    used_hours = result.detail.filter(pl.col("status") == "used")["hours_to_booking"].drop_nulls()
    median = used_hours.median() if used_hours.len() else None
    charts = (
        Chart("Biljetter per vecka och status", weekly, "Vecka", tuple(STATUS_SV.values()),
              stacked=True, value_label="Antal"),
    )
    views = (
        View("Avvisade", detail.filter(pl.col("Status") == STATUS_SV["rejected"]),
             note="Underlag som inte får någon biljett: orsak med regel (R05, R15, R17, R18)."),
        View("Per enhet och vecka", summary,
             note="Vecka = ISO-vecka då biljetten utfärdades, annars då den förfaller (R15)."),
        View("Alla biljetter", detail, highlight="Orsak"),
    )
    period = ("alla" if not (monitoring_from or monitoring_to) else
              f"{monitoring_from or 'öppet'} – {monitoring_to or 'öppet'}")
    facts = (
        ("Läge per", as_of.strftime("%Y-%m-%d %H:%M")),
        ("Bevakningsdatum", period),
        ("Enhet", unit or "alla"),
        *((STATUS_SV[s], str(n)) for s, n in counts.items()),
        ("Median timmar utfärdad → bokad (använda)", "–" if median is None else f"{median:.1f}"),
        *((("Clinic24:s enhetslista", "ej hämtad än: alla Cosmic-enheter antas finnas"),)
          if not units_known else ()),
    )
    return Report(
        name="tickets",
        title="Bokningsbiljetter",
        intro=("Bokningsbiljetter från bokningsunderlag (R14–R19): väntande (förfaller 30 dagar "
               "före bevakningsdatum, R15), utfärdade, använda (bokade via webbtidbok), "
               "återkallade och avvisade med orsak, per enhet och vecka, med tiden från "
               "utfärdande till bokning."),
        views=views,
        charts=charts,
        csv={"tickets": result.csv},
        facts=facts,
        generated_at=generated_at,
    )
