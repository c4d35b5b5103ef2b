"""Run-time configuration (operations.md), built when a command or flow starts, never at import."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mvg_sync.clinic24.baseurl import check_base_url, is_loopback_url
from mvg_sync.fileperms import restrict_umask

SANDBOX_CLIENT_ID = "mvg-sync"
SANDBOX_CLIENT_SECRET = "sandbox-secret"  # noqa: S105 - the documented sandbox default

# Where a deployment finds the Clinic24 client when the environment does not hold it
# (created by `mvg-sync setup-prefect`). The id is not secret, so it is a Prefect Variable
# beside the other settings; the secret is a Secret block, masked in the UI and API.
CLIENT_SECRET_BLOCK = "clinic24-client-secret"  # noqa: S105 - a block name, not a secret
CLIENT_ID_VARIABLE = "clinic24_client_id"


class MissingSetting(RuntimeError):
    """A required setting is absent; the message names it."""


class Settings(BaseSettings):
    """Every knob in operations.md, read from the environment or a `.env` file."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    landing_dir: Path = Field(Path("data/landing"), alias="MVG_LANDING_DIR")
    state_dir: Path = Field(Path("data/state"), alias="MVG_STATE_DIR")
    report_dir: Path = Field(Path("data/reports"), alias="MVG_REPORT_DIR")
    clinic24_base_url: str = Field("http://127.0.0.1:8024", alias="CLINIC24_BASE_URL")
    clinic24_client_id: str | None = Field(None, alias="CLINIC24_CLIENT_ID")
    clinic24_client_secret: SecretStr | None = Field(None, alias="CLINIC24_CLIENT_SECRET")
    max_cancel_share: float = Field(0.05, alias="MVG_MAX_CANCEL_SHARE", ge=0, le=1)
    cancel_guard_floor: int = Field(20, alias="MVG_CANCEL_GUARD_FLOOR", ge=0)
    retention_days: int = Field(60, alias="MVG_RETENTION_DAYS", ge=1)

    @field_validator("landing_dir", "state_dir", "report_dir", "clinic24_base_url", mode="before")
    @classmethod
    def _not_blank(cls, value: object, info) -> object:
        # An empty value would silently become the working directory (Path("") == "."); in a
        # deployment it means the Prefect Variable was missing when `prefect deploy` ran.
        if isinstance(value, str) and not value.strip():
            alias = cls.model_fields[info.field_name].alias
            raise MissingSetting(
                f"{alias} is empty (in a deployment: Prefect Variable {alias.lower()} was missing at deploy "
                "time; run `mvg-sync setup-prefect`, then `prefect deploy --all`)"
            )
        return value

    @property
    def state_db(self) -> Path:
        """The integration's DuckDB state file."""
        return self.state_dir / "state.duckdb"

    @property
    def is_sandbox(self) -> bool:
        """True when the base URL's real host is loopback (127.0.0.0/8, ::1, localhost).

        Parsed as a URL: `http://127.0.0.1:8024@clinic24.example.test` goes to
        clinic24.example.test and is no sandbox.
        """
        return is_loopback_url(self.clinic24_base_url)

    def clinic24_credentials(self) -> tuple[str, str]:
        """Client id and secret: environment first, then Prefect (Variable / Secret block).

        The sandbox defaults apply only to a loopback sandbox. The secret is never logged
        and never part of an error message. A base URL that would carry them in clear (plain
        http to anything but loopback) raises InsecureBaseURL before any is looked up.
        """
        check_base_url(self.clinic24_base_url)
        client_id = self.clinic24_client_id
        secret = self.clinic24_client_secret.get_secret_value() if self.clinic24_client_secret else None
        if self.is_sandbox:
            return client_id or SANDBOX_CLIENT_ID, secret or SANDBOX_CLIENT_SECRET
        if not client_id:
            client_id = _from_prefect("variable", CLIENT_ID_VARIABLE, env_name="CLINIC24_CLIENT_ID")
        if not secret:
            secret = _from_prefect("secret", CLIENT_SECRET_BLOCK, env_name="CLINIC24_CLIENT_SECRET")
        return client_id, secret


def _from_prefect(kind: str, name: str, *, env_name: str) -> str:
    """Read a Prefect Variable or Secret block, or raise MissingSetting naming both places."""
    where = f"Prefect Variable '{name}'" if kind == "variable" else f"Prefect Secret block '{name}'"
    missing = f"{env_name} is not set (neither in the environment nor as {where})"
    if not _prefect_api_available():
        raise MissingSetting(f"{missing}; no Prefect API is configured to look it up")
    try:
        if kind == "variable":
            from prefect.variables import Variable

            value = Variable.get(name, default=None)
        else:
            from prefect.blocks.system import Secret

            value = Secret.load(name).get()
    except ValueError:  # Prefect's "Unable to find block document named …"
        value = None
    except Exception as exc:  # noqa: BLE001 - reported by name; the detail may not hold the value
        raise MissingSetting(f"{missing}: Prefect lookup failed ({type(exc).__name__})") from None
    if value is None or not str(value).strip():
        raise MissingSetting(missing)
    return str(value)


def _prefect_api_available() -> bool:
    """A Prefect API to ask: a configured URL, or the one serving the current run."""
    from prefect.context import FlowRunContext, TaskRunContext
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value()) or FlowRunContext.get() is not None or TaskRunContext.get() is not None


def load_settings(**overrides: object) -> Settings:
    """Build settings now (environment + .env), with explicit overrides winning.

    Every command, flow and the sandbox start here, so this is also where the process's umask
    becomes owner-only: the state, snapshots, landing copies, Data Docs and reports it goes on
    to write hold patient data, and the libraries writing them follow the umask (issue 14).
    """
    restrict_umask()
    return Settings(**overrides)  # type: ignore[arg-type]
