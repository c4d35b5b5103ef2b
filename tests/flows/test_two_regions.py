"""Two regions' syncs at once on one Prefect server (issue 15.3): neither sees or changes the other's data.

The regions are deployed as operations would: a region file, `mvg-sync setup-prefect --regions`,
`mvg-sync deployments --regions`, `prefect deploy --prefect-file`, and one process worker polling
both regions' work queues. Each region has its own sandbox, landing and state folders (file
stores; PostgreSQL stores share one server by schema, see deploy/regions.toml). The regions'
Cosmic ids are disjoint (region south's are shifted), so a booking in the wrong Clinic24 or a
drop in the wrong store would show by its id.

Parametrised over the store (issue 15.3): `duckdb` gives each region a file store in its state
folder; `postgresql` puts both regions on the session's one throwaway server, each in its own
schema, through the region file's `state_url` (no password in it, as regions.py demands) and
`state_schema`. The password takes a deployment's path: MVG_STATE_PASSWORD_<REGION> for
`mvg-sync setup-prefect --regions`, which saves it as Secret block `mvg-state-password-<region>`;
the worker's environment holds no MVG_/PG variable, so the runs can only get it from the block.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
import yaml

from mvg_sync.clinic24.sandbox.runner import start_sandbox
from mvg_sync.generator import Region, generate_region, write_drop, write_sandbox_seed
from tests.e2e.sync_world import AS_OF
from tests.flows.test_regions_deploy import deploy_regions

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 600  # the machine is shared: generous, nothing here measures speed
SHIFT = 50_000_000  # region south's Cosmic ids: far from north's
ID_COLUMNS = ("BokningsID", "UnderlagsID", "HändelseID", "TidID")
REGIONS = {"north": (7, 400, 0), "south": (8, 600, SHIFT)}  # code -> (seed, bookings, id shift)


def _shifted(region: Region, shift: int) -> Region:
    """The same region with every Cosmic id moved by `shift` (its own id space)."""
    if not shift:
        return region
    frames = {}
    for name in ("bookings", "booking_bases", "events", "slots"):
        frame = getattr(region, name)
        frames[name] = frame.with_columns(
            [pl.col(c) + shift for c in ID_COLUMNS if c in frame.columns and frame.schema[c].is_integer()]
        )
    return replace(region, **frames)


def _ids(region: Region) -> set[str]:
    return {str(i) for i in region.bookings["BokningsID"]}


@pytest.fixture(params=["duckdb", "postgresql"])
def store_kind(request, monkeypatch):
    """None for file stores; for PostgreSQL (server, {region: schema}), each region's password in
    MVG_STATE_PASSWORD_<REGION> for setup-prefect only (deploy_regions passes those on)."""
    monkeypatch.delenv("MVG_STATE_URL", raising=False)  # the region file decides, not this process
    if request.param == "duckdb":
        return None
    server = request.getfixturevalue("pg_server")
    tag = secrets.token_hex(4)
    schemas = {code: f"r_{code}_{tag}" for code in REGIONS}
    for code in REGIONS:
        monkeypatch.setenv(f"MVG_STATE_PASSWORD_{code.upper()}", server.password)
    return server, schemas


@pytest.fixture
def two_regions(tmp_path, prefect_harness, store_kind):
    worlds = {}
    try:
        for i, (code, (seed, n, shift)) in enumerate(REGIONS.items()):
            root = tmp_path / code
            as_of = AS_OF + timedelta(minutes=2 * i)  # distinct extract ids too
            region = _shifted(generate_region(seed=seed, n_bookings=n, as_of=as_of), shift)
            units, guardians = write_sandbox_seed(region, root / "seed")
            sandbox = start_sandbox(root / "sandbox", units=units, guardians=guardians)
            (root / "landing").mkdir(parents=True)
            drop = write_drop(region, root / "landing")
            worlds[code] = {"root": root, "region": region, "sandbox": sandbox, "drop": drop.name, "as_of": as_of}
            if store_kind is not None:
                server, schemas = store_kind
                worlds[code]["pg"] = (server, schemas[code])
        yield worlds
    finally:
        for world in worlds.values():
            world["sandbox"].stop()
        _cleanup()


def _cleanup() -> None:
    from prefect.client.orchestration import get_client
    from prefect.variables import Variable

    from mvg_sync.settings import STATE_PASSWORD_BLOCK

    with get_client(sync_client=True) as client:
        for code in REGIONS:  # the next variant must not find this one's password block
            try:
                block = client.read_block_document_by_name(f"{STATE_PASSWORD_BLOCK}-{code}", "secret")
            except Exception:  # noqa: BLE001 - absent: nothing to remove
                continue
            client.delete_block_document(block.id)
        for deployment in client.read_deployments():
            if deployment.name.endswith(tuple(f"-{code}" for code in REGIONS)):
                client.delete_deployment(deployment.id)
        for variable in client.read_variables():
            if "mvg-sync" in (variable.tags or []):
                Variable.unset(variable.name)


def _region_file(tmp_path: Path, worlds: dict) -> Path:
    text = ""
    for code, world in worlds.items():
        text += f"""
[regions.{code}]
name = "Region {code}"
landing_dir = "{world['root']}/landing"
state_dir = "{world['root']}/state"
report_dir = "{world['root']}/reports"
clinic24_base_url = "{world['sandbox'].base_url}"
clinic24_client_id = "mvg-sync"
"""
        if "pg" in world:
            server, schema = world["pg"]
            # as a deployment's region file: no password here (setup-prefect puts it in a block)
            text += f'state_url = "postgresql://postgres@127.0.0.1:{server.port}/mvg"\nstate_schema = "{schema}"\n'
    path = tmp_path / "regions.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _worker(tmp_path: Path) -> subprocess.Popen:
    """One process worker for both regions' queues, with no region's settings of its own."""
    from prefect.settings import PREFECT_API_URL

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MVG_", "CLINIC24_", "PREFECT_"))}
    env.update(PREFECT_API_URL=PREFECT_API_URL.value(), PREFECT_WORKER_QUERY_SECONDS="2",
               PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1", GX_ANALYTICS_ENABLED="false")
    queues = [arg for code in REGIONS for arg in ("--work-queue", code)]
    log = (tmp_path / "worker.log").open("w")
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "prefect"), "worker", "start", "--pool", "mvg-sync", *queues],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def _without_schedules(path: Path) -> None:
    """The test starts both runs itself at one moment; a cron run could take a region's slot."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    for deployment in document["deployments"]:
        deployment.pop("schedules", None)
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), encoding="utf-8")


def _store_env(world: dict) -> dict[str, str]:
    """The variables that open this region's store from a test process (its schema, password in the URL)."""
    if "pg" not in world:
        return {}
    server, schema = world["pg"]
    return {"MVG_STATE_URL": server.url(schema=schema)}


def _store_view(world: dict, monkeypatch) -> tuple[set[str], set[str]]:
    """(the store's drops, its Appointment record's booking ids), read through the store's opener."""
    from mvg_sync import store

    monkeypatch.delenv("MVG_STATE_URL", raising=False)
    for key, value in _store_env(world).items():
        monkeypatch.setenv(key, value)
    with store.connect(world["root"] / "state", read_only=True) as con:
        drops = {r[0] for r in con.execute("SELECT extract_id FROM drops").fetchall()}
        keys = {r[0] for r in con.execute(
            "SELECT key FROM clinic24_record WHERE resource_type = 'Appointment'").fetchall()}
    return drops, keys


def _schema_view(world: dict) -> tuple[set[str], set[str]]:
    """(drops, Appointment keys) in the region's schema, queried on the server directly by name."""
    from psycopg import sql

    server, schema = world["pg"]
    with server.admin("mvg") as con:
        drops = {r[0] for r in con.execute(
            sql.SQL("SELECT extract_id FROM {}.drops").format(sql.Identifier(schema))).fetchall()}
        keys = {r[0] for r in con.execute(
            sql.SQL("SELECT key FROM {}.clinic24_record WHERE resource_type = 'Appointment'").format(
                sql.Identifier(schema))).fetchall()}
    return drops, keys


def test_two_regions_sync_at_once_and_keep_to_their_own_data(two_regions, tmp_path, store_kind, monkeypatch):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    out = tmp_path / "prefect.regions.yaml"
    regions_file = _region_file(tmp_path, two_regions)
    result = deploy_regions(regions_file, out, edit=_without_schedules)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    worker = _worker(tmp_path)
    runs = {}
    try:
        for code, world in two_regions.items():
            runs[code] = run_deployment(f"booking_sync/booking-sync-{code}", timeout=0,
                                        parameters={"as_of": world["as_of"].isoformat(), "wait_for_drop_s": 0})
        deadline = time.monotonic() + WAIT_S
        with get_client(sync_client=True) as client:
            while True:
                runs = {code: client.read_flow_run(run.id) for code, run in runs.items()}
                if all(run.state.is_final() for run in runs.values()):
                    break
                assert time.monotonic() < deadline, {c: r.state.name for c, r in runs.items()}
                time.sleep(2)
    finally:
        _stop(worker)
    log = (tmp_path / "worker.log").read_text()[-4000:]
    for code, run in runs.items():
        assert run.state.is_completed(), f"{code}: {run.state.name} {run.state.message} {log}"

    # both runs were going at the same time
    north, south = runs["north"], runs["south"]
    assert north.start_time < south.end_time and south.start_time < north.end_time, (
        north.start_time, north.end_time, south.start_time, south.end_time)

    for code, world in two_regions.items():
        other = next(w for c, w in two_regions.items() if c != code)
        own, theirs = _ids(world["region"]), _ids(other["region"])
        assert not own & theirs
        stored = {k: a["status"] for k, a in _appointments(world["sandbox"]).items()}
        assert stored, f"{code}: nothing reached its Clinic24"
        # its Clinic24 holds its own bookings only, exactly those its store says it pushed
        assert set(stored) <= own, f"{code}: foreign bookings in its Clinic24"
        drops, record = _store_view(world, monkeypatch)
        assert set(stored) == record
        assert record <= own
        # its store holds its own drop only; the other's landing folder was never read
        assert drops == {world["drop"]}, drops
        assert not (world["root"] / "state").samefile(other["root"] / "state")
        if store_kind is not None:
            # on the shared server: its schema holds its own drop and bookings only, and the
            # file store was never used (the state folder has snapshots, no DuckDB file)
            schema_drops, schema_keys = _schema_view(world)
            assert schema_drops == {world["drop"]}, f"{code}: schema {world['pg'][1]} holds drops {schema_drops}"
            assert schema_keys == record and schema_keys <= own, f"{code}: foreign bookings in its schema"
            assert not list((world["root"] / "state").glob("*.duckdb")), f"{code}: a DuckDB file store was written"
        status = subprocess.run(
            [sys.executable, "-m", "mvg_sync.cli", "status", "--json"], capture_output=True, text=True, timeout=300,
            env={**{k: v for k, v in os.environ.items() if k != "MVG_STATE_URL"}, **_store_env(world),
                 "MVG_STATE_DIR": str(world["root"] / "state"),
                 "MVG_LANDING_DIR": str(world["root"] / "landing")}, check=False,
        )
        assert status.returncode == 0, status.stderr
        assert [d["extract_id"] for d in json.loads(status.stdout)["recent_drops"]] == [world["drop"]]


def _appointments(sandbox) -> dict[str, dict]:
    return {
        item["identifier"]: {**item["resource"], "status": item["status"]}
        for item in sandbox.state("Appointment")["resources"]
        if item["resourceType"] == "Appointment"
    }
