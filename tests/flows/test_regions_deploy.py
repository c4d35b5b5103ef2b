"""Issue 15: the state URL's password in a Secret block, and one deployment set per region of a region file."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import pytest
import yaml

from mvg_sync.regions import RegionFileError, load_regions, render_deployments

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "pg-pass-not-in-any-variable-91c2"  # noqa: S105 - a test value, searched for below
POOL = "mvg-sync"
FLOWS = {"booking-sync": "booking_sync", "control-reports": "control_reports", "hsl-coverage": "hsl_coverage"}


def _delete_blocks_and_variables(blocks: list[str], prefix_tag: str = "mvg-sync") -> None:
    """The session's server outlives this module: leave no secret or Variable for other tests."""
    from prefect.blocks.system import Secret
    from prefect.client.orchestration import get_client
    from prefect.variables import Variable

    for block in blocks:
        try:
            Secret.delete(block)
        except Exception:  # noqa: BLE001 - already gone
            pass
    with get_client(sync_client=True) as client:
        for variable in client.read_variables():
            if prefix_tag in (variable.tags or []):
                Variable.unset(variable.name)


@pytest.fixture
def single_env(tmp_path, monkeypatch, prefect_harness):
    env = {
        "MVG_LANDING_DIR": str(tmp_path / "landing"),
        "MVG_STATE_DIR": str(tmp_path / "state"),
        "MVG_REPORT_DIR": str(tmp_path / "reports"),
        "CLINIC24_BASE_URL": "https://clinic24.test.regional.example",
        "CLINIC24_CLIENT_ID": "region-gavleborg",
        "CLINIC24_CLIENT_SECRET": "client-secret-x",
        "MVG_STATE_URL": f"postgresql://mvg:{quote(PASSWORD)}@db.internal:5432/mvg",
    }
    for name in ["MVG_STATE_PASSWORD", "MVG_STATE_SCHEMA", "MVG_REGION"]:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    yield env
    _delete_blocks_and_variables(["mvg-state-password", "clinic24-client-secret"])


def test_setup_puts_the_state_password_in_a_secret_block_only(single_env, monkeypatch):
    from prefect.blocks.system import Secret
    from prefect.client.orchestration import get_client
    from prefect.variables import Variable

    from mvg_sync.deploy import setup_from_environment
    from mvg_sync.settings import STATE_PASSWORD_BLOCK, load_settings

    out = io.StringIO()
    assert setup_from_environment(out=out) == 0, out.getvalue()
    assert PASSWORD not in out.getvalue() and quote(PASSWORD) not in out.getvalue()
    assert Variable.get("mvg_state_url") == "postgresql://mvg@db.internal:5432/mvg"
    assert Secret.load(STATE_PASSWORD_BLOCK).get() == PASSWORD
    with get_client(sync_client=True) as client:
        assert PASSWORD not in json.dumps([v.model_dump(mode="json") for v in client.read_variables()])

    # the flow run's environment as prefect.yaml templates it: the bare URL, no password
    monkeypatch.setenv("MVG_STATE_URL", Variable.get("mvg_state_url"))
    settings = load_settings()
    assert unquote(urlsplit(settings.state_dsn()).password) == PASSWORD
    assert PASSWORD not in repr(settings) and PASSWORD not in settings.state_url_shown

    # the store taken off the server again: the deployment must not keep pointing at it
    monkeypatch.delenv("MVG_STATE_URL")
    out = io.StringIO()
    assert setup_from_environment(out=out) == 0
    assert Variable.get("mvg_state_url", default=None) is None
    assert "mvg_state_url removed" in out.getvalue()


def _regions_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "regions.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_every_problem_of_a_region_file_is_named_at_once(tmp_path):
    path = _regions_file(tmp_path, f"""
[regions.gavleborg]
landing_dir = "{tmp_path}/shared/landing"
state_dir = "{tmp_path}/shared/state"
report_dir = "relative/reports"
clinic24_base_url = "http://clinic24.example"
clinic24_client_id = "g"
state_url = "postgresql://mvg:pw@db/mvg"

[regions.dalarna]
landing_dir = "{tmp_path}/shared/landing"
state_dir = "{tmp_path}/dalarna/state"
report_dir = "{tmp_path}/dalarna/reports"
clinic24_base_url = "https://clinic24.dalarna.example"
typo_key = 1

[regions.Uppsala]
""")
    with pytest.raises(RegionFileError) as bad:
        load_regions(path)
    message = str(bad.value)
    for expected in [
        "[regions.gavleborg]: report_dir must be absolute",
        "[regions.gavleborg]: state_url holds a password", "MVG_STATE_PASSWORD_GAVLEBORG",
        "[regions.gavleborg]: ",  # the plain-http base URL
        "[regions.dalarna]: unknown key typo_key", "[regions.dalarna]: clinic24_client_id is missing",
        "[regions.Uppsala]: the code must be",
        "regions gavleborg and dalarna share the folder",
    ]:
        assert expected in message, message
    assert "pw@" not in message
    assert "http://clinic24.example" in message or "https" in message


def test_the_checked_in_region_file_gives_gavleborgs_three_deployments():
    regions = load_regions(REPO / "deploy" / "regions.toml")
    assert [r.code for r in regions] == ["gavleborg"]
    document = yaml.safe_load(render_deployments(regions))
    names = [d["name"] for d in document["deployments"]]
    assert names == ["booking-sync-gavleborg", "control-reports-gavleborg", "hsl-coverage-gavleborg"]
    template = {d["name"]: d for d in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]}
    for deployment in document["deployments"]:
        original = template[deployment["name"].removesuffix("-gavleborg")]
        # the shape is prefect.yaml's: schedules, parameters, limits, entrypoint
        for key in ["entrypoint", "parameters", "schedules", "concurrency_limit", "enforce_parameter_schema"]:
            assert deployment.get(key) == original.get(key), key
        env = deployment["work_pool"]["job_variables"]["env"]
        assert env["MVG_REGION"] == "gavleborg"
        assert env["MVG_STATE_URL"] == "{{ prefect.variables.mvg_state_url_gavleborg }}"
        assert deployment["work_pool"]["work_queue_name"] == "gavleborg"


def _two_regions(tmp_path: Path) -> Path:
    blocks = []
    for code in ["gavleborg", "vastra-gotaland"]:
        blocks.append(f"""
[regions.{code}]
name = "Region {code}"
landing_dir = "{tmp_path}/{{region}}/landing"
state_dir = "{tmp_path}/{{region}}/state"
clinic24_base_url = "https://clinic24.{code}.example"
clinic24_client_id = "client-{code}"
state_url = "postgresql://mvg@db.internal:5432/mvg"
""")
    return _regions_file(tmp_path, f'[defaults]\nreport_dir = "{tmp_path}/{{region}}/reports"\n' + "".join(blocks))


@pytest.fixture
def regions_env(tmp_path, monkeypatch, prefect_harness):
    secrets = {
        "CLINIC24_CLIENT_SECRET_GAVLEBORG": "client-secret-g-4411",
        "CLINIC24_CLIENT_SECRET_VASTRA_GOTALAND": "client-secret-v-8822",
        "MVG_STATE_PASSWORD_GAVLEBORG": "state-pw-g-1357",
        "MVG_STATE_PASSWORD_VASTRA_GOTALAND": "state-pw-v-2468",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    for name in [k for k in os.environ if k.startswith(("MVG_", "CLINIC24_")) and k not in secrets]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield secrets
    _delete_blocks_and_variables([f"{kind}-{code}" for kind in ["clinic24-client-secret", "mvg-state-password"]
                                  for code in ["gavleborg", "vastra-gotaland"]])
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        for deployment in client.read_deployments():
            if deployment.name.endswith(("-gavleborg", "-vastra-gotaland")):
                client.delete_deployment(deployment.id)


def _ensure_work_pool() -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(POOL)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(
                name=POOL, type="process", base_job_template=ProcessWorker.get_default_base_job_template(),
            ))


def deploy_regions(regions_file: Path, out: Path, edit=None) -> subprocess.CompletedProcess:
    """`mvg-sync setup-prefect --regions`, `mvg-sync deployments --regions`, `prefect deploy`, as documented.

    `edit(path)`, if given, changes the generated file before it is deployed.
    """
    from prefect.settings import PREFECT_API_URL

    secret = ("CLINIC24_CLIENT_SECRET_", "MVG_STATE_PASSWORD_")
    base = {k: v for k, v in os.environ.items() if k.startswith(secret) or not k.startswith(("MVG_", "PREFECT_"))}
    base.update(PREFECT_API_URL=PREFECT_API_URL.value(), PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
    bin_dir = Path(sys.executable).parent
    _ensure_work_pool()
    for args in (["setup-prefect", "--regions", str(regions_file)],
                 ["deployments", "--regions", str(regions_file), "--out", str(out)]):
        done = subprocess.run([str(bin_dir / "mvg-sync"), *args], cwd=REPO, env=base, capture_output=True,
                              text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
    if edit is not None:
        edit(out)
    # the deploying shell holds no secrets: they are in the blocks now
    env = {k: v for k, v in base.items() if not k.startswith(("CLINIC24_", "MVG_"))}
    return subprocess.run(
        [str(bin_dir / "prefect"), "--no-prompt", "deploy", "--all", "--prefect-file", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180, check=False,
    )


def test_each_region_gets_its_own_deployments_queue_limits_and_secrets(regions_env, tmp_path, monkeypatch):
    from prefect.client.orchestration import get_client

    from mvg_sync.settings import load_settings

    result = deploy_regions(_two_regions(tmp_path), tmp_path / "prefect.regions.yaml")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    limits = {}
    with get_client(sync_client=True) as client:
        for code in ["gavleborg", "vastra-gotaland"]:
            for name, flow_name in FLOWS.items():
                deployment = client.read_deployment_by_name(f"{flow_name}/{name}-{code}")
                assert deployment.work_pool_name == POOL
                assert deployment.work_queue_name == code
                env = deployment.job_variables["env"]
                assert env["MVG_REGION"] == code
                assert env["MVG_LANDING_DIR"] == f"{tmp_path}/{code}/landing"
                assert env["MVG_STATE_DIR"] == f"{tmp_path}/{code}/state"
                assert env["CLINIC24_BASE_URL"] == f"https://clinic24.{code}.example"
                assert env["MVG_STATE_URL"] == "postgresql://mvg@db.internal:5432/mvg"
                assert env["MVG_STATE_SCHEMA"] == code.replace("-", "_")
                assert env["MVG_MAX_CANCEL_SHARE"] == "0.05"
                dumped = json.dumps(deployment.model_dump(mode="json"))
                assert not [s for s in regions_env.values() if s in dumped]
                if name == "booking-sync":
                    limits[code] = deployment.global_concurrency_limit
                    assert deployment.concurrency_options.collision_strategy.value == "ENQUEUE"
            # at run time, the region's flow finds its own client and state password
            for name in [k for k in os.environ if k.startswith(("MVG_", "CLINIC24_"))]:
                monkeypatch.delenv(name)
            for name, value in client.read_deployment_by_name(f"booking_sync/booking-sync-{code}").job_variables[
                "env"
            ].items():
                monkeypatch.setenv(name, value)
            settings = load_settings()
            suffix = code.upper().replace("-", "_")
            assert settings.clinic24_credentials() == (f"client-{code}", regions_env[f"CLINIC24_CLIENT_SECRET_{suffix}"])
            dsn = urlsplit(settings.state_dsn())
            assert unquote(dsn.password) == regions_env[f"MVG_STATE_PASSWORD_{suffix}"]
            assert settings.state_schema == code.replace("-", "_")
    # one limit per region: a region's running sync never holds another's back
    assert limits["gavleborg"].limit == limits["vastra-gotaland"].limit == 1
    assert limits["gavleborg"].id != limits["vastra-gotaland"].id


def test_kubernetes_pool_template_and_deployments_fit_together(regions_env, tmp_path):
    """docs/scaling.md's move to Kubernetes: the pool's template and the generated deployments."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    template = json.loads((REPO / "deploy" / "kubernetes" / "base-job-template.json").read_text())
    declared = set(template["variables"]["properties"])
    used = set(re_placeholders(json.dumps(template["job_configuration"])))
    assert used <= declared, used - declared

    regions = load_regions(_two_regions(tmp_path))
    document = yaml.safe_load(render_deployments(regions, REPO / "deploy" / "kubernetes" / "prefect.yaml"))
    assert len(document["deployments"]) == 6
    for deployment in document["deployments"]:
        code = deployment["work_pool"]["work_queue_name"]
        variables = deployment["work_pool"]["job_variables"]
        assert deployment["work_pool"]["name"] == "mvg-sync-k8s"
        assert set(template["variables"]["required"]) <= set(variables)
        assert variables["state_claim"] == f"mvg-sync-{code}-state" and variables["region"] == code
        assert variables["env"]["MVG_STATE_DIR"] == "/data/state"
        assert variables["env"]["CLINIC24_BASE_URL"] == "{{ prefect.variables.clinic24_base_url_" + \
            code.replace("-", "_") + " }}"
    assert document["pull"][0]["prefect.deployments.steps.set_working_directory"]["directory"] == "/opt/mvg-sync"

    # the server takes the template as a pool's (it checks every placeholder is a variable)
    with get_client(sync_client=True) as client:
        pool = client.create_work_pool(WorkPoolCreate(name="mvg-sync-k8s-check", type="kubernetes",
                                                      base_job_template=template))
        try:
            assert pool.base_job_template["variables"]["required"] == template["variables"]["required"]
        finally:
            client.delete_work_pool("mvg-sync-k8s-check")


def re_placeholders(text: str) -> list[str]:
    import re

    return re.findall(r"\{\{\s*([a-z_]+)\s*\}\}", text)
