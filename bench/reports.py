"""Control-report benchmark: a regional drop (~400k bookings, events since early October) through `mvg-sync report`.

The drop is bench.ingest's cached one; it is ingested once into `bench/out/reports/state`, and
the sync's tables get a synthetic month of history (outbox, ticket record, holds, dead letters,
quarantine) so reports 3 and 4 have regional volumes too. Prints wall time per report (build,
write) and for the whole command, over the widest registration period (every event).
"""

from __future__ import annotations

import argparse
import io
import shutil
import time
from contextlib import redirect_stdout
from datetime import date, datetime
from pathlib import Path

from bench.ingest import AS_OF, landing_for

OUT = Path(__file__).resolve().parent / "out" / "reports"
N_BOOKINGS = 400_000
TARGET_S = 15.0
PERIOD = (date(2026, 10, 1), date(2026, 11, 25))

# A month of synthetic sync history, generated in DuckDB (no patient data: ids are counters).
_SEED_SQL = [
    """INSERT INTO outbox (change_id, plan_id, resource_type, key, change_kind, rule, content_hash,
           source_sequence, payload, target_status, status, reason, attempts, last_outcome,
           extracted_at, created_at, settled_at)
       SELECT 'p/Appointment/' || i, 'p', 'Appointment', 'K' || i,
              ['create', 'update', 'rebook', 'cancel'][1 + i % 4], 'R06', 'h', 1, '{}', 'booked',
              CASE WHEN i % 997 = 0 THEN 'dead' ELSE 'done' END,
              CASE WHEN i % 997 = 0 THEN '422 unknown-location' END, 1,
              CASE WHEN i % 997 = 0 THEN 'rejected' ELSE 'accepted' END,
              $start + to_minutes(i % 43200), $start + to_minutes(i % 43200),
              $start + to_minutes(i % 43200) + to_seconds(20 + (i * 7919) % 400)
       FROM range($n) t(i)""",
    """INSERT INTO clinic24_record
       SELECT 'ServiceRequest', basis_id, ['active', 'completed', 'revoked'][1 + rn % 3], NULL,
              unit_hsa_id, 'h', 1, '1', $start + to_hours(rn % 700)
       FROM (SELECT basis_id, unit_hsa_id, row_number() OVER () AS rn FROM bases WHERE rn_all % 3 = 0)""",
    """INSERT INTO outbox (change_id, plan_id, resource_type, key, change_kind, rule, content_hash,
           source_sequence, payload, target_status, status, attempts, last_outcome, extracted_at,
           created_at, settled_at)
       SELECT 'p/ServiceRequest/' || key, 'p', 'ServiceRequest', key, 'issue', 'R14', 'h', 1, '{}',
              'active', 'done', 1, 'accepted', accepted_at - INTERVAL 2 MINUTE,
              accepted_at - INTERVAL 2 MINUTE, accepted_at
       FROM clinic24_record WHERE resource_type = 'ServiceRequest'""",
    """INSERT INTO holds SELECT 'Appointment', 'H' || i, 'SE' || (i % 30), 'R12',
              'needs primary guardian', $start FROM range(300) t(i)""",
    """INSERT INTO quarantine SELECT 'x', 'bokningar.csv', i, 'B' || i, 'Personnummer', 'R13',
              'bad check digit', $start + to_hours(i % 700) FROM range(2000) t(i)""",
    """INSERT INTO unit_departures SELECT 'U' || i, 'SE99', $start FROM range(150) t(i)""",
]


def prepare_state() -> Path:
    """Ingest the regional drop once and seed the sync history; later runs reuse it."""
    state = OUT / "state"
    if (state / "state.duckdb").exists():
        return state
    from mvg_sync.ingest import ingest_pending
    from mvg_sync.store.drops import connect, load_snapshot
    from mvg_sync.store.outbox import ensure_schema

    shutil.rmtree(state, ignore_errors=True)
    started = time.perf_counter()
    report = ingest_pending(landing_for(N_BOOKINGS), state, as_of=AS_OF)
    print(f"ingested {len(report.drops)} drop(s) in {time.perf_counter() - started:.1f} s")
    bases = load_snapshot(state, "booking_bases").with_row_index("rn_all").select(
        "basis_id", "unit_hsa_id", "rn_all")
    con = connect(state)
    try:
        ensure_schema(con)
        con.register("bases", bases)
        for sql in _SEED_SQL:
            params = {k: v for k, v in {"start": datetime(2026, 10, 27, tzinfo=AS_OF.tzinfo),
                                        "n": N_BOOKINGS}.items() if f"${k}" in sql}
            con.execute(sql, params)
        con.unregister("bases")
    finally:
        con.close()
    return state


def _args(out: Path) -> argparse.Namespace:
    return argparse.Namespace(
        as_of=AS_OF.isoformat(), date_from=PERIOD[0].isoformat(), date_to=PERIOD[1].isoformat(),
        booked_from=None, booked_to=None, unit=None, out=str(out), pseudonymise=False)


def main(argv: list[str]) -> int:
    import os

    state = prepare_state()
    os.environ["MVG_STATE_DIR"] = str(state)
    from mvg_sync.reports.cli import build_control_reports, load_datasets, period_from_args
    from mvg_sync.reports.cli import main as report_main
    from mvg_sync.reports.write import write_report

    out = OUT / "files"
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    with redirect_stdout(io.StringIO()):
        code = report_main(_args(out))
    total = time.perf_counter() - started
    if code != 0:
        print(f"mvg-sync report failed with exit {code}")
        return 1

    # Breakdown, same code path step by step.
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    datasets = load_datasets(state)
    timings["load snapshots"] = time.perf_counter() - t0
    reports = build_control_reports(state, datasets, as_of=AS_OF,
                                    period=period_from_args(_args(out), AS_OF), timings=timings)
    for report in reports:
        t0 = time.perf_counter()
        write_report(report, out)
        rows = max((v.frame.height for v in report.views), default=0)
        timings[f"write {report.name} (largest sheet {rows:,} rows)"] = time.perf_counter() - t0
    print(f"bookings {datasets['bookings'].height:,}, events {datasets['events'].height:,}, "
          f"period {PERIOD[0]} – {PERIOD[1]}")
    for name, seconds in timings.items():
        print(f"  {name:<55} {seconds:6.2f} s")
    print(f"  {'breakdown sum':<55} {sum(timings.values()):6.2f} s")
    verdict = "OK" if total <= TARGET_S else "OVER"
    print(f"mvg-sync report total (one run, incl. snapshot load) {total:.2f} s "
          f"(target <= {TARGET_S:.0f} s: {verdict})")
    return 0 if total <= TARGET_S else 1


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
