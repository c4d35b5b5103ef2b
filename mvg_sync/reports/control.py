"""Reports 1 and 2 from normalised snapshots to files: compute, build, optionally pseudonymise, write."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path

import polars as pl

from mvg_sync.reports.eservice import build_eservice_report
from mvg_sync.reports.hsl import build_hsl_report
from mvg_sync.reports.model import Report, pseudonymise
from mvg_sync.reports.write import write_report
from mvg_sync.rules.eservice import eservice_report
from mvg_sync.rules.hsl import hsl_coverage

Frame = pl.DataFrame | pl.LazyFrame


def eservice_and_hsl_reports(
    datasets: Mapping[str, Frame],
    *,
    as_of: datetime,
    registered_from: date,
    registered_to: date,
    booked_from: date | None = None,
    booked_to: date | None = None,
    unit: str | None = None,
    hsl_from: date | None = None,
    hsl_to: date | None = None,
) -> list[Report]:
    """Reports 1 and 2 as `Report` objects.

    `datasets` holds the normalised snapshots by design.md name (`events`, `booking_bases`,
    `care_services`, `slots`, `units`). The HSL period defaults to the registration period.
    """
    es = eservice_report(
        datasets["events"], datasets["care_services"], datasets["booking_bases"],
        registered_from=registered_from, registered_to=registered_to,
        booked_from=booked_from, booked_to=booked_to, unit=unit,
    )
    slots, units = datasets["slots"], datasets["units"]
    if unit is not None:
        slots = slots.lazy().filter(pl.col("unit_hsa_id") == unit)
        units = units.lazy().filter(pl.col("unit_hsa_id") == unit)
    hsl_from = hsl_from or registered_from
    hsl_to = hsl_to or registered_to
    hsl = hsl_coverage(slots, units, date_from=hsl_from, date_to=hsl_to, as_of=as_of)
    return [
        build_eservice_report(es, registered_from=registered_from, registered_to=registered_to,
                              booked_from=booked_from, booked_to=booked_to, unit=unit,
                              generated_at=as_of),
        build_hsl_report(hsl, date_from=hsl_from, date_to=hsl_to, as_of=as_of, unit=unit,
                         generated_at=as_of),
    ]


def write_reports(reports: list[Report], out_dir: str | Path, *,
                  pseudonymised: bool = False) -> list[Path]:
    """Write each report (pseudonymised when asked) and return every path written."""
    paths: list[Path] = []
    for report in reports:
        paths += write_report(pseudonymise(report) if pseudonymised else report, out_dir)
    return paths
