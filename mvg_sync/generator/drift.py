"""The next drop of a region: a controlled set of changes plus the ground truth of what to push."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import numpy as np
import polars as pl

from mvg_sync.generator import catalogue as cat
from mvg_sync.generator.datasets import (
    BOOKED,
    DAY,
    _markers,
    bookings_frame,
    build_events,
    draw_bookings,
    grid_slots,
    nullable,
    pick,
)
from mvg_sync.generator.region import (
    BASIS_CLOSED_DAYS,
    EVENT_LOG_DAYS,
    PROFESSION_T,
    SERVICE_IN_SCOPE,
    SERVICE_KIND,
    SERVICE_NAMES,
    SERVICE_PROF,
    SERVICE_T,
    SLOT_COLUMNS,
    UNIT_HSA_IDS,
    UNIT_ID_T,
    UNIT_LEVEL,
    WINDOW_AFTER_DAYS,
    WINDOW_BEFORE_DAYS,
    YES_NO_T,
    Region,
    pick_staff,
    staff_groups,
    unit_service_pairs,
)
from mvg_sync.generator.timegrid import as_local, from_day_number, local_minute, to_datetime

EXPECTED_KINDS = ("create", "rebook", "update", "cancel", "none_window_exit")
SCOPE_OUT_SERVICE = {  # a non-web care service per profession, to leave the synced scope (R02)
    "Sjuksköterska": "Telefon|telefon|sjuksköterska",
    "Läkare": "Administration|administration|läkare",
}
STAFF_REBOOK_REASON = "Vårdgivaren ombokar"


def _eligible(region: Region, today: int) -> pl.Expr:
    """Bookings the sync has pushed and will keep pushing: booked, ahead, at a Clinic24 unit (R01),
    in scope (R02, R03, R05), adult (no R12 hold)."""
    children = region.patients.filter(pl.col("is_child"))["Personnummer"]
    in_scope = [n for n, ok in zip(SERVICE_NAMES, SERVICE_IN_SCOPE, strict=True) if ok]
    return (
        (pl.col("Status") == "Bokad")
        & (pl.col("BokadTid").dt.date() > from_day_number(today))
        & pl.col("EnhetHSAID").cast(pl.String).is_in(list(region.clinic24_units))
        & pl.col("Vårdtjänst").cast(pl.String).is_in(in_scope)
        & ~pl.col("Personnummer").is_in(children.implode())
    )


def _positions(frame: pl.DataFrame, condition: pl.Expr) -> np.ndarray:
    return frame.with_row_index("_pos").filter(condition)["_pos"].to_numpy().astype(np.int64)


def _take(pool: np.ndarray, start: int, count: int, what: str) -> np.ndarray:
    if start + count > len(pool):
        raise ValueError(f"not enough bookings to draw {count} {what} from ({len(pool)} candidates)")
    return pool[start:start + count]


def _scatter(frame: pl.DataFrame, column: str, positions: np.ndarray, values: pl.Series) -> pl.DataFrame:
    if len(positions) == 0:
        return frame
    series = frame[column].clone()
    series.scatter(positions, values.cast(series.dtype))
    return frame.with_columns(series)


def next_region(
    region: Region, *, seed: int, as_of: datetime, creations: int = 0, rebookings: int = 0,
    cancellations: int = 0, vanishings: int = 0, scope_changes: int = 0, updates: int = 0,
) -> tuple[Region, pl.DataFrame]:
    """The region at `as_of` (sequence + 1) and the ground truth `booking_id, expected_kind`.

    Changes are drawn from bookings the sync would have pushed (see `_eligible`), so each one
    has exactly one expected outcome: creations and bookings entering the scope -> `create`
    (R06, R09); new start/end/resource -> `rebook` (R07); status Avbokad, vanished inside the
    window, or left the scope -> `cancel` (R08, R09); visible field changes -> `update` (R10);
    bookings whose start fell out of the sliding window -> `none_window_exit` (R08).
    """
    local = as_local(as_of)
    now = local_minute(local)
    if now < local_minute(region.as_of):
        raise ValueError("the next drop cannot be extracted before the previous one")
    rng = np.random.default_rng([seed, region.sequence + 1])
    today = now // DAY
    w_from, w_to = today - WINDOW_BEFORE_DAYS, today + WINDOW_AFTER_DAYS
    now_dt = to_datetime("Ändrad", np.array([now]))[0]

    bookings = region.bookings
    in_window = pl.col("BokadTid").is_null() | (pl.col("BokadTid").dt.date() >= from_day_number(w_from))
    exited = bookings.filter(~in_window)["BokningsID"]
    bookings = bookings.filter(in_window)

    pool = rng.permutation(_positions(bookings, _eligible(region, today)))
    n_out = scope_changes - scope_changes // 2
    n_in = scope_changes // 2
    cursor = 0
    picks = {}
    for what, count in (("rebook", rebookings), ("cancel", cancellations), ("vanish", vanishings),
                        ("scope_out", n_out), ("update", updates)):
        picks[what] = _take(pool, cursor, count, what)
        cursor += count

    changed_rows = np.concatenate([picks[k] for k in ("rebook", "cancel", "scope_out", "update")])
    truth = []

    # R07 rebook: later day, new time of day, another staff member where the unit has one
    rows = picks["rebook"]
    if len(rows):
        start = bookings["BokadTid"].gather(rows)
        duration = bookings["Sluttid"].gather(rows) - start
        old_start = (start.cast(pl.Datetime("us")).cast(pl.Int64) // 60_000_000).to_numpy()
        new_day = np.clip(old_start // DAY + rng.integers(1, 11, len(rows)), today + 1, w_to)
        new_day = weekday_days_fix(new_day, today + 1, w_to)
        new_start = new_day * DAY + 8 * 60 + 15 * rng.integers(0, 34, len(rows))
        new_start = np.where(new_start == old_start, new_start + 15, new_start)
        new_start_s = to_datetime("BokadTid", new_start)
        staff_pos = (
            bookings.select(pl.col("ResursHSAID").gather(rows))
            .join(region.staff.with_row_index("_staff"), on="ResursHSAID", how="left", maintain_order="left")
            ["_staff"].to_numpy().astype(np.int64)
        )
        offset, count = staff_groups(region.staff)
        group = region.staff["unit_idx"].to_numpy()[staff_pos] * len(cat.PROFESSIONS) + region.staff[
            "prof_idx"].to_numpy()[staff_pos]
        new_staff = offset[group] + (staff_pos - offset[group] + 1) % count[group]
        bookings = _scatter(bookings, "BokadTid", rows, new_start_s)
        bookings = _scatter(bookings, "Sluttid", rows, new_start_s + duration)
        bookings = _scatter(bookings, "ResursHSAID", rows, region.staff["ResursHSAID"].gather(new_staff))
        bookings = _scatter(bookings, "Resurs", rows, region.staff["Resurs"].gather(new_staff))
        truth.append(("rebook", bookings["BokningsID"].gather(rows)))

    # R08 cancel by status
    rows = picks["cancel"]
    cancel_reason = rng.integers(0, len(cat.CANCEL_REASONS), len(rows))
    if len(rows):
        bookings = _scatter(bookings, "Status", rows, pl.Series(["Avbokad"] * len(rows)))
        bookings = _scatter(bookings, "Avbokningsorsak", rows,
                            pick("", tuple(r for r, _ in cat.CANCEL_REASONS), pl.String(), cancel_reason))
        truth.append(("cancel", bookings["BokningsID"].gather(rows)))

    # R09 leave the scope: hidden contact, or a non-web service of the same profession
    rows = picks["scope_out"]
    if len(rows):
        profession = bookings["Yrkesroll"].gather(rows).cast(pl.String).to_list()
        targets = [
            SCOPE_OUT_SERVICE.get(p, cat.HIDDEN_SERVICE) if i % 2 else cat.HIDDEN_SERVICE
            for i, p in enumerate(profession)
        ]
        contact = [
            {"Telefon|telefon|sjuksköterska": "Telefonkontakt",
             "Administration|administration|läkare": "Administrativ kontakt"}.get(t)
            for t in targets
        ]
        old_contact = bookings["Kontakttyp"].gather(rows).cast(pl.String).to_list()
        contact = [c or o for c, o in zip(contact, old_contact, strict=True)]
        bookings = _scatter(bookings, "Vårdtjänst", rows, pl.Series(targets))
        bookings = _scatter(bookings, "Kontakttyp", rows, pl.Series(contact))
        truth.append(("cancel", bookings["BokningsID"].gather(rows)))

    # R09 enter the scope: a hidden / non-web booking moves to an in-scope service
    in_rows = np.zeros(0, np.int64)
    if n_in:
        children = region.patients.filter(pl.col("is_child"))["Personnummer"]
        out_of_scope = [n for n, ok in zip(SERVICE_NAMES, SERVICE_IN_SCOPE, strict=True)
                        if not ok and n != cat.MISCONFIGURED_SERVICE]
        candidates = (
            (pl.col("Status") == "Bokad")
            & (pl.col("BokadTid").dt.date() > from_day_number(today))
            & pl.col("EnhetHSAID").cast(pl.String).is_in(list(region.clinic24_units))
            & pl.col("Vårdtjänst").cast(pl.String).is_in(out_of_scope)
            & ~pl.col("Personnummer").is_in(children.implode())
        )
        in_pool = rng.permutation(_positions(bookings, candidates))
        in_rows = _take(in_pool, 0, n_in, "scope entries")
        unit_idx = bookings["EnhetHSAID"].gather(in_rows).to_physical().to_numpy().astype(np.int64)
        prof_idx = bookings["Yrkesroll"].gather(in_rows).to_physical().to_numpy().astype(np.int64)
        target = np.array([_in_scope_service(UNIT_LEVEL[u], p) for u, p in zip(unit_idx, prof_idx, strict=True)])
        kind = SERVICE_KIND[target]
        bookings = _scatter(bookings, "Vårdtjänst", in_rows,
                            pick("", SERVICE_NAMES, SERVICE_T, target))
        bookings = _scatter(bookings, "Kontakttyp", in_rows,
                            pl.Series(np.where(kind == 0, "Distansbesök - video", "Mottagningsbesök")))
        truth.append(("create", bookings["BokningsID"].gather(in_rows)))

    # R10 visible field changes
    rows = picks["update"]
    if len(rows):
        which = np.arange(len(rows)) % 3
        info_rows = rows[which == 0]
        text = f'Uppdaterad i drop {region.sequence + 1}: "ta med" medicinlista; ring vid förhinder'
        bookings = _scatter(bookings, "Bokningsinformation", info_rows, pl.Series([text] * len(info_rows)))
        kontakt = bookings["Kontakttyp"].gather(rows).cast(pl.String).to_numpy()
        home_rows = rows[(which == 2) & np.isin(kontakt, ["Mottagningsbesök", "Hembesök"])]
        home_now = bookings["Kontakttyp"].gather(home_rows).cast(pl.String).to_numpy()
        bookings = _scatter(bookings, "Kontakttyp", home_rows,
                            pl.Series(np.where(home_now == "Hembesök", "Mottagningsbesök", "Hembesök")))
        visit_rows = np.setdiff1d(rows[which != 0], home_rows)
        visit_now = bookings["Besökstyp"].gather(visit_rows).cast(pl.String).to_numpy()
        bookings = _scatter(bookings, "Besökstyp", visit_rows,
                            pl.Series(np.where(visit_now == "Nybesök", "Återbesök", "Nybesök")))
        truth.append(("update", bookings["BokningsID"].gather(rows)))

    touched = np.concatenate([changed_rows, in_rows])
    bookings = _scatter(bookings, "Ändrad", touched, pl.Series([now_dt] * len(touched)))

    # events for what staff did (rebook, cancel), before the vanished rows go
    event_rows_cancel = picks["cancel"]
    event_rows_rebook = picks["rebook"]
    old_starts = region.bookings.filter(in_window)["BokadTid"].gather(event_rows_rebook)
    new_events = _staff_events(rng, bookings, event_rows_cancel, event_rows_rebook, old_starts, now, region)

    vanished = bookings["BokningsID"].gather(picks["vanish"])
    truth.append(("cancel", vanished))
    keep = np.ones(bookings.height, bool)
    keep[picks["vanish"]] = False
    bookings = bookings.filter(pl.Series(keep))

    # R06 creations: booked, ahead, in scope, at a Clinic24 unit, adult patient
    next_id = int(region.notes.get("next_booking_id", int(bookings["BokningsID"].max() or 0) + 1))
    if creations:
        created = _create(rng, region, creations, today, w_to, now, next_id)
        bookings = pl.concat([bookings, created], how="vertical")
        truth.append(("create", created["BokningsID"]))
        next_id += creations
    truth.append(("none_window_exit", exited))

    ground_truth = pl.concat(
        [pl.DataFrame({"booking_id": ids.cast(pl.Int64), "expected_kind": [kind] * ids.len()},
                      schema={"booking_id": pl.Int64, "expected_kind": pl.String})
         for kind, ids in truth]
    ).sort("booking_id")

    events = pl.concat([region.events, new_events], how="vertical").filter(
        pl.col("Datum") >= to_datetime("x", np.array([now - EVENT_LOG_DAYS * DAY]))[0]
    )
    bases = _next_bases(region, bookings, now)
    slots = _next_slots(rng, region, bookings, ground_truth, w_from, w_to, today)
    new_region = replace(
        region, as_of=local, sequence=region.sequence + 1,
        window_from=from_day_number(w_from), window_to=from_day_number(w_to),
        bookings=bookings, booking_bases=bases, events=events, slots=slots,
        notes={**region.notes, "next_booking_id": next_id},
    )
    return new_region, ground_truth


def weekday_days_fix(days: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Move weekend days to the Friday before, or the Monday after when that falls below `lo`."""
    wd = (days + 3) % 7
    days = np.where(wd == 5, days - 1, np.where(wd == 6, days - 2, days))
    return np.where(days < lo, days + 3, np.minimum(days, hi))


def _in_scope_service(level: str, prof: int) -> int:
    for i, s in enumerate(cat.CARE_SERVICES):
        if s.level == level and s.in_scope and SERVICE_PROF[i] == prof:
            return i
    raise ValueError("no in-scope care service for a unit's profession")


def _create(rng: np.random.Generator, region: Region, count: int, today: int, w_to: int,
            now: int, next_id: int) -> pl.DataFrame:
    units, services, probs = unit_service_pairs()
    clinic24 = np.isin(np.array(UNIT_HSA_IDS)[units], list(region.clinic24_units))
    ok = clinic24 & SERVICE_IN_SCOPE[services]
    pairs = (units[ok], services[ok], probs[ok] / probs[ok].sum())
    adults = np.flatnonzero(~region.patients["is_child"].to_numpy())
    core = draw_bookings(rng, count, day_lo=today + 1, day_hi=w_to, staff=region.staff,
                         patient_pool=adults, pairs=pairs)
    core["start"] = weekday_days_fix(core["start"] // DAY, today + 1, w_to) * DAY + core["start"] % DAY
    core["end"] = core["start"] + 30
    core.update(
        id=next_id + np.arange(count, dtype=np.int64),
        status=np.full(count, BOOKED),
        reason=np.full(count, -1),
        basis=np.full(count, -1, np.int64),
        registered=np.full(count, now),
        changed=np.full(count, now),
    )
    return bookings_frame(core, region.staff, region.patients)


def _staff_events(rng: np.random.Generator, bookings: pl.DataFrame, cancel_rows: np.ndarray,
                  rebook_rows: np.ndarray, old_starts: pl.Series, now: int, region: Region) -> pl.DataFrame:
    reasons = tuple(r for r, _ in cat.CANCEL_REASONS) + tuple(r for r, _ in cat.REBOOK_REASONS)
    cancel_reason = bookings["Avbokningsorsak"].gather(cancel_rows).cast(pl.String).to_numpy()
    core = {
        "cancel_idx": cancel_rows,
        "rebook_idx": rebook_rows,
        "cancel_at": np.full(len(cancel_rows), now),
        "rebook_at": np.full(len(rebook_rows), now),
        "start": np.full(bookings.height, 0, np.int64),
        "rebook_previous": (old_starts.cast(pl.Int64) // 60_000_000).to_numpy().astype(np.int64),
        "reason": np.full(bookings.height, -1, np.int64),
        "rebook_reason": np.full(len(rebook_rows), reasons.index(STAFF_REBOOK_REASON)),
    }
    starts = (bookings["BokadTid"].cast(pl.Int64) // 60_000_000).fill_null(0).to_numpy()
    core["start"][:] = starts
    core["reason"][cancel_rows] = [reasons.index(r) for r in cancel_reason]
    events = build_events(rng, bookings, core, now)
    first_id = int(region.events["HändelseID"].max() or 40_000_000) + 1
    return events.with_columns(
        pl.int_range(first_id, first_id + events.height, dtype=pl.Int64).alias("HändelseID")
    )


def _next_bases(region: Region, bookings: pl.DataFrame, now: int) -> pl.DataFrame:
    """Closed bases age out after 30 days; booked ones follow their booking's new start."""
    cutoff = to_datetime("x", np.array([now - BASIS_CLOSED_DAYS * DAY]))[0]
    bases = region.booking_bases.filter((pl.col("Status") == "Planerad") | (pl.col("Ändrad") >= cutoff))
    starts = bookings.select("BokningsID", pl.col("BokadTid").alias("_new_start"))
    return bases.join(starts, on="BokningsID", how="left", maintain_order="left").with_columns(
        pl.when(pl.col("BokningsID").is_not_null() & pl.col("_new_start").is_not_null())
        .then(pl.col("_new_start")).otherwise(pl.col("BokadTid")).alias("BokadTid")
    ).drop("_new_start")


def _next_slots(rng: np.random.Generator, region: Region, bookings: pl.DataFrame, truth: pl.DataFrame,
                w_from: int, w_to: int, today: int) -> pl.DataFrame:
    """Slots slide with the window; slots of changed bookings are freed; new days get the R22 grid."""
    freed = truth.filter(pl.col("expected_kind").is_in(["rebook", "cancel"]))["booking_id"]
    slots = region.slots.filter(pl.col("Start").dt.date() >= from_day_number(w_from)).with_columns(
        pl.when(pl.col("BokningsID").is_in(freed.implode())).then(pl.lit("Ledig"))
        .otherwise(pl.col("Status")).cast(region.slots["Status"].dtype).alias("Status"),
        pl.when(pl.col("BokningsID").is_in(freed.implode())).then(None)
        .otherwise(pl.col("BokningsID")).alias("BokningsID"),
    )
    old_to = (region.window_to.toordinal() - from_day_number(0).toordinal())
    new_days = np.arange(max(old_to + 1, today), w_to + 1)
    if len(new_days) == 0:
        return slots
    markers = _markers(np.arange(len(UNIT_HSA_IDS)))
    grid = grid_slots(new_days, markers)
    staff_idx = pick_staff(rng, region.staff, grid["unit"], grid["prof"])
    first_id = int(region.slots["TidID"].max() or 30_000_000) + 1
    n = len(grid["marker"])
    frame = pl.DataFrame(
        [
            pl.Series("TidID", first_id + np.arange(n, dtype=np.int64)),
            pl.Series("marker_id", grid["marker"]),
            pick("EnhetHSAID", UNIT_HSA_IDS, UNIT_ID_T, grid["unit"]),
            region.staff["ResursHSAID"].gather(staff_idx),
            region.staff["Resurs"].gather(staff_idx),
            pick("Yrkesroll", cat.PROFESSIONS, PROFESSION_T, grid["prof"]),
            to_datetime("Start", grid["start"]),
            to_datetime("Slut", grid["end"]),
            pl.Series("Webbtidbok", ["Ja"] * n).cast(YES_NO_T),
            pl.Series("Status", ["Ledig"] * n).cast(region.slots["Status"].dtype),
            nullable("BokningsID", np.zeros(n, np.int64), np.zeros(n, bool)),
        ]
    )
    services = pl.DataFrame(
        [
            markers["marker_id"],
            markers["marker"].cast(region.slots["Schemamarkering"].dtype).alias("Schemamarkering"),
            pick("Vårdtjänst", SERVICE_NAMES, SERVICE_T, markers["service"].to_numpy()),
        ]
    )
    frame = frame.join(services, on="marker_id", how="inner", maintain_order="left").select(SLOT_COLUMNS)
    return pl.concat([slots, frame], how="vertical")

