"""Bad drops and machine faults through `mvg-sync sync` against the sandbox (issues 11 and 14)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import duckdb
import polars as pl

from mvg_sync.generator import next_region
from mvg_sync.store.drops import load_snapshot
from mvg_sync.timeutil import utc_now
from tests.e2e.sync_world import AS_OF, prefect_env

LATER = AS_OF + timedelta(minutes=5)


def cli(world, *args, extra_env: dict | None = None):
    return world.cli(*args, extra_env={**prefect_env(), **(extra_env or {})})


def drops(world) -> dict[str, str]:
    con = duckdb.connect(str(world.state / "state.duckdb"), read_only=True)
    try:
        return dict(con.execute("SELECT extract_id, outcome FROM drops").fetchall())
    finally:
        con.close()


def booked(world) -> set[str]:
    return {k for k, a in world.appointments().items() if a["status"] == "booked"}


def test_full_disk_during_ingest_fails_the_sync_and_the_drop_is_synced_once_space_is_back(
    world, monkeypatch, capsys
):
    from mvg_sync.cli import main

    folder = world.drop(world.region)

    def disk_full(*_args, **_kwargs):  # where the snapshots are written (measured message)
        raise pl.exceptions.ComputeError(
            "parquet: File out of specification: underlying IO error: No space left on device (os error 28)"
        )

    with monkeypatch.context() as patch:
        patch.setattr(pl.LazyFrame, "sink_parquet", disk_full)
        code = main(["sync", "--as-of", AS_OF.isoformat()])
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.startswith("error: ")]
    assert code == 1
    assert len(err) == 1, err  # one line, then the hint
    assert f"drop {folder.name} left pending" in err[0] and "No space left on device" in err[0]
    assert "cannot rollback" not in err[0] and "rejected" not in err[0]
    assert folder.name not in drops(world)  # no verdict on the drop
    assert world.appointments() == {}
    assert not (world.state / "snapshots" / folder.name).exists()

    # space is back: the next run takes the same drop
    code = main(["sync", "--as-of", (AS_OF + timedelta(minutes=1)).isoformat()])
    assert code == 0, capsys.readouterr()
    assert drops(world)[folder.name] == "accepted"
    assert booked(world), "the drop was not synced once space was back"


def _malformed(folder: Path) -> None:
    """One `;` too many in a row of bokningar.csv, the manifest agreeing with the bytes."""
    path = folder / "bokningar.csv"
    lines = path.read_bytes().split(b"\r\n")
    lines[5] += b";extra"
    data = b"\r\n".join(lines)
    path.write_bytes(data)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"]["bokningar.csv"]["sha256"] = hashlib.sha256(data).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def test_a_good_drop_behind_a_malformed_one_is_pushed_in_the_same_run(world):
    bad = world.drop(world.region)
    _malformed(bad)
    region, _ = next_region(world.region, seed=3, as_of=LATER)
    good = world.drop(region)

    run = cli(world, "sync", "--as-of", LATER.isoformat())
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert "TypeError" not in run.stdout + run.stderr
    assert drops(world) == {bad.name: "rejected", good.name: "accepted"}
    assert booked(world), "the good drop waited for the next run"
    assert json.loads(run.stdout.strip().splitlines()[-1])["extract_id"] == good.name
    quarantine = json.loads(cli(world, "status", "--json").stdout)["quarantine"]
    assert any("has 20 fields but the header has 19 (one `;` too many)" in q["reason"] for q in quarantine)


def test_nul_byte_and_start_outside_the_window_are_quarantined_and_never_pushed(world):
    world.drop(world.region)
    assert cli(world, "sync", "--as-of", AS_OF.isoformat()).returncode == 0
    before = world.appointments()
    nul_id, outside_id = sorted(booked(world))[:2]
    region, _ = next_region(world.region, seed=3, as_of=LATER)
    past_window = pl.datetime(region.window_to.year, region.window_to.month, region.window_to.day) + pl.duration(
        days=1, hours=9)
    bookings = region.bookings.with_columns(
        pl.when(pl.col("BokningsID") == int(nul_id)).then(pl.lit("Ring\x00 före"))
        .otherwise(pl.col("Bokningsinformation")).alias("Bokningsinformation"),
        pl.when(pl.col("BokningsID") == int(outside_id)).then(past_window)
        .otherwise(pl.col("BokadTid")).alias("BokadTid"),
        pl.when(pl.col("BokningsID") == int(outside_id)).then(past_window + pl.duration(minutes=30))
        .otherwise(pl.col("Sluttid")).alias("Sluttid"),
    )
    world.drop(replace(region, bookings=bookings))

    run = cli(world, "sync", "--as-of", LATER.isoformat())
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    after = world.appointments()
    # neither sent (nor cancelled as vanished): Clinic24 keeps what it had
    for key in (nul_id, outside_id):
        assert after[key] == before[key]
    assert "\x00" not in json.dumps(world.sandbox.state())
    quarantine = {(q["file"], q["rule"], q["reason"]): q["rows"]
                  for q in json.loads(cli(world, "status", "--json").stdout)["quarantine"]}
    assert quarantine[("bokningar.csv", "contract", "holds a NUL byte (\\x00), which no text value may hold")] == 1
    window = f"{region.window_from}..{region.window_to}"
    assert quarantine[("bokningar.csv", "window", f"start outside the manifest's window {window}")] == 1


def test_empty_bookings_on_a_first_drop_is_accepted_with_its_slots(world):
    folder = world.drop(replace(world.region, bookings=world.region.bookings.head(0)))
    run = cli(world, "sync", "--as-of", AS_OF.isoformat())
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert drops(world) == {folder.name: "accepted"}
    assert load_snapshot(world.state, "bookings").height == 0
    assert load_snapshot(world.state, "slots").height == world.region.slots.height  # for the HSL report
    assert world.appointments() == {}


def test_empty_bookings_when_many_are_live_is_held_by_the_guard_until_approved(world):
    world.drop(world.region)
    assert cli(world, "sync", "--as-of", AS_OF.isoformat()).returncode == 0
    live = booked(world)
    assert len(live) > 20
    region, _ = next_region(world.region, seed=3, as_of=LATER)
    held_drop = world.drop(replace(region, bookings=region.bookings.head(0))).name

    held = cli(world, "sync", "--as-of", LATER.isoformat())
    assert held.returncode == 3, held.stdout + held.stderr[-3000:]
    assert f"mvg-sync approve {held_drop}" in held.stdout
    assert booked(world) == live, "a held drop must push nothing"
    assert drops(world)[held_drop] == "accepted"

    approved = cli(world, "approve", held_drop)
    assert approved.returncode == 0, approved.stdout
    pushed = cli(world, "sync", "--as-of", LATER.isoformat())
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr[-3000:]
    still_booked = booked(world)
    # every live booking from the window's first day on is cancelled (R08)
    assert not still_booked & live, sorted(still_booked & live)[:5]


def test_a_back_dated_sync_keeps_the_drop_folders_it_has_just_processed(world):
    assert utc_now() - LATER > timedelta(days=1), "the test needs a wall clock over a day past AS_OF"
    first = world.drop(world.region)
    region, _ = next_region(world.region, seed=3, as_of=LATER)
    second = world.drop(region)
    run = cli(world, "sync", "--as-of", LATER.isoformat(), extra_env={"MVG_RETENTION_DAYS": "1"})
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert drops(world) == {first.name: "accepted", second.name: "accepted"}
    assert first.is_dir() and second.is_dir(), "retention purged drops the run had just processed"
    assert (world.state / "snapshots" / first.name).is_dir()
