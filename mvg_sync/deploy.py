"""`mvg-sync setup-prefect`: the Prefect Secret block and Variables the deployments read, from the environment."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TextIO

from pydantic import ValidationError

from mvg_sync.settings import (
    CLIENT_ID_VARIABLE,
    CLIENT_SECRET_BLOCK,
    STATE_PASSWORD_BLOCK,
    MissingSetting,
    Settings,
    split_password,
)

WORK_POOL = "mvg-sync"
VARIABLE_TAGS = ["mvg-sync"]

# Environment name -> Prefect Variable name (its lower-case form; prefect.yaml templates these
# into the flow runs' environment, the client id is read at run time by settings.py).
VARIABLES = {
    "MVG_LANDING_DIR": "mvg_landing_dir",
    "MVG_STATE_DIR": "mvg_state_dir",
    "MVG_REPORT_DIR": "mvg_report_dir",
    "CLINIC24_BASE_URL": "clinic24_base_url",
    "CLINIC24_CLIENT_ID": CLIENT_ID_VARIABLE,
    "MVG_MAX_CANCEL_SHARE": "mvg_max_cancel_share",
    "MVG_CANCEL_GUARD_FLOOR": "mvg_cancel_guard_floor",
    "MVG_RETENTION_DAYS": "mvg_retention_days",
    # Issue 15: the URL without its password (which goes to the Secret block STATE_PASSWORD_BLOCK)
    "MVG_STATE_URL": "mvg_state_url",
    "MVG_STATE_SCHEMA": "mvg_state_schema",
}
# A deployment runs in a worker's working directory, so its folders and Clinic24 must be
# stated, not defaulted; the thresholds have safe defaults (operations.md).
REQUIRED = ("MVG_LANDING_DIR", "MVG_STATE_DIR", "MVG_REPORT_DIR", "CLINIC24_BASE_URL")
CREDENTIALS = ("CLINIC24_CLIENT_ID", "CLINIC24_CLIENT_SECRET")


@dataclass
class PrefectConfig:
    """What setup would write: Variable values (never the secret), the secret, and what is wrong."""

    variables: dict[str, str] = field(default_factory=dict)
    secret: str | None = field(default=None, repr=False)
    state_password: str | None = field(default=None, repr=False)
    problems: list[str] = field(default_factory=list)


def config_from_environment() -> PrefectConfig:
    """Read and validate the environment (and `.env`) into the Prefect objects to create."""
    config = PrefectConfig()
    try:
        settings = Settings()
    except ValidationError as exc:
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"])
            config.problems.append(f"{name}: {error['msg']}")
        return config
    except MissingSetting as exc:
        config.problems.append(str(exc))
        return config

    given = {Settings.model_fields[name].alias for name in settings.model_fields_set}
    required = list(REQUIRED) + ([] if settings.is_sandbox else list(CREDENTIALS))
    blank = {
        "CLINIC24_CLIENT_ID": not (settings.clinic24_client_id or "").strip(),
        "CLINIC24_CLIENT_SECRET": settings.clinic24_client_secret is None
        or not settings.clinic24_client_secret.get_secret_value().strip(),
    }
    config.problems += [
        f"{name} is not set" for name in required if name not in given or blank.get(name, False)
    ]

    values = {
        "MVG_LANDING_DIR": str(settings.landing_dir.expanduser().resolve()),
        "MVG_STATE_DIR": str(settings.state_dir.expanduser().resolve()),
        "MVG_REPORT_DIR": str(settings.report_dir.expanduser().resolve()),
        "CLINIC24_BASE_URL": settings.clinic24_base_url,
        "CLINIC24_CLIENT_ID": settings.clinic24_client_id,
        "MVG_MAX_CANCEL_SHARE": str(settings.max_cancel_share),
        "MVG_CANCEL_GUARD_FLOOR": str(settings.cancel_guard_floor),
        "MVG_RETENTION_DAYS": str(settings.retention_days),
        "MVG_STATE_URL": split_password(settings.state_url)[0] if settings.state_url else None,
        "MVG_STATE_SCHEMA": settings.state_schema,
    }
    # Strings throughout: they become environment variables of the flow run.
    config.variables = {VARIABLES[env]: value for env, value in values.items() if value}
    if settings.clinic24_client_secret is not None:
        config.secret = settings.clinic24_client_secret.get_secret_value() or None
    if settings.state_url:
        in_url = split_password(settings.state_url)[1]
        given_password = settings.state_password.get_secret_value() if settings.state_password else None
        config.state_password = in_url or given_password or None
    return config


def setup_from_environment(out: TextIO | None = None) -> int:
    """Create or overwrite the Secret block and Variables; 1 naming every missing variable.

    Idempotent: running it again with the same environment changes nothing, with a new one
    overwrites. Nothing is written unless everything required is present.
    """
    out = out or sys.stderr
    config = config_from_environment()
    if config.problems:
        out.write("setup-prefect: nothing written; fix the environment first:\n")
        for problem in config.problems:
            out.write(f"  - {problem}\n")
        return 1

    from prefect.blocks.system import Secret
    from prefect.variables import Variable

    for name, value in sorted(config.variables.items()):
        Variable.set(name, value, tags=VARIABLE_TAGS, overwrite=True)
        out.write(f"variable {name} = {value}\n")
    _unset_absent_state(config.variables, out)
    if config.secret is not None:
        Secret(value=config.secret).save(CLIENT_SECRET_BLOCK, overwrite=True)
        out.write(f"secret block {CLIENT_SECRET_BLOCK} saved (value not shown)\n")
    else:
        out.write(f"no CLINIC24_CLIENT_SECRET: secret block {CLIENT_SECRET_BLOCK} left as it is (sandbox)\n")
    if config.state_password is not None:
        Secret(value=config.state_password).save(STATE_PASSWORD_BLOCK, overwrite=True)
        out.write(f"secret block {STATE_PASSWORD_BLOCK} saved (value not shown)\n")
    out.write(
        f"next: prefect work-pool create {WORK_POOL} --type process (once), "
        f"prefect --no-prompt deploy --all, prefect worker start --pool {WORK_POOL}\n"
    )
    return 0


def _unset_absent_state(variables: dict[str, str], out: TextIO, suffix: str = "") -> None:
    """Remove a state URL/schema Variable the environment no longer names.

    A stale `mvg_state_url` would move the next deployment's store to a server the operator
    has just taken out of the environment; absent, deployments use the DuckDB file.
    """
    from prefect.variables import Variable

    for env in ("MVG_STATE_URL", "MVG_STATE_SCHEMA"):
        name = VARIABLES[env] + suffix
        if name not in variables and Variable.get(name, default=None) is not None:
            Variable.unset(name)
            out.write(f"variable {name} removed ({env} not set)\n")
