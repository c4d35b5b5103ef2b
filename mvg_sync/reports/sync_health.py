"""Report 4: sync health from the state store (drops, changes, R11 latency, quarantine, holds, dead letters).

Aggregates, plus the held bookings listed per unit and rule (R12 first). Built with the
snapshots, that list names the patients and the files are owner-only (0600); without them it
shows ids only and the files are shared (0644). The queries are the store's (store.queries).
Periods are half-open UTC intervals [start, end).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl

from mvg_sync import store
from mvg_sync.reports import held as held_rows
from mvg_sync.reports.labels import (
    CHANGE_KIND,
    DROP_OUTCOME,
    OUTBOX_STATUS,
    QUARANTINE_RULE,
    RESOURCE_TYPE,
    translate_frame,
    translate_reason,
)
from mvg_sync.reports.model import Chart, Report, View
from mvg_sync.store import STATE_FILE, queries
from mvg_sync.store.queries import R11_TARGET_S, r11_latency
from mvg_sync.store.types import Connection
from mvg_sync.timeutil import STOCKHOLM

CSV_COLUMNS = ("section", "key", "measure", "value")

@dataclass(frozen=True)
class SyncHealth:
    """The figures of report 4: `latency` (R11 summary) and one frame per section."""

    period_start: datetime
    period_end: datetime
    latency: dict[str, float | int | None]
    frames: dict[str, pl.DataFrame]

    @property
    def held(self) -> pl.DataFrame:
        """Every held booking and basis now, one row each (`held.HELD_SCHEMA`)."""
        return self.frames["held"]


def local_day_bounds(date_from: date, date_to: date) -> tuple[datetime, datetime]:
    """[start of `date_from`, start of the day after `date_to`) in Stockholm time."""
    start = datetime.combine(date_from, datetime.min.time(), tzinfo=STOCKHOLM)
    end = datetime.combine(date_to + timedelta(days=1), datetime.min.time(), tzinfo=STOCKHOLM)
    return start, end


def open_state_readonly(state_dir: Path, *, attempts: int | None = None) -> Connection:
    """A read-only connection (use it with `with`); waits a bounded time while a sync writes.

    `attempts` is kept for callers of the earlier signature; the wait is the store's own
    (mvg_sync.store.READ_WAIT_S), announced on stderr after a second.
    """
    try:
        return store.connect(state_dir, read_only=True)
    except store.NoStore:  # no file, or no schema on PostgreSQL (issue 15); a FileNotFoundError
        raise store.NoStore(
            f"no state store at {state_dir / STATE_FILE}: nothing has been ingested yet"
        ) from None


def sync_health(con: Connection, *, start: datetime, end: datetime) -> SyncHealth:
    """Report 4's figures for the period [start, end) (holds, dead letters, departures and
    approvals are the current state, not the period's)."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("period bounds must be timezone-aware")
    present = queries.tables(con)
    frames = queries.health_frames(con, start=start, end=end, tz=STOCKHOLM.key, present=present)
    frames["held"] = queries.held_entries(con, present)
    latency: dict[str, float | int | None] = {
        "accepted": 0, "p50_s": None, "p95_s": None, "max_s": None, "share_under_5_min": None,
        "clock_skewed": 0}
    if "outbox" in present:
        latency = r11_latency(con, start=start, end=end)  # the same query as the run summary's
    return SyncHealth(period_start=start, period_end=end, latency=latency, frames=frames)


def _csv_value(value: object) -> str | None:
    # Counts print as `4`, never `4.0`; measured seconds and shares keep their decimals.
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def health_csv(health: SyncHealth) -> pl.DataFrame:
    """sync_health.csv: one row per section, key and measure (`section,key,measure,value`).

    Codes stay English here (the file is for tools); `held_by_unit` keys are `unit/rule`.
    """
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
    by_unit = (health.held.group_by("unit_hsa_id", "rule").len()
               .sort(pl.col("rule") != held_rows.R12, "rule", "unit_hsa_id", nulls_last=True))
    rows += [{"section": "held_by_unit", "key": f"{unit or ''}/{rule}", "measure": "held",
              "value": int(n)} for unit, rule, n in by_unit.iter_rows()]
    gaps = health.frames["gaps"]
    rows.append({"section": "gaps", "key": "sequence", "measure": "missing_drops",
                 "value": int(gaps["missing"].sum()) if gaps.height else 0})
    for row in rows:
        row["value"] = _csv_value(row["value"])
    return pl.DataFrame(rows, schema={"section": pl.String, "key": pl.String,
                                      "measure": pl.String, "value": pl.String}, orient="row")


def _count(frame: pl.DataFrame, column: str) -> int:
    return int(frame[column].sum()) if frame.height else 0


def _overview(health: SyncHealth) -> pl.DataFrame:
    """Counts only (Int64): the latency figures have their own view with their own units."""
    f = health.frames
    drops = {k: int(v) for k, v in f["drops"].iter_rows()}
    held = health.held
    rows = [
        ("Spärrade: behöver primär vårdnadshavare (R12)", held.filter(
            pl.col("rule") == held_rows.R12).height),
        ("Spärrade: övriga regler", held.filter(pl.col("rule") != held_rows.R12).height),
        ("Misslyckade ändringar (väntar på redrive)", _count(f["dead_letters"], "dead")),
        ("Leveranser som väntar på godkännande", f["awaiting_approval"].height),
        ("Leveranser godkända", drops.get("accepted", 0)),
        ("Leveranser avvisade", drops.get("rejected", 0)),
        ("Leveranser dubbletter/inaktuella", drops.get("duplicate", 0) + drops.get("stale", 0)),
        ("Saknade leveranser (sekvensluckor)", _count(f["gaps"], "missing")),
        ("Ändringar accepterade av Clinic24", int(health.latency["accepted"] or 0)),
        ("Karantänrader", _count(f["quarantine"], "rows_quarantined")),
        ("Bokningar vars enhet lämnat Clinic24 (R09)", _count(f["unit_departures"], "bookings")),
    ]
    return pl.DataFrame(rows, schema={"Mått": pl.String, "Antal": pl.Int64}, orient="row")


def _latency(health: SyncHealth) -> pl.DataFrame:
    lat = health.latency
    p95 = lat["p95_s"]
    return pl.DataFrame([{
        "R11 uppfylld (p95 < 300 s)": None if p95 is None else p95 < R11_TARGET_S,
        # tenths of a second: finer is noise against a 300 s target
        "p95 (s)": None if p95 is None else round(p95, 1),
        "p50 (s)": None if lat["p50_s"] is None else round(lat["p50_s"], 1),
        "max (s)": None if lat["max_s"] is None else round(lat["max_s"], 1),
        "Andel under 5 min": lat["share_under_5_min"],
        "Accepterade": int(lat["accepted"] or 0),
        "Före uttaget (klockfel)": int(lat["clock_skewed"] or 0),
    }], schema={"R11 uppfylld (p95 < 300 s)": pl.Boolean, "p95 (s)": pl.Float64,
                "p50 (s)": pl.Float64, "max (s)": pl.Float64, "Andel under 5 min": pl.Float64,
                "Accepterade": pl.Int64, "Före uttaget (klockfel)": pl.Int64})


def _changes_sv(changes: pl.DataFrame) -> pl.DataFrame:
    return translate_frame(changes, {"resource_type": RESOURCE_TYPE, "change_kind": CHANGE_KIND,
                                     "status": OUTBOX_STATUS})


def build_sync_health_report(
    health: SyncHealth,
    *,
    datasets: Mapping[str, pl.DataFrame] | None = None,
    generated_at: datetime | None = None,
) -> Report:
    """Report 4 as a `Report` (Swedish labels, codes and reasons).

    With `datasets` (the latest snapshots) the held list names each booking's patient, unit and
    visit time; without, it shows ids and units only.
    """
    f = health.frames
    changes = _changes_sv(f["changes"])
    statuses = [OUTBOX_STATUS.get(s, s) for s in ("done", "pending", "held", "dead", "superseded")]
    changes_chart = (
        changes.with_columns(kind=pl.format("{}: {}", "resource_type", "change_kind"))
        .pivot(on="status", index="kind", values="changes", aggregate_function="sum")
        .fill_null(0).sort("kind")
    )
    present = [c for c in changes_chart.columns if c != "kind"]
    series = tuple(sorted(present, key=lambda c: statuses.index(c) if c in statuses else 99))
    if not series:
        series = ("Antal",)
        changes_chart = changes_chart.with_columns(Antal=pl.lit(0))
    latency_chart = f["latency_daily"].with_columns(
        target=pl.lit(R11_TARGET_S)).rename({"day": "Dag", "p95_s": "p95 (s)", "target": "Mål R11 (s)"})
    quarantine_chart = (
        f["quarantine"].group_by("rule").agg(pl.col("rows_quarantined").sum())
        .sort("rows_quarantined", descending=True)
        .pipe(translate_frame, {"rule": QUARANTINE_RULE})
        .rename({"rule": "Regel", "rows_quarantined": "Rader"})
    )
    charts = (
        Chart("Ändringar per typ och status", changes_chart, "kind", series, stacked=True,
              horizontal=True, value_label="Antal"),
        Chart("Latens p95 per dag mot R11 (300 s)", latency_chart, "Dag",
              ("p95 (s)", "Mål R11 (s)"), kind="line", value_label="Sekunder"),
        Chart("Karantänrader per regel", quarantine_chart, "Regel", ("Rader",), value_label="Antal"),
    )
    quarantine = translate_frame(f["quarantine"], {"rule": QUARANTINE_RULE, "reason": translate_reason})
    dead = translate_frame(f["dead_letters"], {"resource_type": RESOURCE_TYPE,
                                               "change_kind": CHANGE_KIND, "reason": translate_reason})
    approvals = translate_frame(f["awaiting_approval"], {"reason": translate_reason})
    listing = held_rows.held_listing(health.held, datasets)
    views = (
        View("Översikt", _overview(health),
             note="Perioden gäller leveranser, ändringar, latens och karantän; spärrar, "
                  "misslyckade ändringar, enheter och godkännanden är läget nu."),
        View("Spärrade bokningar", listing,
             note="Skickas inte till Clinic24 förrän orsaken är åtgärdad; prövas om varje "
                  "körning. R12: barnets digitala besök kräver en primär vårdnadshavare "
                  "registrerad i Clinic24 — registrera vårdnadshavaren, så skickas bokningen."),
        View("Spärrade per enhet", held_rows.held_per_unit(health.held, datasets),
             note="Antal spärrade per enhet, regel och orsak; R12 först."),
        View("Misslyckade ändringar", dead.select(
            pl.col("reason").alias("Orsak"), pl.col("dead").alias("Antal"),
            pl.col("resource_type").alias("Resurs"), pl.col("change_kind").alias("Ändring")),
             note="Avvisade av Clinic24; skickas om med `mvg-sync redrive` när orsaken är åtgärdad."),
        View("Väntar på godkännande", approvals.select(
            pl.col("extract_id").alias("Leverans"), pl.col("reason").alias("Orsak"),
            pl.col("cancels").alias("Avbokningar"), pl.col("live").alias("Synkade bokningar"),
            pl.col("held_at").alias("Spärrad")),
             note="Släpps med `mvg-sync approve <leverans>`."),
        View("Latens R11", _latency(health), percent_columns=("Andel under 5 min",),
             highlight=None,
             note="Sekunder från Cosmics uttag till Clinic24:s kvittens (R11: p95 under 300 s)."),
        View("Latens per dag", f["latency_daily"].rename({
            "day": "Dag", "accepted": "Accepterade", "p95_s": "p95 (s)"})),
        View("Leveranser", translate_frame(f["drops"], {"outcome": DROP_OUTCOME}).rename(
            {"outcome": "Utfall", "drops": "Leveranser"})),
        View("Sekvensluckor", f["gaps"].rename({
            "after_sequence": "Efter sekvens", "before_sequence": "Före sekvens",
            "missing": "Saknas", "detected_at": "Upptäckt"}),
             id_columns=("Efter sekvens", "Före sekvens")),
        View("Ändringar per typ", changes.select(
            pl.col("resource_type").alias("Resurs"), pl.col("change_kind").alias("Ändring"),
            pl.col("status").alias("Status"), pl.col("changes").alias("Antal"))),
        View("Karantän", quarantine.select(
            pl.col("file").alias("Fil"), pl.col("rule").alias("Regel"),
            pl.col("reason").alias("Orsak"), pl.col("rows_quarantined").alias("Rader"),
            pl.col("drops").alias("Leveranser")), highlight="Rader"),
        View("Enhet lämnat Clinic24", f["unit_departures"].rename({
            "unit_hsa_id": "EnhetHSAID", "bookings": "Bokningar", "noted_at": "Noterad"}),
             note="Bokningar som inte synkas eftersom enheten försvunnit ur Clinic24 (R09)."),
    )
    start, end = health.period_start, health.period_end
    p95 = health.latency["p95_s"]
    facts = (
        ("Period", f"{start.astimezone(STOCKHOLM):%Y-%m-%d} – "
                   f"{(end - timedelta(days=1)).astimezone(STOCKHOLM):%Y-%m-%d}"),
        ("Spärrade bokningar", str(health.held.height)),
        ("Latens p95 (s)", "–" if p95 is None else f"{p95:.1f}".replace(".", ",")),
    )
    return Report(
        name="sync_health",
        title="Synkhälsa Cosmic → Clinic24",
        intro=("Hur integrationen mår: spärrade bokningar per enhet och regel (R12 först), "
               "misslyckade ändringar, leveranser som väntar på godkännande, latens från uttag i "
               "Cosmic till kvittens i Clinic24 mot R11 (p95 under fem minuter), mottagna och "
               "avvisade leveranser, ändringar per typ, karantän per fil, regel och orsak och "
               "bokningar vars enhet lämnat Clinic24."),
        views=views,
        charts=charts,
        csv={"sync_health": health_csv(health)},
        facts=facts,
        generated_at=generated_at,
        patient_id_columns=held_rows.PATIENT_ID,
        patient_name_columns=held_rows.PATIENT_NAME,
        lead_views=3,  # overview and the held list before the operational charts
    )
