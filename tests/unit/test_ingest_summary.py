"""The run summary's ingest counts: rejected and empty drops never crash a run (issues 11, 14)."""

from __future__ import annotations

from mvg_sync.ingest.pipeline import DropReport, FileCounts, IngestReport
from mvg_sync.sync.health import ingest_summary


def test_rejected_and_empty_drops_are_counted_without_crashing():
    report = IngestReport(drops=[
        # rejected on its second file: that file has rows but nothing accepted, the rest nothing
        DropReport("D1", "rejected", reason="bokningsunderlag.csv: 19 data rows, under 50% …", files=[
            FileCounts("bokningar.csv", rows_in=40, accepted=40, quarantined=0),
            FileCounts("bokningsunderlag.csv", rows_in=19, rejected_reason="…"),
        ]),
        DropReport("D2", "rejected", reason="manifest.json: not readable JSON", files=[]),
        DropReport("D3", "accepted", files=[
            FileCounts("bokningar.csv", rows_in=0, accepted=0, quarantined=0),  # an empty bookings file
            FileCounts("tider.csv", rows_in=5, accepted=4, quarantined=1),
        ]),
        DropReport("D4", "duplicate", reason="drop already processed (accepted)"),
    ], gaps=[(1, 3)])
    assert ingest_summary(report) == {
        "drops": 4, "drops_rejected": 2, "drops_accepted": 1, "drops_duplicate": 1, "gaps": 1,
        # rows read count for every drop; accepted and quarantined only where the drop was accepted
        "rows_in": 64, "accepted": 4, "quarantined": 1,
    }
