"""bench.plan's read accounting: the plan's reads are timed inside the block and only there."""

from __future__ import annotations

import polars as pl

from bench.plan import reads_timed
from mvg_sync.store import outbox
from mvg_sync.store.types import ResourceType
from mvg_sync.sync import draft as drafting


def test_the_plan_reads_are_timed_in_the_block_and_put_back_after(tmp_path):
    originals = (drafting.open_state, drafting.read_snapshot, drafting._known_hashes)
    snapshot = tmp_path / "bookings.parquet"
    pl.DataFrame({"booking_id": ["B1", "B2"]}).write_parquet(snapshot)
    spent: list[float] = []
    with reads_timed(spent):
        assert (drafting.open_state, drafting.read_snapshot, drafting._known_hashes) != originals
        assert drafting.read_snapshot(snapshot).height == 2
        assert drafting._known_hashes(tmp_path) is None  # no cache: the plan hashes every row
        with drafting.open_state(tmp_path) as con:
            assert outbox.load_record(con, ResourceType.APPOINTMENT).height == 0
    assert (drafting.open_state, drafting.read_snapshot, drafting._known_hashes) == originals
    assert len(spent) == 3 and all(s > 0 for s in spent)
