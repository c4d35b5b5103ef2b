"""Tests for `next_region`: the ground truth equals the actual differences between two drops."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mvg_sync.generator import catalogue as cat
from mvg_sync.generator import generate_region, next_region, write_drop
from mvg_sync.timeutil import STOCKHOLM

AS_OF = datetime(2026, 11, 26, 8, 5, tzinfo=STOCKHOLM)
LATER = datetime(2026, 11, 28, 9, 10, tzinfo=STOCKHOLM)
KNOBS = {"creations": 4, "rebookings": 5, "cancellations": 6, "vanishings": 3, "scope_changes": 4,
         "updates": 6}
IN_SCOPE = [s.name for s in cat.CARE_SERVICES if s.in_scope]


@pytest.fixture(scope="module")
def pair():
    before = generate_region(seed=21, n_bookings=4000, as_of=AS_OF)
    after, truth = next_region(before, seed=21, as_of=LATER, **KNOBS)
    return before, after, truth


def observed_kinds(before, after) -> pl.DataFrame:
    """Classify every booking id from the two snapshots alone (an independent diff)."""
    cols = [c for c in before.bookings.columns if c != "BokningsID"]
    a = before.bookings.with_columns(pl.col(pl.Enum).cast(pl.String))
    b = after.bookings.with_columns(pl.col(pl.Enum).cast(pl.String))
    joined = a.join(b, on="BokningsID", how="full", suffix="_new", coalesce=True)
    rows = []
    for r in joined.iter_rows(named=True):
        bid = r["BokningsID"]
        if r["Status"] is None:
            rows.append((bid, "create"))
        elif r["Status_new"] is None:
            exited = r["BokadTid"] is not None and r["BokadTid"].date() < after.window_from
            rows.append((bid, "none_window_exit" if exited else "cancel"))
        else:
            changed = {c for c in cols if r[c] != r[f"{c}_new"]} - {"Ändrad"}
            if not changed:
                continue
            was_in, now_in = r["Vårdtjänst"] in IN_SCOPE, r["Vårdtjänst_new"] in IN_SCOPE
            if r["Status_new"] == "Avbokad" or (was_in and not now_in):
                rows.append((bid, "cancel"))
            elif now_in and not was_in:
                rows.append((bid, "create"))
            elif changed & {"BokadTid", "Sluttid", "ResursHSAID"}:
                rows.append((bid, "rebook"))
            else:
                rows.append((bid, "update"))
    return pl.DataFrame(rows, schema={"booking_id": pl.Int64, "expected_kind": pl.String},
                        orient="row").sort("booking_id")


def test_r07_r08_r09_r10_ground_truth_equals_the_actual_differences(pair):
    before, after, truth = pair
    assert_frame_equal(truth, observed_kinds(before, after))


def test_ground_truth_counts_follow_the_knobs(pair):
    _, _, truth = pair
    counts = dict(truth.group_by("expected_kind").len().iter_rows())
    assert counts["rebook"] == KNOBS["rebookings"]
    assert counts["update"] == KNOBS["updates"]
    assert counts["cancel"] == KNOBS["cancellations"] + KNOBS["vanishings"] + KNOBS["scope_changes"] - 2
    assert counts["create"] == KNOBS["creations"] + 2
    assert counts["none_window_exit"] > 0  # two days later, two days of bookings left the window


def test_r07_rebooked_booking_keeps_its_id_and_moves(pair):
    before, after, truth = pair
    ids = truth.filter(pl.col("expected_kind") == "rebook")["booking_id"]
    old = before.bookings.filter(pl.col("BokningsID").is_in(ids.implode())).sort("BokningsID")
    new = after.bookings.filter(pl.col("BokningsID").is_in(ids.implode())).sort("BokningsID")
    assert new.height == ids.len()
    assert (old["BokadTid"] != new["BokadTid"]).all()
    assert (new["Sluttid"] > new["BokadTid"]).all()
    assert (new["Status"] == "Bokad").all()
    assert new["BokadTid"].dt.date().max() <= after.window_to


def test_r08_cancelled_bookings_carry_a_reason_and_an_event(pair):
    _, after, truth = pair
    cancelled_ids = truth.filter(pl.col("expected_kind") == "cancel")["booking_id"]
    by_status = after.bookings.filter(pl.col("BokningsID").is_in(cancelled_ids.implode())
                                      & (pl.col("Status") == "Avbokad"))
    assert by_status.height == KNOBS["cancellations"]
    assert by_status["Avbokningsorsak"].null_count() == 0
    logged = after.events.filter(pl.col("Typ") == "Avbokad")["BokningsID"]
    assert set(by_status["BokningsID"]) <= set(logged)


def test_created_bookings_are_new_ids_and_eligible(pair):
    before, after, truth = pair
    created = truth.filter(pl.col("expected_kind") == "create")["booking_id"]
    new_ids = set(created) - set(before.bookings["BokningsID"])
    assert len(new_ids) == KNOBS["creations"]
    rows = after.bookings.filter(pl.col("BokningsID").is_in(list(new_ids)))
    assert (rows["Status"] == "Bokad").all()
    assert rows["Vårdtjänst"].cast(pl.String).is_in(IN_SCOPE).all()
    assert rows["EnhetHSAID"].cast(pl.String).is_in(list(after.clinic24_units)).all()


def test_next_drop_advances_sequence_window_and_writes(pair, tmp_path):
    before, after, _ = pair
    assert after.sequence == before.sequence + 1
    assert after.window_from > before.window_from
    folder = write_drop(after, tmp_path)
    assert folder.name == "20261128T091000-000002"
    assert after.events["HändelseID"].n_unique() == after.events.height
    assert after.slots.select("TidID", "Vårdtjänst").n_unique() == after.slots.height


def test_next_region_is_deterministic():
    before = generate_region(seed=3, n_bookings=1500, as_of=AS_OF)
    a, ta = next_region(before, seed=8, as_of=LATER, creations=2, rebookings=2, cancellations=2,
                        vanishings=2, scope_changes=2, updates=3)
    b, tb = next_region(before, seed=8, as_of=LATER, creations=2, rebookings=2, cancellations=2,
                        vanishings=2, scope_changes=2, updates=3)
    assert_frame_equal(ta, tb)
    assert_frame_equal(a.bookings, b.bookings)


def test_next_region_refuses_more_changes_than_bookings():
    before = generate_region(seed=3, n_bookings=30, as_of=AS_OF)
    with pytest.raises(ValueError, match="not enough"):
        next_region(before, seed=1, as_of=LATER, rebookings=1000)
