"""Reconciliation: compare Clinic24's appointments with the integration's record (issue 4).

Drift is never patched by writing to Clinic24 directly. Instead the record is corrected to
what Clinic24 really holds (content hash cleared), so the next ordinary sync plans the
changes that bring Clinic24 back to Cosmic's truth — through the outbox, the guard and the
same settlement as every other change.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from mvg_sync import store
from mvg_sync.clinic24.client import Clinic24Client
from mvg_sync.settings import Settings
from mvg_sync.store import outbox, plan_reads
from mvg_sync.store.types import ResourceType
from mvg_sync.timeutil import STOCKHOLM, utc_now

log = logging.getLogger(__name__)
BOOKING_SYSTEM = "urn:cosmic:gavleborg:booking"

SEEN_SCHEMA = {"key": pl.Utf8, "seen_status": pl.Utf8, "seen_start_at": pl.Datetime("us", "UTC"), "seen_unit": pl.Utf8}


@dataclass
class Drift:
    """Differences between Clinic24 and the record, one frame per kind (keys only)."""

    missing_in_clinic24: list[str] = field(default_factory=list)
    unknown_to_record: list[str] = field(default_factory=list)
    status_differs: list[str] = field(default_factory=list)
    start_differs: list[str] = field(default_factory=list)
    units_checked: int = 0

    @property
    def has_drift(self) -> bool:
        return bool(self.missing_in_clinic24 or self.unknown_to_record or self.status_differs or self.start_differs)

    def summary(self) -> dict:
        return {
            "units_checked": self.units_checked,
            "missing_in_clinic24": len(self.missing_in_clinic24),
            "unknown_to_record": len(self.unknown_to_record),
            "status_differs": len(self.status_differs),
            "start_differs": len(self.start_differs),
        }


def seen_in_clinic24(appointments: list[dict]) -> pl.DataFrame:
    """Key, status, start and unit of Clinic24 appointments as read back."""
    rows = []
    for resource in appointments:
        key = next((i["value"] for i in resource.get("identifier", []) if i.get("system") == BOOKING_SYSTEM), None)
        unit = next(
            (p["actor"]["identifier"]["value"] for p in resource.get("participant", [])
             if p.get("actor", {}).get("type") == "Location"),
            None,
        )
        start = datetime.fromisoformat(resource["start"]) if resource.get("start") else None
        rows.append({"key": key, "seen_status": resource.get("status"), "seen_start_at": start, "seen_unit": unit})
    return pl.DataFrame(rows, schema=SEEN_SCHEMA)


def compare(record: pl.DataFrame, seen: pl.DataFrame) -> Drift:
    """Pure comparison of the record with what Clinic24 returned for the same units and dates."""
    joined = record.join(seen, on="key", how="full", coalesce=True)
    missing = joined.filter(pl.col("seen_status").is_null()).get_column("key").to_list()
    unknown = joined.filter(pl.col("status").is_null()).get_column("key").to_list()
    both = joined.filter(pl.col("status").is_not_null() & pl.col("seen_status").is_not_null())
    return Drift(
        missing_in_clinic24=sorted(missing),
        unknown_to_record=sorted(unknown),
        status_differs=sorted(both.filter(pl.col("status") != pl.col("seen_status")).get_column("key").to_list()),
        start_differs=sorted(both.filter(pl.col("start_at") != pl.col("seen_start_at")).get_column("key").to_list()),
    )


def run_reconcile(settings: Settings) -> Drift:
    """Read Clinic24 per unit over the record's date range, compare, and correct the record."""
    with plan_reads.open_state(settings.state_dir) as con:
        record = outbox.load_record(con, ResourceType.APPOINTMENT, ("key", "status", "start_at", "unit_hsa_id"))
    if record.height == 0:
        return Drift()
    first = record.get_column("start_at").min().astimezone(STOCKHOLM).date()
    last = record.get_column("start_at").max().astimezone(STOCKHOLM).date()
    units = sorted(record.get_column("unit_hsa_id").drop_nulls().unique().to_list())
    client_id, secret = settings.clinic24_credentials()
    with Clinic24Client(settings.clinic24_base_url, client_id, secret) as client:
        seen = pl.concat(
            [seen_in_clinic24(client.search_appointments(unit, first, last)) for unit in units],
            how="vertical",
        )
    drift = compare(record.select("key", "status", "start_at"), seen.select("key", "seen_status", "seen_start_at"))
    drift.units_checked = len(units)
    if drift.has_drift:
        _correct_record(settings, record, seen, drift)
        log.info("Reconciliation found drift: %s", drift.summary())  # the command prints the summary
    return drift


def _correct_record(settings: Settings, record: pl.DataFrame, seen: pl.DataFrame, drift: Drift) -> None:
    """Make the record say what Clinic24 holds, with no content hash, so the next plan repairs it."""
    touched = drift.unknown_to_record + drift.status_differs + drift.start_differs
    with store.connect(settings.state_dir) as con:
        outbox.correct_record(
            con, missing=drift.missing_in_clinic24, seen=seen.filter(pl.col("key").is_in(touched)), now=utc_now())
