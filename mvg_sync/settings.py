"""Run-time configuration (operations.md), built when a command or flow starts, never at import."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SANDBOX_CLIENT_ID = "mvg-sync"
SANDBOX_CLIENT_SECRET = "sandbox-secret"  # noqa: S105 - the documented sandbox default


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

    @property
    def state_db(self) -> Path:
        """The integration's DuckDB state file."""
        return self.state_dir / "state.duckdb"

    @property
    def is_sandbox(self) -> bool:
        """True when the base URL points at a loopback sandbox."""
        host = self.clinic24_base_url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
        return host in {"127.0.0.1", "localhost", "::1", "[::1]"}

    def clinic24_credentials(self) -> tuple[str, str]:
        """Client id and secret; the sandbox defaults apply only to a loopback sandbox."""
        client_id = self.clinic24_client_id
        secret = self.clinic24_client_secret.get_secret_value() if self.clinic24_client_secret else None
        if self.is_sandbox:
            return client_id or SANDBOX_CLIENT_ID, secret or SANDBOX_CLIENT_SECRET
        if not client_id:
            raise MissingSetting("CLINIC24_CLIENT_ID is not set")
        if not secret:
            raise MissingSetting("CLINIC24_CLIENT_SECRET is not set")
        return client_id, secret


def load_settings(**overrides: object) -> Settings:
    """Build settings now (environment + .env), with explicit overrides winning."""
    return Settings(**overrides)  # type: ignore[arg-type]
