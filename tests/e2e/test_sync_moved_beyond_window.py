"""R08 amended end to end: a booking rebooked in Cosmic beyond the window is moved in Clinic24, not cancelled."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import duckdb
import polars as pl

from flows.booking_sync import booking_sync
from mvg_sync.generator import next_region
from tests.e2e.sync_world import AS_OF

# Fields Clinic24 shows that a move must keep; the sequence and R24's deadline follow the drop/start.
_MOVING_EXTENSIONS = ("source-sequence", "change-deadline")


def run(as_of: datetime) -> None:
    state = booking_sync(as_of=as_of.isoformat(), return_state=True)
    assert state.is_completed(), state.message


def kept_fields(appointment: dict) -> dict:
    body = {k: v for k, v in appointment.items() if k not in ("start", "end", "_version", "meta")}
    body["extension"] = [e for e in body["extension"] if not e["url"].endswith(_MOVING_EXTENSIONS)]
    return body


def length(appointment: dict) -> timedelta:
    return datetime.fromisoformat(appointment["end"]) - datetime.fromisoformat(appointment["start"])


def outbox_rule(world, key: str) -> tuple[str, str]:
    con = duckdb.connect(str(world.state / "state.duckdb"), read_only=True)
    try:
        return con.execute(
            "SELECT change_kind, rule FROM outbox WHERE resource_type = 'Appointment' AND key = ? "
            "ORDER BY created_at DESC LIMIT 1",
            [key],
        ).fetchone()
    finally:
        con.close()


def rebook_event(region, booking: pl.DataFrame, new_start: datetime, registered: datetime) -> pl.DataFrame:
    """The log row Cosmic writes when staff rebook `booking` to `new_start` (av_ombokningar.csv)."""
    schema = region.events.schema
    next_id = int(region.events["HändelseID"].max()) + 1
    return booking.select(
        pl.lit(next_id, dtype=schema["HändelseID"]).alias("HändelseID"),
        pl.lit(registered, dtype=schema["Datum"]).alias("Datum"),
        pl.lit("Ombokad", dtype=schema["Typ"]).alias("Typ"),
        pl.col("BokningsID"),
        pl.col("UnderlagsID"),
        pl.col("Personnummer"),
        pl.col("Namn"),
        pl.col("BokadTid").alias("TidigareTid"),
        pl.lit(new_start, dtype=schema["NyTid"]).alias("NyTid"),
        pl.col("Vårdtjänst"),
        pl.col("Kontakttyp"),
        pl.col("EnhetHSAID"),
        pl.col("Enhet"),
        pl.lit("Vårdgivaren ombokar", dtype=schema["Orsak"]).alias("Orsak"),
        pl.lit(None, dtype=schema["Kommentar"]).alias("Kommentar"),
        pl.lit("Sekreterare, Sara", dtype=schema["Användare"]).alias("Användare"),
    ).cast(dict(schema))


def test_r08_rebooked_beyond_the_window_is_moved_with_its_length_then_the_full_row_updates_it(world):
    world.drop(world.region)
    run(AS_OF)
    before = world.appointments()
    horizon = AS_OF + timedelta(days=2)
    key = next(
        k for k, a in sorted(before.items())
        if a["status"] == "booked"
        and a["appointmentType"]["coding"][0]["code"] == "physical"
        and datetime.fromisoformat(a["start"]) > horizon
    )

    # The next drop: staff moved the booking to two days after the new window's end.
    later = AS_OF + timedelta(minutes=5)
    region, _ = next_region(world.region, seed=3, as_of=later)
    booking = region.bookings.filter(pl.col("BokningsID") == int(key))
    new_start = datetime.combine(region.window_to + timedelta(days=2), time(10, 0))  # local wall time
    region.events = pl.concat([region.events, rebook_event(region, booking, new_start, later.replace(tzinfo=None))])
    region.bookings = region.bookings.filter(pl.col("BokningsID") != int(key))
    world.drop(region)
    run(later)

    moved = world.appointments()[key]
    assert moved["status"] == "booked", "a booking moved beyond the window must not be cancelled (R08)"
    assert moved["start"] == "2027-02-26T10:00:00+01:00"
    assert length(moved) == length(before[key])
    assert kept_fields(moved) == kept_fields(before[key])
    assert outbox_rule(world, key) == ("rebook", "R08")

    # Three days on, NyTid lies inside the window: the full row (new information) corrects it.
    later2 = AS_OF + timedelta(days=3)
    region2, _ = next_region(region, seed=4, as_of=later2)
    back = booking.with_columns(
        pl.lit(new_start).alias("BokadTid"),
        pl.lit(new_start + length(before[key])).alias("Sluttid"),
        pl.lit("Flyttad av mottagningen: ta med remissen").alias("Bokningsinformation"),
        pl.lit(later2.replace(tzinfo=None)).alias("Ändrad"),
    ).cast(dict(region2.bookings.schema))
    region2.bookings = pl.concat([region2.bookings, back])
    world.drop(region2)
    run(later2)

    final = world.appointments()[key]
    assert final["status"] == "booked"
    assert (final["start"], final["end"]) == (moved["start"], moved["end"])
    assert final["comment"] == "Flyttad av mottagningen: ta med remissen"
    assert int(final["_version"]) == int(moved["_version"]) + 1
    assert outbox_rule(world, key) == ("update", "R10")
