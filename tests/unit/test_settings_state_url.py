"""MVG_STATE_URL and the region settings (issue 15.1): absent = DuckDB, the password never shown."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pytest
from pydantic import ValidationError

from mvg_sync.settings import (
    InvalidSetting,
    load_settings,
    redact_url,
    region_block,
    region_variable,
    split_password,
)

PASSWORD = "s3cret/with:odd@chars"  # noqa: S105 - a test value, searched for below


@pytest.fixture(autouse=True)
def _clean(monkeypatch, tmp_path):
    for name in ["MVG_STATE_URL", "MVG_STATE_PASSWORD", "MVG_STATE_SCHEMA", "MVG_REGION", "PREFECT_API_URL"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env of the checkout


@pytest.mark.parametrize("value", [None, "", "  "])
def test_absent_or_empty_url_is_the_duckdb_file(monkeypatch, value):
    if value is not None:
        monkeypatch.setenv("MVG_STATE_URL", value)  # a deployment templates a missing Variable as ""
    settings = load_settings()
    assert settings.state_url is None and settings.state_dsn() is None
    assert settings.state_db.name == "state.duckdb"


def test_password_in_the_url_is_used_but_never_shown(monkeypatch):
    from urllib.parse import quote

    monkeypatch.setenv("MVG_STATE_URL", f"postgresql://mvg:{quote(PASSWORD, safe='')}@db.internal:5432/mvg")
    settings = load_settings()
    assert urlsplit(settings.state_dsn()).password is not None
    assert unquote(urlsplit(settings.state_dsn()).password) == PASSWORD
    shown = settings.state_url_shown
    assert shown == "postgresql://mvg:***@db.internal:5432/mvg"
    assert quote(PASSWORD, safe="") not in shown
    assert quote(PASSWORD, safe="") not in repr(settings) and PASSWORD not in repr(settings)


def test_password_from_the_environment_is_quoted_into_the_dsn(monkeypatch):
    monkeypatch.setenv("MVG_STATE_URL", "postgresql://mvg@db.internal/mvg")
    monkeypatch.setenv("MVG_STATE_PASSWORD", PASSWORD)
    monkeypatch.setenv("MVG_STATE_SCHEMA", "gavleborg")
    settings = load_settings()
    parts = urlsplit(settings.state_dsn())
    assert (parts.username, unquote(parts.password), parts.hostname, parts.path) == ("mvg", PASSWORD, "db.internal", "/mvg")
    assert settings.state_schema == "gavleborg" and not parts.query  # the store applies the schema
    assert PASSWORD not in repr(settings)
    assert settings.state_url_shown == "postgresql://mvg@db.internal/mvg"


def test_no_password_anywhere_leaves_it_to_libpq(monkeypatch):
    monkeypatch.setenv("MVG_STATE_URL", "postgresql://mvg@db.internal/mvg")
    assert load_settings().state_dsn() == "postgresql://mvg@db.internal/mvg"


def test_a_bad_url_is_named_without_echoing_its_password(monkeypatch):
    monkeypatch.setenv("MVG_STATE_URL", f"mysql://mvg:{PASSWORD}@db/mvg")
    with pytest.raises(InvalidSetting) as bad:
        load_settings()
    assert "MVG_STATE_URL" in str(bad.value) and PASSWORD not in str(bad.value)


@pytest.mark.parametrize(("name", "value"), [("MVG_STATE_SCHEMA", "Gävle; DROP"), ("MVG_REGION", "Gävleborg")])
def test_bad_schema_or_region_is_named(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name):
        load_settings()


def test_region_names_of_blocks_and_variables():
    assert region_block("clinic24-client-secret", None) == "clinic24-client-secret"
    assert region_block("mvg-state-password", "vastra-gotaland") == "mvg-state-password-vastra-gotaland"
    assert region_variable("mvg_landing_dir", "vastra-gotaland") == "mvg_landing_dir_vastra_gotaland"
    assert split_password("postgresql://a:b@h/d") == ("postgresql://a@h/d", "b")
    assert redact_url("postgresql://a@h/d") == "postgresql://a@h/d"


def test_a_password_parameter_is_split_off_and_redacted_too():
    url = "postgresql://mvg@db/mvg?sslmode=require&password=pw%2F1"
    assert split_password(url) == ("postgresql://mvg@db/mvg?sslmode=require", "pw/1")
    assert redact_url(url) == "postgresql://mvg@db/mvg?sslmode=require&password=***"
    assert redact_url("postgresql://mvg:pw@db/mvg") == "postgresql://mvg:***@db/mvg"


def test_the_store_reaches_postgresql_with_the_password_settings_found(monkeypatch):
    """A deployment's password lives in its Secret block, never in the environment: the store
    gets the assembled URL from load_settings, and a later load without a URL clears it."""
    from mvg_sync import store

    monkeypatch.setenv("MVG_STATE_URL", "postgresql://mvg@db.internal/mvg")
    monkeypatch.setenv("MVG_STATE_PASSWORD", PASSWORD)
    load_settings()
    monkeypatch.delenv("MVG_STATE_PASSWORD")
    assert unquote(urlsplit(store.state_url()).password) == PASSWORD
    monkeypatch.delenv("MVG_STATE_URL")
    load_settings()
    assert store.state_url() is None
