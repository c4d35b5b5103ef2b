"""Initial-load benchmark: N synthetic appointments through the client into a fresh rate-limited sandbox."""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from mvg_sync.clinic24.client import Clinic24Client, UpsertEntry
from mvg_sync.clinic24.payloads import build_appointment
from mvg_sync.clinic24.sandbox.runner import start_sandbox
from mvg_sync.settings import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET

TARGET_PER_S = 1_800
CARE_SERVICES = [
    ("Primärvård|mottagning|sjuksköterska|diabetes", "sjukskoterska", "physical"),
    ("Primärvård|distans video|sjuksköterska|diabetes", "sjukskoterska", "digital"),
    ("Primärvård|mottagning|läkare|allmänmedicin", "lakare", "physical"),
    ("Primärvård|distans video|läkare|allmänmedicin", "lakare", "digital"),
    ("Primärvård|mottagning|fysioterapeut|rörelseapparat", "fysioterapeut", "physical"),
]


def personnummer(rng: random.Random) -> str:
    """A random adult's 12-digit personnummer with a valid Luhn digit (R13)."""
    born = datetime(1940, 1, 1, tzinfo=UTC) + timedelta(days=rng.randrange(60 * 365))
    ten = born.strftime("%y%m%d") + f"{rng.randrange(1000):03d}"
    total = 0
    for i, ch in enumerate(ten):
        digit = int(ch) * (2 if i % 2 == 0 else 1)
        total += digit - 9 if digit > 9 else digit
    return born.strftime("%Y")[:2] + ten + str((10 - total % 10) % 10)


def desired_rows(n: int, units: list[str], seed: int = 24) -> list[dict]:
    """`n` desired_appointments rows (design.md), adults only, spread over 90 days and `units`."""
    rng = random.Random(seed)
    first = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
    rows = []
    for i in range(n):
        care_service, role, kind = CARE_SERVICES[i % len(CARE_SERVICES)]
        start = first + timedelta(days=rng.randrange(90), minutes=15 * rng.randrange(36))
        rows.append(
            {
                "booking_id": f"{5_000_000 + i}",
                "status": "booked",
                "cancel_reason": None,
                "start_at": start,
                "end_at": start + timedelta(minutes=15),
                "care_service": care_service,
                "clinic24_role": role,
                "visit_kind": kind,
                "patient_id": personnummer(rng),
                "patient_id_kind": "personnummer",
                "patient_name": f"Patient {i}",
                "unit_hsa_id": units[i % len(units)],
                "resource_hsa_id": f"SE2321000198-P{i % 300:04d}",
                "resource_name": f"Behandlare {i % 300}",
                "booking_info": "Bokning via webbtidbok" if i % 4 == 0 else None,
                "contact_type": "Distansbesök - video" if kind == "digital" else "Mottagningsbesök",
                "visit_type": "Nybesök" if i % 2 else "Återbesök",
                "patient_may_rebook": True,
                "patient_may_cancel": True,
                "content_hash": "",
            }
        )
    return rows


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of another process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(n: int, concurrency: int) -> dict:
    """One initial load into a fresh sandbox; returns the figures."""
    with tempfile.TemporaryDirectory(prefix="bench-clinic24-") as state_dir:
        with start_sandbox(Path(state_dir)) as sandbox:
            faults = sandbox.set_faults(rate_limit=True)
            assert faults["rate_limit"] is True
            with Clinic24Client(
                sandbox.base_url,
                SANDBOX_CLIENT_ID,
                SANDBOX_CLIENT_SECRET,
                max_concurrency=concurrency,
            ) as client:
                units = client.list_locations()
                rows = desired_rows(n, units)
                started = time.perf_counter()
                entries = [
                    UpsertEntry(
                        f"c{i}",
                        "Appointment",
                        row["booking_id"],
                        build_appointment(row, source_sequence=1),
                    )
                    for i, row in enumerate(rows)
                ]
                build_s = time.perf_counter() - started
                del rows
                server_cpu_before = _cpu_seconds(sandbox.pid)
                client_cpu_before = time.process_time()
                started = time.perf_counter()
                outcomes = client.upsert(entries)
                push_s = time.perf_counter() - started
                client_cpu_s = time.process_time() - client_cpu_before
                server_cpu_s = _cpu_seconds(sandbox.pid) - server_cpu_before
                stats = client.stats()
            counts = {}
            for o in outcomes:
                counts[o.outcome] = counts.get(o.outcome, 0) + 1
            # The handle's state() lists every resource; one row is enough for the counts.
            answer = httpx.get(
                f"{sandbox.base_url}/_control/state", params={"limit": 1},
                headers=sandbox.control_headers, timeout=60,
            )
            stored = answer.raise_for_status().json()["counts"].get("Appointment", 0)
    return {
        "n": n,
        "build_s": build_s,
        "push_s": push_s,
        "client_cpu_s": client_cpu_s,
        "server_cpu_s": server_cpu_s,
        "outcomes": counts,
        "stored": stored,
        **stats,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.clinic24_load", description=__doc__)
    parser.add_argument(
        "--n", type=int, default=100_000, help="appointments to load (default 100000)"
    )
    parser.add_argument("--concurrency", type=int, default=4, help="batches in flight (default 4)")
    args = parser.parse_args(argv)
    f = run(args.n, args.concurrency)
    rate = f["n"] / f["push_s"]
    print(
        f"Clinic24 initial load: {f['n']:,} appointments, rate limit on, concurrency {args.concurrency}"
    )
    print(
        f"  upserts/s (push only)        {rate:,.0f}   target >= {TARGET_PER_S:,}: {'met' if rate >= TARGET_PER_S else 'MISSED'}"
    )
    print(f"  upserts/s (build + push)     {f['n'] / (f['build_s'] + f['push_s']):,.0f}")
    print(f"  outcomes                     {f['outcomes']}; stored in sandbox: {f['stored']:,}")
    print(
        f"  payload build                {f['build_s']:.2f} s ({1e6 * f['build_s'] / f['n']:.1f} us/row)"
    )
    print(
        f"  push wall                    {f['push_s']:.2f} s, {int(f['requests'])} requests, {int(f['retries'])} retries, {int(f['throttled'])} x 429"
    )
    print(
        f"  client CPU during push       {f['client_cpu_s']:.2f} s (JSON encode {f['encode_s']:.2f} s)"
    )
    print(f"  client waiting for answers   {f['http_wait_s']:.2f} s summed over threads")
    print(f"  client pacing (rate limit)   {f['pacing_wait_s']:.2f} s summed over threads")
    print(
        f"  server CPU during push       {f['server_cpu_s']:.2f} s ({1e3 * f['server_cpu_s'] / max(f['requests'], 1):.1f} ms/request)"
    )
    return 0 if f["outcomes"].get("accepted") == f["n"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
