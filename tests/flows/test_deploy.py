"""prefect.yaml deploys against a real (test) Prefect server: names, schedules, limits, no secret."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SECRET = "not-in-any-deployment-7f3a9c"  # noqa: S105 - a test value, searched for below
CLIENT_ID = "region-gavleborg"
BASE_URL = "https://clinic24.test.regional.example"

# deployment name -> (flow name, entrypoint, crons with their schedule parameters, parameters)
EXPECTED = {
    "booking-sync": (
        "booking_sync", "flows/booking_sync.py:booking_sync", [("*/5 * * * *", {})], {"wait_for_drop_s": 290}
    ),
    "control-reports": (
        "control_reports", "flows/control_reports.py:control_reports",
        [("0 6 * * *", {"period": "yesterday"}), ("0 6 * * 1", {"period": "last_week"})],
        {"period": "yesterday"},
    ),
    "hsl-coverage": ("hsl_coverage", "flows/hsl_coverage.py:hsl_coverage", [("5 7 * * *", {})], {}),
}


@pytest.fixture
def deploy_env(tmp_path, monkeypatch):
    """The environment a data engineer sets before `mvg-sync setup-prefect`."""
    env = {
        "MVG_LANDING_DIR": str(tmp_path / "landing"),
        "MVG_STATE_DIR": str(tmp_path / "state"),
        "MVG_REPORT_DIR": str(tmp_path / "reports"),
        "CLINIC24_BASE_URL": BASE_URL,
        "CLINIC24_CLIENT_ID": CLIENT_ID,
        "CLINIC24_CLIENT_SECRET": SECRET,
        "MVG_MAX_CANCEL_SHARE": "0.1",
    }
    for name in ["MVG_CANCEL_GUARD_FLOOR", "MVG_RETENTION_DAYS"]:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # no stray .env from the checkout
    return env


@pytest.fixture
def prefect_env(prefect_harness, deploy_env):
    """The test server, left without this module's Secret block and Variables afterwards.

    The server lives for the whole session: a stray secret would let other tests find
    credentials they are meant to miss.
    """
    yield deploy_env
    from prefect.blocks.system import Secret
    from prefect.variables import Variable

    from mvg_sync.deploy import VARIABLES
    from mvg_sync.settings import CLIENT_SECRET_BLOCK

    try:
        Secret.delete(CLIENT_SECRET_BLOCK)
    except Exception:  # noqa: BLE001 - already gone
        pass
    for name in VARIABLES.values():
        Variable.unset(name)


def _setup() -> tuple[int, str]:
    from mvg_sync.deploy import setup_from_environment

    out = io.StringIO()
    return setup_from_environment(out=out), out.getvalue()


def _ensure_work_pool() -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    from mvg_sync.deploy import WORK_POOL

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(WORK_POOL)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(
                name=WORK_POOL, type="process", base_job_template=ProcessWorker.get_default_base_job_template(),
            ))


def _prefect_deploy_all() -> subprocess.CompletedProcess:
    from prefect.settings import PREFECT_API_URL

    # The deploying shell holds neither Clinic24 credentials nor settings: all come from Prefect.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MVG_", "CLINIC24_", "PREFECT_"))}
    env.update(PREFECT_API_URL=PREFECT_API_URL.value(), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               DO_NOT_TRACK="1")
    return subprocess.run(
        [str(Path(sys.executable).parent / "prefect"), "--no-prompt", "deploy", "--all"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def test_prefect_yaml_uses_anchors_and_holds_no_secret_names():
    text = (REPO / "prefect.yaml").read_text()
    config = yaml.safe_load(text)
    assert {d["name"] for d in config["deployments"]} == set(EXPECTED)
    assert "*deployment_defaults" in text and "&mvg_sync_pool" in text
    # the parsed file (comments aside) neither holds nor templates the Clinic24 client
    assert "CLINIC24_CLIENT" not in json.dumps(config).upper()
    assert "prefect.blocks" not in json.dumps(config)
    for deployment in config["deployments"]:
        assert deployment["work_pool"]["name"] == "mvg-sync"
        assert deployment["enforce_parameter_schema"] is True


def test_deploy_all_creates_scheduled_limited_deployments_without_the_secret(prefect_env):
    from prefect.client.orchestration import get_client
    from prefect.exceptions import PrefectHTTPStatusError

    code, output = _setup()
    assert code == 0, output
    assert SECRET not in output
    _ensure_work_pool()
    result = _prefect_deploy_all()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    with get_client(sync_client=True) as client:
        for name, (flow_name, entrypoint, crons, parameters) in EXPECTED.items():
            deployment = client.read_deployment_by_name(f"{flow_name}/{name}")
            assert deployment.entrypoint == entrypoint
            assert deployment.work_pool_name == "mvg-sync"
            assert deployment.enforce_parameter_schema is True
            assert deployment.parameters == parameters
            schedules = sorted(
                ((s.schedule.cron, s.schedule.timezone, s.parameters or {}) for s in deployment.schedules),
                key=lambda item: item[0],
            )
            assert schedules == sorted(((c, "Europe/Stockholm", p) for c, p in crons), key=lambda i: i[0])
            assert all(s.active for s in deployment.schedules)
            env = deployment.job_variables["env"]
            assert env["MVG_LANDING_DIR"] == prefect_env["MVG_LANDING_DIR"]
            assert env["CLINIC24_BASE_URL"] == BASE_URL
            assert env["MVG_MAX_CANCEL_SHARE"] == "0.1"
            assert env["MVG_CANCEL_GUARD_FLOOR"] == "20"
            assert not any(k.startswith("CLINIC24_CLIENT") for k in env)
            # nothing anywhere in the stored deployment carries the secret
            assert SECRET not in json.dumps(deployment.model_dump(mode="json"))

        sync = client.read_deployment_by_name("booking_sync/booking-sync")
        # Prefect 3 keeps a deployment's limit as a global concurrency limit of its own
        assert sync.global_concurrency_limit is not None
        assert sync.global_concurrency_limit.limit == 1
        assert sync.global_concurrency_limit.active
        assert sync.concurrency_options.collision_strategy.value == "ENQUEUE"
        assert set(sync.parameter_openapi_schema["properties"]) == {"as_of", "wait_for_drop_s"}
        with pytest.raises(PrefectHTTPStatusError, match="Validation failed for field 'as_of'"):
            client.create_flow_run_from_deployment(sync.id, parameters={"as_of": 12})
        with pytest.raises(PrefectHTTPStatusError, match="Validation failed for field 'wait_for_drop_s'"):
            client.create_flow_run_from_deployment(sync.id, parameters={"wait_for_drop_s": "a while"})

        reports = client.read_deployment_by_name("control_reports/control-reports")
        assert reports.global_concurrency_limit.limit == 1
        assert reports.concurrency_options.collision_strategy.value == "ENQUEUE"
        with pytest.raises(PrefectHTTPStatusError, match="Validation failed for field 'period'"):
            client.create_flow_run_from_deployment(reports.id, parameters={"period": "last_month"})
        coverage = client.read_deployment_by_name("hsl_coverage/hsl-coverage")
        assert coverage.global_concurrency_limit is None


def test_clinic24_client_is_read_from_prefect_at_run_time(prefect_env, monkeypatch):
    from prefect.variables import Variable

    from mvg_sync.settings import CLIENT_ID_VARIABLE, MissingSetting, load_settings

    assert _setup()[0] == 0
    monkeypatch.delenv("CLINIC24_CLIENT_ID")
    monkeypatch.delenv("CLINIC24_CLIENT_SECRET")
    assert load_settings().clinic24_credentials() == (CLIENT_ID, SECRET)

    Variable.unset(CLIENT_ID_VARIABLE)
    with pytest.raises(MissingSetting, match="CLINIC24_CLIENT_ID.*clinic24_client_id") as missing:
        load_settings().clinic24_credentials()
    assert SECRET not in str(missing.value)


def test_missing_secret_block_is_named(prefect_env, monkeypatch):
    from prefect.blocks.system import Secret

    from mvg_sync.settings import CLIENT_SECRET_BLOCK, MissingSetting, load_settings

    assert _setup()[0] == 0
    Secret.delete(CLIENT_SECRET_BLOCK)
    monkeypatch.delenv("CLINIC24_CLIENT_SECRET")
    with pytest.raises(MissingSetting, match="CLINIC24_CLIENT_SECRET.*clinic24-client-secret"):
        load_settings().clinic24_credentials()


def test_setup_names_every_missing_variable_and_writes_nothing(prefect_env, monkeypatch):
    from prefect.variables import Variable

    assert _setup()[0] == 0
    monkeypatch.delenv("MVG_STATE_DIR")
    monkeypatch.delenv("CLINIC24_CLIENT_SECRET")
    monkeypatch.setenv("MVG_LANDING_DIR", "/elsewhere/landing")
    code, output = _setup()
    assert code == 1
    assert "MVG_STATE_DIR is not set" in output
    assert "CLINIC24_CLIENT_SECRET is not set" in output
    assert "MVG_REPORT_DIR" not in output
    assert Variable.get("mvg_landing_dir") == prefect_env["MVG_LANDING_DIR"]


def test_setup_reports_a_bad_threshold_by_name(deploy_env, monkeypatch):
    monkeypatch.setenv("MVG_MAX_CANCEL_SHARE", "1.5")
    code, output = _setup()
    assert code == 1
    assert "MVG_MAX_CANCEL_SHARE" in output
