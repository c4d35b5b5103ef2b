"""Settings: defaults of operations.md and the named error for a missing secret."""

import pytest

from mvg_sync.settings import MissingSetting, load_settings


def test_defaults_match_operations_md(monkeypatch):
    for name in ["MVG_LANDING_DIR", "MVG_MAX_CANCEL_SHARE", "CLINIC24_BASE_URL"]:
        monkeypatch.delenv(name, raising=False)
    s = load_settings()
    assert str(s.landing_dir) == "data/landing"
    assert s.max_cancel_share == 0.05
    assert s.cancel_guard_floor == 20
    assert s.clinic24_credentials() == ("mvg-sync", "sandbox-secret")


def test_missing_secret_against_real_clinic24_is_named(monkeypatch):
    monkeypatch.setenv("CLINIC24_BASE_URL", "https://clinic24.test.regional.example")
    monkeypatch.setenv("CLINIC24_CLIENT_ID", "region")
    monkeypatch.delenv("CLINIC24_CLIENT_SECRET", raising=False)
    with pytest.raises(MissingSetting, match="CLINIC24_CLIENT_SECRET"):
        load_settings().clinic24_credentials()
