"""Initial load of a region (~400k bookings) through the sync (plan → outbox → push) into a rate-limited sandbox.

Issue 4 (c): upserts/s within 10 % of the API ceiling (20 requests/s x 100 entries = 2,000/s).
The region is generated at the wall clock (minute precision) so the latency bench can drop
its next drops at the real time; the loaded state folder and sandbox database are kept under
`bench/out/sync/loaded-<n>/` (with `meta.json` last) for bench.sync_cycle and
bench.sync_latency, which copy them and never change the cache.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from mvg_sync.timeutil import STOCKHOLM, utc_now

OUT = Path(__file__).resolve().parent / "out" / "sync"
N_BOOKINGS = 400_000
SEED = 7
CEILING_PER_S = 2_000  # 20 requests/s x 100 entries per batch (clinic24-api.md)
TARGET_PER_S = 0.9 * CEILING_PER_S


@dataclass
class Timer:
    """Wall seconds per named phase, in the order first seen."""

    phases: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + time.perf_counter() - started

    def total(self, names: list[str] | None = None) -> float:
        return sum(v for k, v in self.phases.items() if names is None or k in names)


def cache_dir(n_bookings: int) -> Path:
    return OUT / f"loaded-{n_bookings}"


def cached_meta(n_bookings: int) -> dict | None:
    """The loaded cache's metadata, or None when it is missing or unfinished."""
    meta = cache_dir(n_bookings) / "meta.json"
    return json.loads(meta.read_text()) if meta.exists() else None


def regenerate(meta: dict):
    """The cached region, rebuilt from (seed, n, as_of): the generator is deterministic."""
    from mvg_sync.generator import generate_region

    return generate_region(
        seed=meta["seed"], n_bookings=meta["n_bookings"], as_of=datetime.fromisoformat(meta["as_of"])
    )


def copy_loaded(n_bookings: int, dest: Path) -> dict:
    """A private copy of the loaded cache (landing, seed, state, sandbox) under `dest`."""
    meta = cached_meta(n_bookings)
    if meta is None:
        raise FileNotFoundError(f"no loaded cache for {n_bookings:,} bookings: run python -m bench.initial_load")
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(cache_dir(n_bookings), dest)
    added = upgrade_schema(dest / "state")
    if added:
        print(f"cached state brought up to the current schema: added {', '.join(added)}")
    return meta


def upgrade_schema(state_dir: Path) -> list[str]:
    """Add columns the current code's tables have and a cached state store lacks.

    The cache outlives code changes; `CREATE TABLE IF NOT EXISTS` never adds a column, so the
    copy is compared with a fresh store made by the current code.
    """
    import tempfile

    from mvg_sync.store import outbox as store
    from mvg_sync.store.drops import connect

    query = "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'main'"
    with tempfile.TemporaryDirectory() as fresh_dir:
        fresh = connect(Path(fresh_dir))
        store.ensure_schema(fresh)
        wanted = fresh.execute(query).fetchall()
        fresh.close()
    con = connect(state_dir)
    try:
        store.ensure_schema(con)
        have = {(t, c) for t, c, _ in con.execute(query).fetchall()}
        tables = {t for t, _ in have}
        added = []
        for table, column, dtype in wanted:
            if table in tables and (table, column) not in have:
                con.execute(f'ALTER TABLE "{table}" ADD COLUMN "{column}" {dtype}')
                added.append(f"{table}.{column}")
    finally:
        con.close()
    return added


def settings_for(root: Path, base_url: str):
    """The flow's settings for a bench world (same names as the environment variables)."""
    from mvg_sync.settings import load_settings

    return load_settings(
        MVG_LANDING_DIR=root / "landing", MVG_STATE_DIR=root / "state", MVG_REPORT_DIR=root / "reports",
        CLINIC24_BASE_URL=base_url,
    )


def env_for(root: Path, base_url: str) -> dict[str, str]:
    return {
        "MVG_LANDING_DIR": str(root / "landing"), "MVG_STATE_DIR": str(root / "state"),
        "MVG_REPORT_DIR": str(root / "reports"), "CLINIC24_BASE_URL": base_url,
    }


def client_for(settings):
    """The client exactly as tasks/sync.py builds it (default concurrency and pacing)."""
    from mvg_sync.clinic24.client import Clinic24Client

    client_id, secret = settings.clinic24_credentials()
    return Clinic24Client(settings.clinic24_base_url, client_id, secret)


CYCLE_STEPS = ["ingest", "fetch units", "draft booking plan", "guardian check", "guard",
               "ticket plan", "write outbox", "push"]


def run_cycle(settings, as_of: datetime, timer: Timer, *, clock: Callable[[], datetime] = utc_now) -> dict:
    """One cycle as flows/booking_sync.py runs it, step by step, each step timed.

    Calls the same functions the flow's tasks wrap (tasks/sync.py), without Prefect. Returns
    patient-free counts: drops ingested, changes, holds, guard, outbox write and push tally.
    """
    from mvg_sync.ingest import ingest_pending
    from mvg_sync.store import outbox as store
    from mvg_sync.store import plan_reads
    from mvg_sync.sync import commit, push
    from mvg_sync.sync import draft as drafting

    out: dict = {}
    with timer.phase("ingest"):
        report = ingest_pending(settings.landing_dir, settings.state_dir, as_of=as_of)
    out["drops"] = [(d.extract_id, d.outcome) for d in report.drops]
    with client_for(settings) as client:
        with timer.phase("fetch units"):
            units = client.list_locations()
            con = plan_reads.open_state(settings.state_dir)
            try:
                store.save_locations(con, units, now=clock())
            finally:
                con.close()
        with timer.phase("draft booking plan"):
            draft = drafting.draft_booking_plan(settings.state_dir, units, as_of=as_of)
        if draft is None:
            out["outcome"] = "nothing to do"
            return out
        with timer.phase("guardian check"):
            out["guardian_candidates"] = draft.guardian_candidates.height
            if draft.guardian_candidates.height:
                draft = drafting.apply_guardians(draft, drafting.check_guardians(settings.state_dir, draft, client))
        with timer.phase("ticket plan"):
            tickets = drafting.draft_ticket_plan(settings.state_dir, units, as_of=as_of)
        with timer.phase("guard"):
            guard = drafting.apply_guard(
                settings.state_dir, draft, tickets, max_share=settings.max_cancel_share,
                floor=settings.cancel_guard_floor, now=clock(),
            )
        out["guard"] = {"held": guard.held, "cancels": guard.cancels, "live": guard.live}
        if guard.held:
            out["outcome"] = "held"
            return out
        out["changes"] = {"bookings": draft.changes.height, "tickets": tickets.changes.height if tickets else 0}
        out["holds"] = {"bookings": draft.holds.height, "tickets": tickets.holds.height if tickets else 0}
        with timer.phase("write outbox"):
            out["outbox"] = commit.commit_plan(
                settings.state_dir, run_id=uuid.uuid4().hex[:12], bookings=draft, ticket_draft=tickets,
                snapshot=draft.snapshot, now=clock(),
            )
        with timer.phase("push"), _timed(store, "pending_entries", timer, "push: load outbox"), \
                _timed(store, "settle", timer, "push: settle answers"):
            out["push"] = push.push_pending(settings.state_dir, client, clock=clock)
        out["client"] = client.stats()
    out["outcome"] = "done"
    return out


@contextmanager
def _timed(module, name: str, timer: Timer, phase: str) -> Iterator[None]:
    """Time every call of `module.name` as `phase` (inside another phase: shown indented)."""
    original = getattr(module, name)

    def timed(*args, **kwargs):
        with timer.phase(phase):
            return original(*args, **kwargs)

    setattr(module, name, timed)
    try:
        yield
    finally:
        setattr(module, name, original)


def print_phases(timer: Timer, names: list[str]) -> None:
    for name in names:
        print(f"    {name:<22} {timer.phases.get(name, 0.0):8.2f} s")
        for sub in (k for k in timer.phases if k.startswith(f"{name}: ")):
            print(f"      {sub[len(name) + 2:]:<20} {timer.phases[sub]:8.2f} s")


def build(n_bookings: int, *, rate_limit: bool = True) -> dict:
    """Generate, ingest and load a region into a fresh sandbox; cache it; return the figures."""
    from mvg_sync.clinic24.sandbox.runner import start_sandbox
    from mvg_sync.generator import generate_region, write_drop, write_sandbox_seed

    root = cache_dir(n_bookings)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    as_of = utc_now().astimezone(STOCKHOLM).replace(second=0, microsecond=0)
    setup = Timer()
    with setup.phase("generate region"):
        region = generate_region(seed=SEED, n_bookings=n_bookings, as_of=as_of)
    with setup.phase("write drop + seeds"):
        write_drop(region, root / "landing")
        units, guardians = write_sandbox_seed(region, root / "seed")
    with setup.phase("start sandbox"):
        sandbox = start_sandbox(root / "sandbox", units=units, guardians=guardians)
    timer = Timer()
    try:
        faults = sandbox.set_faults(rate_limit=rate_limit)
        assert faults["rate_limit"] is rate_limit
        settings = settings_for(root, sandbox.base_url)
        result = run_cycle(settings, as_of, timer)
        stored = _stored_counts(sandbox.base_url, sandbox.control_headers)
    finally:
        sandbox.stop()
    meta = {"seed": SEED, "n_bookings": n_bookings, "as_of": as_of.isoformat(), "rate_limit": rate_limit,
            "sequence": region.sequence, "built_at": utc_now().isoformat()}
    (root / "meta.json").write_text(json.dumps(meta, indent=2))
    return {"setup": setup, "timer": timer, "result": result, "stored": stored, "meta": meta}


def _stored_counts(base_url: str, headers: dict) -> dict:
    import httpx

    answer = httpx.get(f"{base_url}/_control/state", params={"limit": 1}, headers=headers, timeout=120)
    return answer.raise_for_status().json()["counts"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.initial_load", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=N_BOOKINGS, help=f"bookings in the region (default {N_BOOKINGS})")
    parser.add_argument("--no-rate-limit", action="store_true",
                        help="sandbox without its 20/s limit (a quick cache for the other benches; no verdict)")
    args = parser.parse_args(argv)
    f = build(args.n, rate_limit=not args.no_rate_limit)
    timer, result, push = f["timer"], f["result"], f["result"].get("push", {})
    if result.get("outcome") != "done":
        print(f"initial load did not complete: {result.get('outcome')} {result.get('guard')}")
        return 1
    accepted = push.get("done", 0)
    push_s = timer.phases["push"]
    rate = accepted / push_s if push_s else 0.0
    stats = result["client"]
    print(f"Initial load: region of {args.n:,} bookings, sandbox rate limit {'ON' if not args.no_rate_limit else 'OFF'}, "
          f"extracted {f['meta']['as_of']}")
    print("  setup (not measured): " + ", ".join(f"{k} {v:.1f} s" for k, v in f["setup"].phases.items()))
    print(f"  changes planned        bookings {result['changes']['bookings']:,}, tickets {result['changes']['tickets']:,}; "
          f"held {result['holds']}; guardian candidates {result['guardian_candidates']}")
    print(f"  push                   {push}; stored in sandbox {f['stored']}")
    print("  time per phase:")
    print_phases(timer, CYCLE_STEPS)
    print(f"    {'total':<22} {timer.total(CYCLE_STEPS):8.2f} s")
    print(f"  push requests          {int(stats['requests'])} ({int(stats['retries'])} retries, {int(stats['throttled'])} x 429), "
          f"pacing wait {stats['pacing_wait_s']:.1f} s, answer wait {stats['http_wait_s']:.1f} s (summed over threads)")
    verdict = "met" if rate >= TARGET_PER_S else "MISSED"
    if args.no_rate_limit:
        verdict = "n/a (rate limit off)"
    print(f"  upserts/s (accepted / push wall)   {rate:,.0f}   target >= {TARGET_PER_S:,.0f} "
          f"(90 % of {CEILING_PER_S:,}): {verdict}")
    print(f"  upserts/s over the whole cycle     {accepted / timer.total(CYCLE_STEPS):,.0f}")
    print(f"  cached for bench.sync_cycle / bench.sync_latency: {cache_dir(args.n)}")
    return 0 if args.no_rate_limit or rate >= TARGET_PER_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
