"""Run-time configuration (operations.md), built when a command or flow starts, never at import."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

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
# The state database's password, when MVG_STATE_URL names a server: a Secret block like the
# client secret, so it is never a run parameter, a job variable, a log line or a Variable.
STATE_PASSWORD_BLOCK = "mvg-state-password"  # noqa: S105 - a block name, not a secret

# A region code names Prefect objects (blocks allow lowercase letters, digits and dashes,
# Variables also underscores) and deployments, so it is kept to what all of them accept.
REGION_CODE = re.compile(r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$")


def region_block(base: str, region: str | None) -> str:
    """A Secret block's name for `region` (the default single-region setup: the bare name)."""
    return f"{base}-{region}" if region else base


def region_variable(base: str, region: str | None) -> str:
    """A Prefect Variable's name for `region` (the default single-region setup: the bare name)."""
    return f"{base}_{region.replace('-', '_')}" if region else base


def redact_url(url: str) -> str:
    """The URL with any password (user info or libpq's `password=` parameter) as `***`, for logs."""
    bare, password = split_password(url)
    if password is None:
        return url
    parts = urlsplit(bare)
    if urlsplit(url).password is not None:
        user, host = parts.netloc.rsplit("@", 1)
        parts = parts._replace(netloc=f"{user}:***@{host}")
    if "password=" in urlsplit(url).query:
        parts = parts._replace(query="&".join(filter(None, [parts.query, "password=***"])))
    return urlunsplit(parts)


def split_password(url: str) -> tuple[str, str | None]:
    """(the URL without its password, the password or None): the first may be shown anywhere.

    The password may be in the user info or, as libpq also accepts, a `password=` parameter.
    """
    parts = urlsplit(url)
    password = unquote(parts.password) if parts.password is not None else None
    if password is not None:
        user_info, host = parts.netloc.rsplit("@", 1)
        parts = parts._replace(netloc=user_info.split(":", 1)[0] + "@" + host)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(key == "password" for key, _ in query):
        password = password or next(value for key, value in query if key == "password")
        parts = parts._replace(query=urlencode([(k, v) for k, v in query if k != "password"]))
    return urlunsplit(parts), password


class MissingSetting(RuntimeError):
    """A required setting is absent; the message names it."""


class InvalidSetting(MissingSetting):
    """A setting holding a secret is unusable; the message names it, never its value.

    Raised instead of a ValueError, which pydantic would wrap with the input echoed.
    """


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
    # Issue 15: absent (or empty, as a deployment templates a missing Variable) = the DuckDB
    # file in MVG_STATE_DIR; `postgresql://user@host:5432/db` = the store on that server.
    state_url: str | None = Field(None, alias="MVG_STATE_URL", repr=False)  # may hold a password
    state_password: SecretStr | None = Field(None, alias="MVG_STATE_PASSWORD", repr=False)
    # One schema per region when regions share a database (deploy/regions.toml).
    state_schema: str | None = Field(None, alias="MVG_STATE_SCHEMA")
    # The region a deployment serves: picks its Secret blocks and Variables (`…-<region>`).
    # Absent: the single-region setup with the bare names (Gävleborg as deployed today).
    region: str | None = Field(None, alias="MVG_REGION")

    @field_validator("state_url", "state_schema", "region", mode="before")
    @classmethod
    def _blank_is_absent(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("state_url")
    @classmethod
    def _state_url_scheme(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if urlsplit(value).scheme not in ("postgresql", "postgres"):
            # never echo the value: it may hold a password
            raise InvalidSetting("MVG_STATE_URL must be a postgresql://user@host/db URL, or unset for the "
                             "DuckDB file in MVG_STATE_DIR")
        return value

    @field_validator("state_schema")
    @classmethod
    def _schema_identifier(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", value):
            raise ValueError("MVG_STATE_SCHEMA must be a lowercase SQL identifier (a-z, 0-9, _)")
        return value

    @field_validator("region")
    @classmethod
    def _region_code(cls, value: str | None) -> str | None:
        if value is not None and not REGION_CODE.fullmatch(value):
            raise ValueError("MVG_REGION must be a region code: lowercase letters, digits and dashes")
        return value

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
    def state_url_shown(self) -> str | None:
        """MVG_STATE_URL as it may be shown: the password, if any, as `***`."""
        return redact_url(self.state_url) if self.state_url else None

    def state_dsn(self) -> str | None:
        """The full connection URL for the store, password included; None = the DuckDB file.

        The password comes from the URL itself (a local `.env`), MVG_STATE_PASSWORD, or the
        Secret block `mvg-state-password[-<region>]` (a deployment); none of them: libpq's own
        (PGPASSWORD, ~/.pgpass, trust). The result must never be logged: use state_url_shown.
        The schema is the store's to apply (MVG_STATE_SCHEMA, or `?schema=` in the URL).
        """
        if not self.state_url:
            return None
        bare, password = split_password(self.state_url)
        if password is None and self.state_password is not None:
            password = self.state_password.get_secret_value() or None
        if password is None:
            password = _optional_secret(region_block(STATE_PASSWORD_BLOCK, self.region))
        parts = urlsplit(bare)
        if password is not None:
            user, host = parts.netloc.rsplit("@", 1) if "@" in parts.netloc else ("", parts.netloc)
            parts = parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}")
        return urlunsplit(parts)

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
            client_id = _from_prefect(
                "variable", region_variable(CLIENT_ID_VARIABLE, self.region), env_name="CLINIC24_CLIENT_ID"
            )
        if not secret:
            secret = _from_prefect(
                "secret", region_block(CLIENT_SECRET_BLOCK, self.region), env_name="CLINIC24_CLIENT_SECRET"
            )
        return client_id, secret


def _optional_secret(name: str) -> str | None:
    """A Secret block's value, or None when there is no Prefect API or no such block."""
    if not _prefect_api_available():
        return None
    try:
        return _from_prefect("secret", name, env_name="MVG_STATE_PASSWORD")
    except MissingSetting:
        return None


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
    settings = Settings(**overrides)  # type: ignore[arg-type]
    from mvg_sync import store

    # issue 15: the store on PostgreSQL, its password from the URL, MVG_STATE_PASSWORD or the Secret block
    store.use_url(settings.state_dsn() if settings.state_url else None)
    return settings
