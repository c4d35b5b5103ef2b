"""Report 4: sync health from the state store (drops, changes, R11 latency, quarantine, holds, dead letters).

Aggregates only: no patient data, so the files are readable by others (0644). Every query
binds its values as parameters. Periods are half-open UTC intervals [start, end).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl

from mvg_sync import store
from mvg_sync.reports.model import Chart, Report, View
from mvg_sync.state import STATE_FILE
from mvg_sync.store.queries import R11_TARGET_S, r11_latency
from mvg_sync.timeutil import STOCKHOLM

CSV_COLUMNS = ("section", "key", "measure", "value")

_DROPS_SQL = """
SELECT outcome, count(*)::BIGINT AS drops
FROM drops WHERE processed_at >= $start AND processed_at < $end
GROUP BY outcome ORDER BY outcome
"""
_GAPS_SQL = """
SELECT after_sequence, before_sequence, missing, detected_at
FROM sequence_gaps WHERE detected_at >= $start AND detected_at < $end
ORDER BY detected_at, after_sequence
"""
_CHANGES_SQL = """
SELECT resource_type, change_kind, status, count(*)::BIGINT AS changes
FROM outbox WHERE created_at >= $start AND created_at < $end
GROUP BY ALL ORDER BY ALL
"""
_LATENCY_DAILY_SQL = """
SELECT CAST(timezone($tz, settled_at) AS DATE) AS day, count(*)::BIGINT AS accepted,
       quantile_cont(epoch(settled_at) - epoch(extracted_at), 0.95) AS p95_s
FROM outbox
WHERE status = 'done' AND last_outcome = 'accepted' AND extracted_at IS NOT NULL
  AND settled_at >= $start AND settled_at < $end AND settled_at >= extracted_at
GROUP BY day ORDER BY day
"""
_QUARANTINE_SQL = """
SELECT coalesce(file, '(hela leveransen)') AS file, rule, reason, count(*)::BIGINT AS rows_quarantined,
       count(DISTINCT extract_id)::BIGINT AS drops
FROM quarantine WHERE quarantined_at >= $start AND quarantined_at < $end
GROUP BY ALL ORDER BY rows_quarantined DESC, file, rule, reason
"""
_HOLDS_SQL = """
SELECT resource_type, rule, reason, count(*)::BIGINT AS held, min(since) AS oldest_since
FROM holds GROUP BY resource_type, rule, reason ORDER BY held DESC, resource_type, rule, reason
"""
_DEAD_SQL = """
SELECT resource_type, change_kind, coalesce(reason, '') AS reason, count(*)::BIGINT AS dead
FROM outbox WHERE status = 'dead' GROUP BY ALL ORDER BY dead DESC, resource_type, change_kind, reason
"""
_DEPARTURES_SQL = """
SELECT unit_hsa_id, count(*)::BIGINT AS bookings, min(noted_at) AS noted_at
FROM unit_departures GROUP BY unit_hsa_id ORDER BY bookings DESC, unit_hsa_id
"""
_APPROVALS_SQL = """
SELECT extract_id, cancels, live, reason, held_at FROM approvals WHERE status = 'held' ORDER BY extract_id
"""

# Tables each query needs; a state store without the sync's tables (no sync yet) reads as empty.
_QUERIES: dict[str, tuple[str, tuple[str, ...], dict[str, pl.DataType]]] = {
    "drops": (_DROPS_SQL, ("drops",), {"outcome": pl.String(), "drops": pl.Int64()}),
    "gaps": (_GAPS_SQL, ("sequence_gaps",), {
        "after_sequence": pl.Int64(), "before_sequence": pl.Int64(), "missing": pl.Int64(),
        "detected_at": pl.Datetime("us", "UTC")}),
    "changes": (_CHANGES_SQL, ("outbox",), {
        "resource_type": pl.String(), "change_kind": pl.String(), "status": pl.String(),
        "changes": pl.Int64()}),
    "latency_daily": (_LATENCY_DAILY_SQL, ("outbox",), {
        "day": pl.Date(), "accepted": pl.Int64(), "p95_s": pl.Float64()}),
    "quarantine": (_QUARANTINE_SQL, ("quarantine",), {
        "file": pl.String(), "rule": pl.String(), "reason": pl.String(),
        "rows_quarantined": pl.Int64(), "drops": pl.Int64()}),
    "holds": (_HOLDS_SQL, ("holds",), {
        "resource_type": pl.String(), "rule": pl.String(), "reason": pl.String(),
        "held": pl.Int64(), "oldest_since": pl.Datetime("us", "UTC")}),
    "dead_letters": (_DEAD_SQL, ("outbox",), {
        "resource_type": pl.String(), "change_kind": pl.String(), "reason": pl.String(),
        "dead": pl.Int64()}),
    "unit_departures": (_DEPARTURES_SQL, ("unit_departures",), {
        "unit_hsa_id": pl.String(), "bookings": pl.Int64(), "noted_at": pl.Datetime("us", "UTC")}),
    "awaiting_approval": (_APPROVALS_SQL, ("approvals",), {
        "extract_id": pl.String(), "cancels": pl.Int64(), "live": pl.Int64(),
        "reason": pl.String(), "held_at": pl.Datetime("us", "UTC")}),
}


@dataclass(frozen=True)
class SyncHealth:
    """The figures of report 4: `latency` (R11 summary) and one frame per section."""

    period_start: datetime
    period_end: datetime
    latency: dict[str, float | int | None]
    frames: dict[str, pl.DataFrame]


def local_day_bounds(date_from: date, date_to: date) -> tuple[datetime, datetime]:
    """[start of `date_from`, start of the day after `date_to`) in Stockholm time."""
    start = datetime.combine(date_from, datetime.min.time(), tzinfo=STOCKHOLM)
    end = datetime.combine(date_to + timedelta(days=1), datetime.min.time(), tzinfo=STOCKHOLM)
    return start, end


def open_state_readonly(state_dir: Path, *, attempts: int | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only connection (use it with `with`); waits a bounded time while a sync writes.

    `attempts` is kept for callers of the earlier signature; the wait is the store's own
    (mvg_sync.store.READ_WAIT_S), announced on stderr after a second.
    """
    path = state_dir / STATE_FILE
    if not path.exists():
        raise FileNotFoundError(f"no state store at {path}: nothing has been ingested yet")
    return store.connect(state_dir, read_only=True)


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}


def _query(con, sql: str, params: dict, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    frame = con.sql(sql, params=params).pl()
    assert isinstance(frame, pl.DataFrame)
    return frame.select([pl.col(c).cast(t) for c, t in schema.items()])


def sync_health(con: duckdb.DuckDBPyConnection, *, start: datetime, end: datetime) -> SyncHealth:
    """Report 4's figures for the period [start, end) (holds, dead letters, departures and
    approvals are the current state, not the period's)."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("period bounds must be timezone-aware")
    present = _tables(con)
    bounds = {"start": start, "end": end}
    frames: dict[str, pl.DataFrame] = {}
    for name, (sql, needs, schema) in _QUERIES.items():
        if not set(needs) <= present:
            frames[name] = pl.DataFrame(schema=schema)
            continue
        params = {k: v for k, v in {**bounds, "tz": STOCKHOLM.key}.items() if f"${k}" in sql}
        frames[name] = _query(con, sql, params, schema)
    latency: dict[str, float | int | None] = {
        "accepted": 0, "p50_s": None, "p95_s": None, "max_s": None, "share_under_5_min": None,
        "clock_skewed": 0}
    if "outbox" in present:
        latency = r11_latency(con, start=start, end=end)  # the same query as the run summary's
    return SyncHealth(period_start=start, period_end=end, latency=latency, frames=frames)


def health_csv(health: SyncHealth) -> pl.DataFrame:
    """sync_health.csv: one row per section, key and measure (`section,key,measure,value`)."""
    rows: list[dict[str, object]] = [
        {"section": "latency", "key": "R11", "measure": k, "value": v}
        for k, v in health.latency.items()
    ]
    keyed = {
        "drops": (("outcome",), ("drops",)),
        "changes": (("resource_type", "change_kind", "status"), ("changes",)),
        "quarantine": (("file", "rule", "reason"), ("rows_quarantined", "drops")),
        "holds": (("resource_type", "rule", "reason"), ("held",)),
        "dead_letters": (("resource_type", "change_kind", "reason"), ("dead",)),
        "unit_departures": (("unit_hsa_id",), ("bookings",)),
        "awaiting_approval": (("extract_id",), ("cancels", "live")),
    }
    for section, (keys, measures) in keyed.items():
        for rec in health.frames[section].iter_rows(named=True):
            key = "/".join("" if rec[k] is None else str(rec[k]) for k in keys)
            rows += [{"section": section, "key": key, "measure": m, "value": rec[m]}
                     for m in measures]
    gaps = health.frames["gaps"]
    rows.append({"section": "gaps", "key": "sequence", "measure": "missing_drops",
                 "value": int(gaps["missing"].sum()) if gaps.height else 0})
    return pl.DataFrame(rows, schema={"section": pl.String, "key": pl.String,
                                      "measure": pl.String, "value": pl.Float64}, orient="row")


def _overview(health: SyncHealth) -> pl.DataFrame:
    lat = health.latency
    drops = dict(health.frames["drops"].iter_rows())
    p95 = lat["p95_s"]
    rows = [
        ("Leveranser godkända", float(drops.get("accepted", 0))),
        ("Leveranser avvisade", float(drops.get("rejected", 0))),
        ("Leveranser dubbletter/inaktuella", float(drops.get("duplicate", 0) + drops.get("stale", 0))),
        ("Saknade leveranser (sekvensluckor)", float(health.frames["gaps"]["missing"].sum())),
        ("Ändringar accepterade av Clinic24", float(lat["accepted"] or 0)),
        ("Latens p50 (s)", lat["p50_s"]),
        ("Latens p95 (s)", p95),
        ("Latens max (s)", lat["max_s"]),
        ("Andel under 5 min", lat["share_under_5_min"]),
        ("R11 uppfylld (p95 < 300 s)", None if p95 is None else float(p95 < R11_TARGET_S)),
        ("Karantänrader", float(health.frames["quarantine"]["rows_quarantined"].sum())),
        ("Spärrade (holds)", float(health.frames["holds"]["held"].sum())),
        ("Döda ändringar", float(health.frames["dead_letters"]["dead"].sum())),
        ("Bokningar vars enhet lämnat Clinic24", float(health.frames["unit_departures"]["bookings"].sum())),
        ("Leveranser som väntar på godkännande", float(health.frames["awaiting_approval"].height)),
    ]
    return pl.DataFrame(rows, schema={"Mått": pl.String, "Värde": pl.Float64}, orient="row")


def build_sync_health_report(health: SyncHealth, *, generated_at: datetime | None = None) -> Report:
    """Report 4 as a `Report` (Swedish labels)."""
    f = health.frames
    changes_chart = (
        f["changes"].with_columns(kind=pl.format("{} {}", "resource_type", "change_kind"))
        .pivot(on="status", index="kind", values="changes", aggregate_function="sum")
        .fill_null(0).sort("kind")
    )
    series = tuple(c for c in changes_chart.columns if c != "kind") or ("antal",)
    if "antal" in series and "antal" not in changes_chart.columns:
        changes_chart = changes_chart.with_columns(antal=pl.lit(0))
    latency_chart = f["latency_daily"].with_columns(
        target=pl.lit(R11_TARGET_S)).rename({"day": "Dag", "p95_s": "p95 (s)", "target": "Mål R11 (s)"})
    quarantine_chart = (
        f["quarantine"].group_by("rule").agg(pl.col("rows_quarantined").sum())
        .sort("rows_quarantined", descending=True).rename({"rule": "Regel", "rows_quarantined": "Rader"})
    )
    charts = (
        Chart("Ändringar per typ och status", changes_chart, "kind", series, stacked=True,
              horizontal=True, value_label="Antal"),
        Chart("Latens p95 per dag mot R11 (300 s)", latency_chart, "Dag",
              ("p95 (s)", "Mål R11 (s)"), kind="line", value_label="Sekunder"),
        Chart("Karantänrader per regel", quarantine_chart, "Regel", ("Rader",), value_label="Antal"),
    )
    views = (
        View("Översikt", _overview(health), percent_columns=(),
             note="Perioden gäller leveranser, ändringar, latens och karantän; spärrar, döda "
                  "ändringar, enheter och godkännanden är läget nu."),
        View("Leveranser", f["drops"].rename({"outcome": "Utfall", "drops": "Leveranser"})),
        View("Sekvensluckor", f["gaps"].rename({
            "after_sequence": "Efter sekvens", "before_sequence": "Före sekvens",
            "missing": "Saknas", "detected_at": "Upptäckt"})),
        View("Ändringar per typ", f["changes"].rename({
            "resource_type": "Resurs", "change_kind": "Ändring", "status": "Status",
            "changes": "Antal"})),
        View("Latens per dag", f["latency_daily"].rename({
            "day": "Dag", "accepted": "Accepterade", "p95_s": "p95 (s)"}),
             note="Sekunder från Cosmics uttag till Clinic24:s kvittens (R11: p95 under 300 s)."),
        View("Karantän", f["quarantine"].rename({
            "file": "Fil", "rule": "Regel", "reason": "Orsak", "rows_quarantined": "Rader",
            "drops": "Leveranser"}), highlight="Rader"),
        View("Spärrade", f["holds"].rename({
            "resource_type": "Resurs", "rule": "Regel", "reason": "Orsak", "held": "Antal",
            "oldest_since": "Äldsta sedan"}),
             note="Ej skickade, prövas om varje körning (t.ex. R12 vårdnadshavare saknas)."),
        View("Döda ändringar", f["dead_letters"].rename({
            "resource_type": "Resurs", "change_kind": "Ändring", "reason": "Orsak",
            "dead": "Antal"}), note="Skickas om med `mvg-sync redrive`."),
        View("Enhet lämnat Clinic24", f["unit_departures"].rename({
            "unit_hsa_id": "EnhetHSAID", "bookings": "Bokningar", "noted_at": "Noterad"}),
             note="Bokningar som inte synkas eftersom enheten försvunnit ur Clinic24 (R09)."),
        View("Väntar på godkännande", f["awaiting_approval"].rename({
            "extract_id": "Leverans", "cancels": "Avbokningar", "live": "Synkade bokningar",
            "reason": "Orsak", "held_at": "Spärrad"}),
             note="Släpps med `mvg-sync approve <leverans>`."),
    )
    start, end = health.period_start, health.period_end
    facts = (
        ("Period", f"{start.astimezone(STOCKHOLM):%Y-%m-%d} – "
                   f"{(end - timedelta(days=1)).astimezone(STOCKHOLM):%Y-%m-%d}"),
        ("Latens p95 (s)", "–" if health.latency["p95_s"] is None else str(health.latency["p95_s"])),
    )
    return Report(
        name="sync_health",
        title="Synkhälsa Cosmic → Clinic24",
        intro=("Hur integrationen mår: mottagna och avvisade leveranser, ändringar per typ, "
               "latens från uttag i Cosmic till kvittens i Clinic24 mot R11 (p95 under fem "
               "minuter), karantän per fil, regel och orsak, spärrade bokningar, döda ändringar, "
               "bokningar vars enhet lämnat Clinic24 och leveranser som väntar på godkännande."),
        views=views,
        charts=charts,
        csv={"sync_health": health_csv(health)},
        facts=facts,
        generated_at=generated_at,
    )
