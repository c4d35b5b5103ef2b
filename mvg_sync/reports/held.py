"""Held bookings and booking bases per unit and rule, R12 first, for the sync-health report.

R12 says a child's digital visit without a primary guardian is held and "listed for the unit":
this is that list, with every other hold (R02, R05, R15, R17, R18) after it. The ids come from
the state store; personnummer and name are joined from the latest snapshot, so only the files
written for unit managers (0600) name the patient.
"""

from __future__ import annotations

from collections.abc import Mapping

import duckdb
import polars as pl

from mvg_sync.reports.format import display_patient_id
from mvg_sync.reports.labels import RESOURCE_TYPE, translate_frame, translate_reason

APPOINTMENT = "Appointment"
SERVICE_REQUEST = "ServiceRequest"
R12 = "R12"

HELD_SCHEMA: dict[str, pl.DataType] = {
    "resource_type": pl.String(), "key": pl.String(), "unit_hsa_id": pl.String(),
    "rule": pl.String(), "reason": pl.String(), "since": pl.Datetime("us", "UTC"),
}

# The holds table is re-planned every run (store.replace_holds). An outbox entry settled `held`
# is the other kind: Clinic24 refused the visit itself with `primary-guardian-missing`
# (sync.push.classify holds an entry for that answer only), so its rule is R12 whatever rule
# planned the change; the outbox `rule` column names the planning rule (R06, R07 …), not the hold.
_HELD_SQL = """
WITH outbox_held AS (
    SELECT resource_type, key, target_unit AS unit_hsa_id, $r12 AS rule,
           coalesce(reason, '') AS reason, coalesce(settled_at, created_at) AS since
    FROM outbox WHERE status = 'held'
    QUALIFY row_number() OVER (PARTITION BY resource_type, key ORDER BY created_at DESC) = 1
)
SELECT resource_type, key, unit_hsa_id, rule, reason, since FROM holds
UNION ALL
SELECT o.* FROM outbox_held o
WHERE NOT EXISTS (SELECT 1 FROM holds h WHERE h.resource_type = o.resource_type AND h.key = o.key)
"""

# Internal names -> Swedish labels, in the order a manager acts on them: rule and reason, the
# unit, which booking, when, who; the ids last.
LISTING_LABELS = {
    "rule": "Regel",
    "reason_sv": "Orsak",
    "unit_name": "Enhet",
    "kind": "Typ",
    "key": "ID",  # BokningsID for a booking, UnderlagsID for a ticket's basis (see Typ)
    "start_at": "Besökstid",
    "patient_id": "Personnummer",
    "patient_name": "Namn",
    "care_service": "Vårdtjänst",
    "monitoring_date": "Bevakningsdatum",
    "since": "Spärrad sedan",
    "unit_hsa_id": "EnhetHSAID",
}
PER_UNIT_LABELS = {
    "unit_name": "Enhet",
    "rule": "Regel",
    "reason_sv": "Orsak",
    "held": "Antal",
    "oldest_since": "Äldsta sedan",
    "unit_hsa_id": "EnhetHSAID",
}
PATIENT_ID = frozenset({LISTING_LABELS["patient_id"]})
PATIENT_NAME = frozenset({LISTING_LABELS["patient_name"]})


def held_entries(con: duckdb.DuckDBPyConnection, present: set[str]) -> pl.DataFrame:
    """Every held booking and basis now: one row per (resource_type, key), `HELD_SCHEMA`."""
    if not {"holds", "outbox"} <= present:
        return pl.DataFrame(schema=HELD_SCHEMA)
    frame = con.sql(_HELD_SQL, params={"r12": R12}).pl()
    assert isinstance(frame, pl.DataFrame)
    return frame.select([pl.col(c).cast(t) for c, t in HELD_SCHEMA.items()])


def _without_own_rule(frame: pl.DataFrame) -> pl.DataFrame:
    # The rule id stands in its own column beside the reason: `R12: behöver …` would say it twice.
    # A reason naming further rules (`R17: …; R18: …`) is kept whole.
    prefix = pl.concat_str(pl.col("rule"), pl.lit(": "))
    single = pl.col("reason_sv").str.starts_with(prefix) & ~pl.col("reason_sv").str.contains("; ", literal=True)
    return frame.with_columns(
        pl.when(single).then(pl.col("reason_sv").str.slice(pl.col("rule").str.len_chars() + 2))
        .otherwise(pl.col("reason_sv")).alias("reason_sv"))


def _rule_order() -> list[pl.Expr]:
    # R12 first (the list R12 asks for), then the other rules in id order.
    return [pl.col("rule") != R12, pl.col("rule")]


def _details(held: pl.DataFrame, datasets: Mapping[str, pl.DataFrame] | None) -> pl.DataFrame:
    """`held` with the booking's or basis's patient, care service and date from the snapshots."""
    detail_schema = {"start_at": pl.Datetime("us", "UTC"), "monitoring_date": pl.Date(),
                     "patient_id": pl.String(), "patient_name": pl.String(),
                     "care_service": pl.String(), "snapshot_unit": pl.String()}
    parts = []
    sources = {APPOINTMENT: ("bookings", "booking_id", "start_at"),
               SERVICE_REQUEST: ("booking_bases", "basis_id", "monitoring_date")}
    for resource_type, (dataset, id_col, date_col) in sources.items():
        rows = held.filter(pl.col("resource_type") == resource_type)
        source = (datasets or {}).get(dataset)
        if source is None or rows.height == 0:
            parts.append(rows.with_columns(
                [pl.lit(None, dtype=t).alias(c) for c, t in detail_schema.items()]))
            continue
        wanted = [pl.col(id_col).alias("key")]
        for name in ("start_at", "monitoring_date"):
            wanted.append(pl.col(name) if name == date_col else
                          pl.lit(None, dtype=detail_schema[name]).alias(name))
        wanted += [pl.col("patient_id"), pl.col("patient_name"), pl.col("care_service"),
                   pl.col("unit_hsa_id").alias("snapshot_unit")]
        found = source.lazy().select(wanted).unique("key").collect()
        found = found.cast({c: t for c, t in detail_schema.items() if c in found.columns})
        parts.append(rows.join(found, on="key", how="left"))
    return pl.concat(parts, how="vertical") if parts else held


def _unit_names(datasets: Mapping[str, pl.DataFrame] | None) -> pl.DataFrame:
    units = (datasets or {}).get("units")
    if units is None:
        return pl.DataFrame(schema={"unit_hsa_id": pl.String, "unit_name": pl.String})
    return units.lazy().select("unit_hsa_id", "unit_name").unique("unit_hsa_id").collect()


def held_listing(held: pl.DataFrame, datasets: Mapping[str, pl.DataFrame] | None) -> pl.DataFrame:
    """One row per held booking or basis, Swedish labels, R12 first, then rule, unit, time.

    Without `datasets` the personnummer and name columns are absent (ids only).
    """
    frame = (
        _details(held, datasets)
        .with_columns(pl.coalesce("unit_hsa_id", "snapshot_unit").alias("unit_hsa_id"))
        .join(_unit_names(datasets), on="unit_hsa_id", how="left")
        .with_columns(
            pl.coalesce("unit_name", "unit_hsa_id").alias("unit_name"),
            display_patient_id("patient_id").alias("patient_id"),
            pl.col("reason").alias("reason_sv"),
            pl.col("resource_type").alias("kind"),
        )
    )
    frame = _without_own_rule(translate_frame(frame, {"reason_sv": translate_reason,
                                                      "kind": RESOURCE_TYPE}))
    frame = frame.sort([*_rule_order(), "unit_name", "start_at", "monitoring_date", "key"],
                       nulls_last=True)
    labels = dict(LISTING_LABELS)
    if datasets is None:
        labels.pop("patient_id")
        labels.pop("patient_name")
    return frame.select(list(labels)).rename(labels)


def held_per_unit(held: pl.DataFrame, datasets: Mapping[str, pl.DataFrame] | None) -> pl.DataFrame:
    """Counts per unit, rule and reason (Swedish), R12 first."""
    frame = (
        held.join(_unit_names(datasets), on="unit_hsa_id", how="left")
        .with_columns(pl.coalesce("unit_name", "unit_hsa_id").alias("unit_name"))
        .group_by("unit_hsa_id", "unit_name", "rule", "reason")
        .agg(pl.len().cast(pl.Int64).alias("held"), pl.col("since").min().alias("oldest_since"))
        .with_columns(pl.col("reason").alias("reason_sv"))
    )
    frame = _without_own_rule(translate_frame(frame, {"reason_sv": translate_reason}))
    return (
        frame.sort([*_rule_order(), "unit_name", "reason"], nulls_last=True)
        .select(list(PER_UNIT_LABELS)).rename(PER_UNIT_LABELS)
    )
