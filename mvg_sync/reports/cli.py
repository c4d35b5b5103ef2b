"""`mvg-sync report`: load the latest snapshots and state, build the four control reports, write them."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl

from mvg_sync.reports.control import eservice_and_hsl_reports, write_reports
from mvg_sync.reports.model import Report
from mvg_sync.reports.sync_health import (
    build_sync_health_report,
    local_day_bounds,
    open_state_readonly,
    sync_health,
)
from mvg_sync.reports.tickets import build_tickets_report, compute_ticket_report, ticket_state
from mvg_sync.timeutil import STOCKHOLM

DATASETS = ("bookings", "booking_bases", "events", "slots", "units", "care_services")


class MissingInput(RuntimeError):
    """The state store lacks what the reports need; the message names it."""


@dataclass(frozen=True)
class ReportPeriod:
    """Registration period (reports 1 and 4), booking/monitoring-date period, HSL period."""

    registered_from: date
    registered_to: date
    booked_from: date | None = None
    booked_to: date | None = None
    hsl_from: date | None = None
    hsl_to: date | None = None

    def __post_init__(self) -> None:
        if self.registered_from > self.registered_to:
            raise ValueError(f"--from {self.registered_from} is after --to {self.registered_to}")
        if self.booked_from and self.booked_to and self.booked_from > self.booked_to:
            raise ValueError(f"--booked-from {self.booked_from} is after --booked-to {self.booked_to}")


def default_period(as_of: datetime, kind: str = "yesterday") -> ReportPeriod:
    """`yesterday`: the local day before `as_of`; `last_week`: the ISO week (Mon-Sun) before it."""
    today = as_of.astimezone(STOCKHOLM).date()
    if kind == "yesterday":
        day = today - timedelta(days=1)
        return ReportPeriod(day, day)
    if kind == "last_week":
        monday = today - timedelta(days=today.weekday() + 7)
        return ReportPeriod(monday, monday + timedelta(days=6))
    raise ValueError(f"unknown period {kind!r}: use 'yesterday' or 'last_week'")


def load_datasets(state_dir: Path) -> dict[str, pl.DataFrame]:
    """The latest accepted snapshot of every dataset; `MissingInput` names what is absent."""
    from mvg_sync import store
    from mvg_sync.store.drops import load_snapshot

    if not store.exists(state_dir):  # the file, or the schema on PostgreSQL (issue 15)
        raise MissingInput(f"no state store in {state_dir}: no drop has been ingested yet "
                           "(run `mvg-sync sync` first)")
    frames = {name: load_snapshot(state_dir, name) for name in DATASETS}
    missing = [name for name, frame in frames.items() if frame is None]
    if missing:
        raise MissingInput(f"no accepted drop yet with {', '.join(missing)} in {state_dir}")
    return frames  # type: ignore[return-value]


def build_control_reports(
    state_dir: Path,
    datasets: Mapping[str, pl.DataFrame],
    *,
    as_of: datetime,
    period: ReportPeriod,
    unit: str | None = None,
    timings: dict[str, float] | None = None,
) -> list[Report]:
    """Reports 1-4 in order (eservice, hsl_coverage, tickets, sync_health)."""
    clock = time.perf_counter
    started = clock()
    eservice, hsl = eservice_and_hsl_reports(
        datasets, as_of=as_of, registered_from=period.registered_from,
        registered_to=period.registered_to, booked_from=period.booked_from,
        booked_to=period.booked_to, unit=unit, hsl_from=period.hsl_from, hsl_to=period.hsl_to,
    )
    built_12 = clock()
    with open_state_readonly(state_dir) as con:
        record, issues, locations = ticket_state(con)
        start, end = local_day_bounds(period.registered_from, period.registered_to)
        health = sync_health(con, start=start, end=end)
    result, units_known = compute_ticket_report(
        datasets, record, issues, locations, as_of=as_of, unit=unit,
        monitoring_from=period.booked_from, monitoring_to=period.booked_to,
    )
    tickets = build_tickets_report(
        result, as_of=as_of, units_known=units_known, unit=unit,
        monitoring_from=period.booked_from, monitoring_to=period.booked_to, generated_at=as_of,
    )
    built_3 = clock()
    health_report = build_sync_health_report(health, datasets=datasets, generated_at=as_of)
    if timings is not None:
        timings["build eservice+hsl_coverage"] = built_12 - started
        timings["read state; build tickets; sync-health queries"] = built_3 - built_12
        timings["build sync_health"] = clock() - built_3
    return [eservice, hsl, tickets, health_report]


def _date(value: str | None, flag: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{flag} {value!r} is not a date (YYYY-MM-DD)") from None


def period_from_args(args: argparse.Namespace, as_of: datetime) -> ReportPeriod:
    """`--from/--to` default to yesterday (local date of as_of - 1 day); HSL = registration period,
    from today on when the period reaches today.

    The slot extract holds today onwards (R20): a day before it has no slots in the snapshot,
    so a period running into today starts its HSL coverage today rather than list every unit
    as non-compliant on the days before (found with the demo run at night, whose e-service
    period began the day before). A period wholly in the past keeps its days, as before.
    """
    yesterday = default_period(as_of).registered_from
    today = yesterday + timedelta(days=1)
    date_from = _date(args.date_from, "--from") or yesterday
    date_to = _date(args.date_to, "--to") or max(yesterday, date_from)
    return ReportPeriod(
        registered_from=date_from, registered_to=date_to,
        booked_from=_date(args.booked_from, "--booked-from"),
        booked_to=_date(args.booked_to, "--booked-to"),
        hsl_from=max(date_from, today) if date_to >= today else date_from, hsl_to=date_to,
    )


def main(args: argparse.Namespace) -> int:
    """Write all four reports; print each file written. Exit 0, or 1 with what is missing."""
    from mvg_sync.settings import load_settings
    from mvg_sync.timeutil import resolve_as_of

    try:
        settings = load_settings()
        as_of = resolve_as_of(args.as_of)
        period = period_from_args(args, as_of)
        out = Path(args.out) if args.out else settings.report_dir
        datasets = load_datasets(settings.state_dir)
        reports = build_control_reports(settings.state_dir, datasets, as_of=as_of,
                                        period=period, unit=args.unit)
        paths = write_reports(reports, out, pseudonymised=bool(args.pseudonymise))
    except (MissingInput, ValueError, FileNotFoundError) as exc:
        sys.stderr.write(f"mvg-sync report: {exc}\n")
        return 1
    # The command's output: the files written, one per line (paths only, no data).
    sys.stdout.write("".join(f"{path}\n" for path in paths))
    return 0


def build_hsl_outlook(
    datasets: Mapping[str, pl.DataFrame], *, as_of: datetime, days: int = 14
) -> Report:
    """Report 2 alone for the days ahead: the local date of `as_of` and the next `days - 1`.

    The daily HSL run comes after the 07:00 release (R21), when today's unbooked slots have
    just gone to the units, so it looks forward: what patients can still book.
    """
    from mvg_sync.reports.hsl import build_hsl_report
    from mvg_sync.rules.hsl import hsl_coverage

    today = as_of.astimezone(STOCKHOLM).date()
    last = today + timedelta(days=days - 1)
    result = hsl_coverage(datasets["slots"], datasets["units"], date_from=today, date_to=last,
                          as_of=as_of)
    return build_hsl_report(result, date_from=today, date_to=last, as_of=as_of, generated_at=as_of)
