"""`mvg-sync status`: what waits, what is held (by rule and unit) and the last failure, as text or JSON.

Issue 11.7: plain aligned text within 100 columns (no Markdown), R12 once, holds with their
booking ids, and `--json` for scripts. Ids only: booking and basis ids, HSA ids, extract
ids; never a name or personnummer (reasons are the sync's own, code-like texts).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from mvg_sync import store
from mvg_sync.ingest.status import _landing_state
from mvg_sync.store import drops, queries
from mvg_sync.store.types import HeldKey, OutboxStatus, RunRow
from mvg_sync.timeutil import STOCKHOLM, utc_now

WIDTH = 100
IDS_SHOWN = 5


def collect(state_dir: Path, landing_dir: Path) -> dict:
    """Everything `status` shows, as plain data (the `--json` output)."""
    now = utc_now()
    out: dict = {"state_dir": str(state_dir), "landing_dir": str(landing_dir)}
    known: set[str] = set()
    out["has_store"] = store.exists(state_dir)  # the file, or the schema on PostgreSQL (issue 15)
    if not out["has_store"]:
        out.update(drops={}, recent_drops=[], quarantine=[], awaiting_approval=[], holds=[], outbox=[],
                   last_run=None, last_failure=None, unit_left_clinic24=0, snapshots={})
    else:
        # the one opener: bounded waits while a sync holds the store, saying so (mvg_sync.store);
        # it upgrades the store, so every table of the current schema is there
        with store.connect(state_dir, read_only=True) as con:
            known = drops.processed_drop_ids(con)
            out["drops"] = {str(o): n for o, n in drops.drop_totals(con).items()}
            out["recent_drops"] = [
                {"extract_id": d.extract_id, "sequence": d.sequence, "outcome": str(d.outcome), "reason": d.reason}
                for d in drops.recent_drops(con, 5)
            ]
            out["snapshots"] = {p.dataset: p.extract_id for p in drops.pointers(con)}
            out["quarantine"] = [
                {"file": q.file, "rule": q.rule, "reason": q.reason, "rows": q.rows}
                for q in drops.quarantine_counts(con, 20)
            ]
            out["awaiting_approval"] = [
                {"extract_id": a.extract_id, "cancels": a.cancels, "live": a.live, "reason": a.reason}
                for a in queries.awaiting_approval(con)
            ]
            out["holds"] = _holds(queries.held_keys(con))
            out["outbox"] = [
                {"status": str(o.status), "resource_type": str(o.resource_type), "reason": o.reason, "count": o.count}
                for o in queries.outbox_counts(con, (OutboxStatus.PENDING, OutboxStatus.DEAD))
            ]
            out["unit_left_clinic24"] = queries.departed_count(con)
            out["last_run"] = _run(queries.last_run(con))
            out["last_failure"] = _run(queries.last_run(con, outcome="failed"))
    waiting = sorted(
        (p.name, _landing_state(p, now)) for p in landing_dir.iterdir() if p.is_dir() and p.name not in known
    ) if landing_dir.is_dir() else []
    out["landing"] = {
        "pending": [n for n, what in waiting if what == "pending"],
        "being_written": [n for n, what in waiting if what != "pending"],
    }
    return out


def _run(run: RunRow | None) -> dict | None:
    if run is None:
        return None
    return {"finished_at": run.finished_at.isoformat(), "outcome": run.outcome, "cause": run.cause}


def _holds(held: list[HeldKey]) -> list[dict]:
    """Held bookings and tickets by rule and unit, R12 first and once, with their ids.

    R12 is reached two ways (a guardian lookup before the push, or Clinic24 refusing the
    visit on the push); both carry rule R12 in the store, so they are one rule here, each
    booking counted once.
    """
    groups: dict[tuple, dict] = {}
    for h in held:
        unit = h.unit_hsa_id or "-"
        group = groups.setdefault((h.rule, unit, str(h.resource_type)), {
            "rule": h.rule, "unit_hsa_id": unit, "resource_type": str(h.resource_type), "reasons": set(),
            "ids": set()})
        group["ids"].add(h.key)
        group["reasons"].add(h.reason)
    ordered = sorted(groups.values(), key=lambda g: (g["rule"] != "R12", g["rule"], g["unit_hsa_id"]))
    return [
        {**g, "count": len(g["ids"]), "ids": sorted(g["ids"]), "reasons": sorted(g["reasons"])} for g in ordered
    ]


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(header: tuple[str, ...], rows: list[tuple], indent: str = "  ") -> list[str]:
    """Columns aligned, the last one cut so no line passes WIDTH."""
    cells = [tuple(str(c) for c in row) for row in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header) - 1)]
    lines = []
    for row in cells:
        head = "  ".join(c.ljust(w) for c, w in zip(row[:-1], widths, strict=False))
        line = indent + (head + "  " if head else "") + row[-1]
        lines.append(_fit(line.rstrip(), WIDTH))
    return lines


def _local(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(STOCKHOLM).strftime("%Y-%m-%d %H:%M")


def render(data: dict) -> str:
    """The status as plain text, every line at most WIDTH columns."""
    lines: list[str] = []
    landing = data["landing"]
    lines.append(f"Landing   {data['landing_dir']}: {len(landing['pending'])} drops pending, "
                 f"{len(landing['being_written'])} being written")
    for name in landing["pending"][:IDS_SHOWN]:
        lines.append(f"  {name}")
    if not data.get("has_store", True):
        lines.append(f"State     no state yet at {data['state_dir']} (no sync has run with this MVG_STATE_DIR)")
    drops = data["drops"]
    lines.append("Drops     " + (", ".join(f"{n} {o}" for o, n in drops.items()) or "none processed yet"))
    lines += _table(("extract id", "seq", "outcome", "reason"), [
        (d["extract_id"], d["sequence"] if d["sequence"] is not None else "-", d["outcome"], d["reason"] or "")
        for d in data["recent_drops"]
    ]) if data["recent_drops"] else []
    last, failure = data["last_run"], data["last_failure"]
    lines.append("Last sync " + (f"{_local(last['finished_at'])} {last['outcome']}" if last else "none yet"))
    if failure:
        lines.append(_fit(f"Last failure {_local(failure['finished_at'])}: {failure['cause'] or 'see the run log'}",
                          WIDTH))
    if data["awaiting_approval"]:
        lines.append("Awaiting approval (mass-cancellation guard):")
        for a in data["awaiting_approval"]:
            lines.append(_fit(f"  {a['extract_id']}: {a['cancels']} cancels of {a['live']} live", WIDTH))
            lines.append(f"    release with: mvg-sync approve {a['extract_id']}")
    holds = data["holds"]
    total = sum(h["count"] for h in holds)
    lines.append(f"Held      {total} (not pushed; re-checked every run)" if holds else "Held      none")
    for h in holds:
        shown = ", ".join(h["ids"][:IDS_SHOWN]) + (f" +{h['count'] - IDS_SHOWN} more" if h["count"] > IDS_SHOWN else "")
        kind = "tickets" if h["resource_type"] == "ServiceRequest" else "bookings"
        lines.append(_fit(f"  {h['rule']:<7} {h['unit_hsa_id']:<20} {h['count']:>6} {kind:<8}  {shown}", WIDTH))
        if h["rule"] != "R12":
            lines.append(_fit(f"          {'; '.join(h['reasons'])}", WIDTH))
    if any(h["rule"] == "R12" for h in holds):  # said once, not on every unit's line
        lines.append("  (R12 = a child's digital visit waits for a primary guardian in Clinic24: "
                     "needs-primary-guardian)")
    outbox = data["outbox"]
    lines.append("Outbox    " + ("nothing pending or dead" if not outbox else ""))
    lines += _table(("status", "resource", "count", "reason"), [
        (o["status"], o["resource_type"], o["count"], o["reason"]) for o in outbox
    ]) if outbox else []
    if any(o["status"] == "dead" for o in outbox):
        lines.append("  retry dead letters with: mvg-sync redrive")
    if data["unit_left_clinic24"]:
        lines.append(f"Unit left Clinic24 (R09): {data['unit_left_clinic24']} bookings not synced")
    if data["quarantine"]:
        lines.append("Quarantine (rows by file, rule, reason):")
        lines += _table(("file", "rule", "rows", "reason"), [
            (q["file"] or "-", q["rule"], q["rows"], q["reason"]) for q in data["quarantine"]
        ])
    else:
        lines.append("Quarantine empty")
    return "\n".join(_fit(line.rstrip(), WIDTH) for line in lines)


def as_json(data: dict) -> str:
    return json.dumps(data, default=str, indent=2, ensure_ascii=False)
