"""The quality gate without GX (issue 12): same verdict as the GX checkpoint, still stops a drop."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mvg_sync.ingest import ingest_pending
from mvg_sync.quality import gate
from mvg_sync.quality.checkpoint import PROFILE_SCHEMA, run_checkpoint
from mvg_sync.quality.document import VerdictMismatch, document_drops, pending, profile_path
from tests.cosmic_drops import default_files, write_drop

AS_OF = datetime(2026, 11, 26, 8, 10, tzinfo=ZoneInfo("Europe/Stockholm"))
DATASETS = ["bookings", "booking_bases", "events", "slots", "units", "care_services"]
ROOT = Path(__file__).resolve().parents[2]

# values around every bound the suites use (0, 0.01, 0.35, 0.5, 3.0, 60, ...), and nulls
share = st.one_of(st.none(), st.sampled_from([0.0, 0.01, 0.011, 0.2, 0.35, 0.36, 0.5, 0.51, 1.0]))
ratio = st.one_of(st.none(), st.sampled_from([0.0, 0.49, 0.5, 1.0, 3.0, 3.01]))
age = st.sampled_from([0.0, 5.0, 59.9, 60.0, 60.1, 180.0, 1440.0, 1441.0])


@st.composite
def profiles(draw) -> pl.DataFrame:
    rows = [
        {"dataset": d, "rows": 1000, "previous_rows": 1000, "row_ratio": draw(ratio),
         "quarantined_share": draw(share) or 0.0, "watched_null_share": draw(share),
         "status_share": draw(share), "extract_age_minutes": draw(age)}
        for d in DATASETS
    ]
    return pl.DataFrame(rows, schema=PROFILE_SCHEMA)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(profile=profiles())
def test_gate_reaches_the_gx_checkpoint_verdict_on_any_profile(profile, tmp_path):
    by_gx = run_checkpoint(profile, tmp_path / "gx")
    by_gate = gate.evaluate(profile)
    assert sorted(by_gate.failures) == sorted(by_gx.failures)
    assert sorted(by_gate.warnings) == sorted(by_gx.warnings)


def test_gate_rejects_on_a_reject_bound_and_names_the_suite():
    rows = [{"dataset": d, "rows": 1000, "previous_rows": 1000, "row_ratio": 1.0, "quarantined_share": 0.0,
             "watched_null_share": 0.0, "status_share": 0.1, "extract_age_minutes": 5.0} for d in DATASETS]
    rows[DATASETS.index("slots")]["row_ratio"] = 0.1
    result = gate.evaluate(pl.DataFrame(rows, schema=PROFILE_SCHEMA))
    assert result.failures == ["slots: row_ratio outside [0.5, 3.0] (slots halved: web booking would lose most times)"]


def test_a_suite_the_gate_cannot_evaluate_fails_loudly(monkeypatch):
    suite = {"name": "x", "dataset": "bookings", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "rows"}, "meta": {"severity": "reject"}},
    ]}
    monkeypatch.setattr(gate, "load_suites", lambda: [suite])
    gate.bounds.cache_clear()
    try:
        with pytest.raises(gate.UnsupportedExpectation, match="expect_column_values_to_not_be_null"):
            gate.evaluate(pl.DataFrame(schema=PROFILE_SCHEMA))
    finally:
        gate.bounds.cache_clear()


def test_a_drop_whose_profile_breaks_a_suite_is_stopped_and_documented_later(tmp_path, monkeypatch):
    # The suites' reject bounds on row ratios are also checked row by row before the profile;
    # a suite made stricter (as data) shows that the gate itself stops the drop.
    suites = json.loads(json.dumps(gate.load_suites()))
    for suite in suites:
        for spec in suite["expectations"]:
            if suite["dataset"] == "bookings" and spec["kwargs"]["column"] == "quarantined_share":
                spec["meta"]["severity"] = "reject"
    monkeypatch.setattr(gate, "load_suites", lambda: suites)
    gate.bounds.cache_clear()
    landing, state = tmp_path / "landing", tmp_path / "state"
    write_drop(landing, 1)
    files = default_files()
    files["bokningar.csv"][0]["EnhetHSAID"] = "not-an-hsa-id"  # one of three quarantined
    write_drop(landing, 2, files)
    try:
        drops = ingest_pending(landing, state, as_of=AS_OF).drops
        assert [d.outcome for d in drops] == ["accepted", "rejected"]
        assert drops[1].reason.startswith("quality: bookings: quarantined_share outside [0.0, 0.01]")
        assert not (state / "gx" / "index.html").exists()  # no GX before the push
        assert [p.stem for p in pending(state)] == [d.extract_id for d in drops]
        # GX still runs the suites as stored, and the cross-check after the push notices
        with pytest.raises(VerdictMismatch, match=drops[1].extract_id):
            document_drops(state)
    finally:
        gate.bounds.cache_clear()
    assert [p.stem for p in pending(state)] == [drops[1].extract_id]  # kept for a person to look at


def test_document_drops_runs_gx_writes_data_docs_and_clears_the_profiles(tmp_path):
    landing, state = tmp_path / "landing", tmp_path / "state"
    write_drop(landing, 1)
    write_drop(landing, 2)
    drops = ingest_pending(landing, state, as_of=AS_OF).drops
    assert [d.outcome for d in drops] == ["accepted", "accepted"]
    assert document_drops(state).documented == [d.extract_id for d in drops]
    assert pending(state) == []
    assert (state / "gx" / "index.html").exists()
    assert len(list((state / "gx" / "validations").rglob("*.html"))) == 2 * 6  # six suites a drop
    assert not profile_path(state, drops[0].extract_id).exists()
    assert document_drops(state).documented == []


def test_ingest_never_imports_great_expectations(tmp_path):
    landing, state = tmp_path / "landing", tmp_path / "state"
    write_drop(landing, 1)
    code = (
        "import sys, json; from pathlib import Path; from datetime import datetime; from zoneinfo import ZoneInfo\n"
        "from mvg_sync.ingest import ingest_pending\n"
        f"r = ingest_pending(Path({str(landing)!r}), Path({str(state)!r}), "
        "as_of=datetime(2026, 11, 26, 8, 10, tzinfo=ZoneInfo('Europe/Stockholm')))\n"
        "print(json.dumps([[d.outcome for d in r.drops], 'great_expectations' in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [["accepted"], False]
