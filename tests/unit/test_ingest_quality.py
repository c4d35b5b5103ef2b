"""GX drop-profile checkpoint: which expectations reject a drop and which only warn."""

from __future__ import annotations

import polars as pl

from mvg_sync.quality.checkpoint import PROFILE_SCHEMA, load_suites, run_checkpoint

DATASETS = ["bookings", "booking_bases", "events", "slots", "units", "care_services"]


def profile(**bookings: float) -> pl.DataFrame:
    rows = [
        {"dataset": d, "rows": 1000, "previous_rows": 1000, "row_ratio": 1.0, "quarantined_share": 0.0,
         "watched_null_share": 0.1, "status_share": 0.1 if d != "events" else 0.5, "extract_age_minutes": 5.0}
        for d in DATASETS
    ]
    rows[0].update(bookings)
    return pl.DataFrame(rows, schema=PROFILE_SCHEMA)


def test_every_suite_is_data_with_a_severity_per_expectation():
    suites = load_suites()
    assert sorted(s["dataset"] for s in suites) == sorted(DATASETS)
    assert all(e["meta"]["severity"] in {"reject", "warn"} for s in suites for e in s["expectations"])


def test_normal_profile_passes_and_writes_data_docs(tmp_path):
    result = run_checkpoint(profile(), tmp_path / "gx")
    assert (result.failures, result.warnings) == ([], [])
    assert (tmp_path / "gx" / "index.html").exists()


def test_ninety_percent_fewer_bookings_only_warns_the_guard_decides(tmp_path):
    # issue 11: fewer bookings are cancellations; the approvable mass-cancellation guard holds them
    result = run_checkpoint(profile(rows=100, row_ratio=0.1), tmp_path / "gx")
    assert result.failures == []
    assert [w.split(" outside")[0] for w in result.warnings] == ["bookings: row_ratio"]


def test_bookings_tripled_rejects(tmp_path):
    result = run_checkpoint(profile(rows=3500, row_ratio=3.5), tmp_path / "gx")
    assert [f.split(":")[0] for f in result.failures] == ["bookings"]
    assert "row_ratio" in result.failures[0]


def test_odd_status_mix_and_stale_drop_only_warn(tmp_path):
    result = run_checkpoint(profile(status_share=0.5, extract_age_minutes=180.0), tmp_path / "gx")
    assert result.failures == []
    assert sorted(w.split(" outside")[0] for w in result.warnings) == [
        "bookings: extract_age_minutes", "bookings: status_share",
    ]
