"""Vectorised generation of one drop's datasets (bookings, bases, events, slots) for a region."""

from __future__ import annotations

from datetime import date, datetime

import holidays
import numpy as np
import polars as pl

from mvg_sync.generator import catalogue as cat
from mvg_sync.generator.region import (
    ALL_REASONS,
    BASIS_COLUMNS,
    BASIS_ID_BASE,
    BASIS_STATUS_T,
    BOOKING_COLUMNS,
    BOOKING_ID_BASE,
    CONTACT_T,
    EVENT_COLUMNS,
    EVENT_ID_BASE,
    EVENT_LOG_DAYS,
    KIND_CONTACT,
    MARKER_NAMES,
    PROFESSION_T,
    REASON_T,
    SERVICE_IN_SCOPE,
    SERVICE_KIND,
    SERVICE_NAMES,
    SERVICE_PROF,
    SERVICE_T,
    SERVICE_WEB,
    SLOT_COLUMNS,
    SLOT_ID_BASE,
    STATUS_T,
    UNIT_HSA_IDS,
    UNIT_ID_T,
    UNIT_LEVEL,
    UNIT_NAME_T,
    UNIT_NAMES,
    USERS,
    VISIT_T,
    WINDOW_AFTER_DAYS,
    WINDOW_BEFORE_DAYS,
    YES_NO_T,
    Region,
    care_services_frame,
    clinic24_unit_ids,
    make_patients,
    make_staff,
    pick_staff,
    unit_service_pairs,
    units_frame,
)
from mvg_sync.generator.timegrid import (
    FIRST_MINUTE,
    LAST_MINUTE,
    MINUTES_PER_DAY,
    as_local,
    business_hours,
    from_day_number,
    local_minute,
    to_date,
    to_datetime,
    weekday,
)

# status codes = index in catalogue.BOOKING_STATUSES
PLANNED, PRELIMINARY, BOOKED, ARRIVED, IN_PROGRESS, DONE, CANCELLED = range(7)
HOUR = 60
DAY = MINUTES_PER_DAY
E_CANCEL_CODE = ALL_REASONS.index(cat.E_CANCEL)
E_REBOOK_CODE = ALL_REASONS.index(cat.E_REBOOK)
PATIENT_CANCEL_CODE = ALL_REASONS.index("Patienten avbokar")


def nullable(name: str, values: np.ndarray, valid: np.ndarray) -> pl.Series:
    """Index/ids series with nulls where `valid` is False."""
    s = pl.Series(name, values)
    return pl.select(pl.when(pl.lit(pl.Series(valid))).then(s).alias(name)).to_series()


def pick(name: str, vocabulary: tuple[str, ...], dtype: pl.DataType, idx: np.ndarray,
         valid: np.ndarray | None = None) -> pl.Series:
    """`vocabulary[idx]` as a typed series; null where `valid` is False."""
    index = pl.Series(idx.astype(np.int64)) if valid is None else nullable("", idx.astype(np.int64), valid)
    return pl.Series(name, list(vocabulary), dtype=dtype).gather(index).alias(name)


def nullable_datetime(name: str, minutes: np.ndarray, valid: np.ndarray) -> pl.Series:
    s = nullable(name, minutes.astype(np.int64) * 60_000_000, valid)
    return s.cast(pl.Datetime("us"))


def weekday_days(rng: np.random.Generator, n: int, lo: int, hi: int) -> np.ndarray:
    """Uniform days in [lo, hi], weekends moved to the Friday before (or Monday after at `lo`)."""
    days = rng.integers(lo, hi + 1, n)
    wd = weekday(days)
    days = np.where(wd == 5, days - 1, np.where(wd == 6, days - 2, days))
    return np.where(days < lo, days + 3, days)


def time_between(rng: np.random.Generator, lo: np.ndarray | int, hi: np.ndarray | int, n: int) -> np.ndarray:
    """A wall-clock time in [lo, hi] on a random day between them, inside 07:00-19:59 where it can be."""
    lo = np.broadcast_to(np.asarray(lo, dtype=np.int64), (n,))
    hi = np.broadcast_to(np.asarray(hi, dtype=np.int64), (n,))
    span = hi // DAY - lo // DAY + 1
    day = lo // DAY + (rng.random(n) * span).astype(np.int64)
    at = day * DAY + rng.integers(FIRST_MINUTE, LAST_MINUTE + 1, n)
    return np.clip(at, lo, hi)


def booking_info(rng: np.random.Generator, n: int, in_scope: np.ndarray) -> pl.Series:
    """Bokningsinformation: mostly empty, phone numbers, web-booking marks, quoted free text."""
    r = rng.random(n)
    phone = pl.concat_str(
        [pl.lit("Telefonnr:+467"),
         pl.Series(rng.integers(0, 100_000_000, n)).cast(pl.String).str.zfill(8)]
    )
    free = pl.Series(cat.FREE_TEXTS).gather(rng.integers(0, len(cat.FREE_TEXTS), n))
    web = in_scope & (r >= 0.80) & (r < 0.87)
    frame = pl.DataFrame({"r": r, "web": web, "nl": rng.random(n) < 0.5})
    expr = (
        pl.when(pl.col("r") < 0.70).then(pl.lit(None, dtype=pl.String))
        .when(pl.col("web") & pl.col("nl")).then(pl.concat_str([phone, pl.lit("\nBokning via webbtidbok")]))
        .when(pl.col("web")).then(pl.concat_str([phone, pl.lit(" Bokning via webbtidbok")]))
        .when(pl.col("r") < 0.87).then(phone)
        .otherwise(free)
    )
    return frame.select(expr.alias("Bokningsinformation")).to_series()


def contact_types(rng: np.random.Generator, service: np.ndarray) -> np.ndarray:
    """Kontakttyp index from the care service's kind; hidden contacts are either, some home visits."""
    n = len(service)
    kind = SERVICE_KIND[service]
    contact = KIND_CONTACT[kind]
    contact = np.where(kind == 4, rng.integers(0, 2, n), contact)
    home = (kind == 1) & (SERVICE_PROF[service] == 1) & (rng.random(n) < 0.05)
    return np.where(home, 4, contact)


def draw_bookings(
    rng: np.random.Generator, n: int, *, day_lo: int, day_hi: int, staff: pl.DataFrame,
    patient_pool: np.ndarray, pairs: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> dict[str, np.ndarray | pl.Series]:
    """Unit, service, staff, patient, times, contact/visit type and info of `n` bookings."""
    pair_units, pair_services, pair_probs = pairs
    pair = rng.choice(len(pair_probs), n, p=pair_probs)
    unit = pair_units[pair]
    service = pair_services[pair]
    days = weekday_days(rng, n, day_lo, day_hi)
    start = days * DAY + 8 * HOUR + 15 * rng.integers(0, 34, n)
    end = start + rng.choice(np.array([15, 20, 30, 45, 60]), n)
    return {
        "unit": unit,
        "service": service,
        "staff": pick_staff(rng, staff, unit, SERVICE_PROF[service]),
        "patient": patient_pool[rng.integers(0, len(patient_pool), n)],
        "start": start,
        "end": end,
        "contact": contact_types(rng, service),
        "visit": (rng.random(n) >= 0.4).astype(np.int64),  # 0 Nybesök, 1 Återbesök
        "info": booking_info(rng, n, SERVICE_IN_SCOPE[service]),
    }


def event_time(rng: np.random.Generator, before: np.ndarray, now: int, breach: np.ndarray) -> np.ndarray:
    """When a cancel/rebook was registered: >24 h before the visit, or <24 h for R24 breaches."""
    n = len(before)
    lead = np.where(breach, rng.integers(HOUR, 23 * HOUR, n), rng.integers(25 * HOUR, 20 * DAY, n))
    at = business_hours(before - lead)
    in_future = at > now
    at = np.where(in_future, business_hours(now - rng.integers(0, 5 * DAY, n)), at)
    return np.minimum(at, now)


def bookings_frame(core: dict, staff: pl.DataFrame, patients: pl.DataFrame) -> pl.DataFrame:
    """bokningar.csv rows from the core arrays (one row per booking)."""
    has_time = core["status"] != PLANNED
    reason = core["reason"]
    return pl.DataFrame(
        [
            pl.Series("BokningsID", core["id"]),
            patients["Personnummer"].gather(core["patient"]),
            patients["Namn"].gather(core["patient"]),
            nullable_datetime("BokadTid", core["start"], has_time),
            nullable_datetime("Sluttid", core["end"], has_time),
            pick("Status", cat.BOOKING_STATUSES, STATUS_T, core["status"]),
            pick("Vårdtjänst", SERVICE_NAMES, SERVICE_T, core["service"]),
            pick("Kontakttyp", cat.CONTACT_TYPES, CONTACT_T, core["contact"]),
            pick("Besökstyp", cat.VISIT_TYPES, VISIT_T, core["visit"]),
            pick("EnhetHSAID", UNIT_HSA_IDS, UNIT_ID_T, core["unit"]),
            pick("Enhet", UNIT_NAMES, UNIT_NAME_T, core["unit"]),
            staff["ResursHSAID"].gather(core["staff"]),
            staff["Resurs"].gather(core["staff"]),
            pick("Yrkesroll", cat.PROFESSIONS, PROFESSION_T, SERVICE_PROF[core["service"]]),
            core["info"],
            nullable("UnderlagsID", core["basis"], core["basis"] >= 0),
            pick("Avbokningsorsak", ALL_REASONS, REASON_T, np.maximum(reason, 0), reason >= 0),
            to_datetime("Registreringsdatum", core["registered"]),
            to_datetime("Ändrad", core["changed"]),
        ]
    ).select(BOOKING_COLUMNS)


def _statuses(rng: np.random.Generator, start: np.ndarray, end: np.ndarray, now: int) -> np.ndarray:
    n = len(start)
    u = rng.random(n)
    past = np.select([u < 0.60, u < 0.66, u < 0.86], [DONE, ARRIVED, BOOKED], CANCELLED)
    past = np.where(((past == DONE) | (past == ARRIVED)) & (end > now), IN_PROGRESS, past)
    future = np.select([u < 0.80, u < 0.88, u < 0.93], [BOOKED, CANCELLED, PRELIMINARY], PLANNED)
    return np.where(start < now, past, future)


def _weighted(rng: np.random.Generator, n: int, weighted: tuple[tuple[str, float], ...]) -> np.ndarray:
    w = np.array([x for _, x in weighted])
    return rng.choice(len(w), n, p=w / w.sum())


def _users(rng: np.random.Generator, reason: np.ndarray) -> np.ndarray:
    """Mtwweb ServiceUser for most e-service reasons; staff for the rest (R28)."""
    n = len(reason)
    e_service = (reason == E_CANCEL_CODE) | (reason == E_REBOOK_CODE)
    staff_user = rng.integers(1, len(USERS), n)
    return np.where(e_service & (rng.random(n) < 0.9), 0, staff_user)


def build_events(rng: np.random.Generator, bookings: pl.DataFrame, core: dict, now: int) -> pl.DataFrame:
    """av_ombokningar.csv: the last 60 days of cancellations and rebookings (one row per event)."""
    cancel_idx = core["cancel_idx"]
    rebook_idx = core["rebook_idx"]
    rows = np.concatenate([cancel_idx, rebook_idx])
    is_rebook = np.concatenate([np.zeros(len(cancel_idx), bool), np.ones(len(rebook_idx), bool)])
    at = np.concatenate([core["cancel_at"], core["rebook_at"]])
    previous = np.concatenate([core["start"][cancel_idx], core["rebook_previous"]])
    new = np.concatenate([np.zeros(len(cancel_idx), np.int64), core["start"][rebook_idx]])
    reason = np.concatenate([core["reason"][cancel_idx], core["rebook_reason"]])
    keep = at >= now - EVENT_LOG_DAYS * DAY
    rows, is_rebook, at, previous, new, reason = (
        a[keep] for a in (rows, is_rebook, at, previous, new, reason)
    )
    n = len(rows)
    comment_idx = rng.integers(0, len(cat.COMMENTS), n)
    base = bookings[rows]
    frame = pl.DataFrame(
        [
            to_datetime("Datum", at),
            pl.Series("Typ", np.where(is_rebook, "Ombokad", "Avbokad")),
            base["BokningsID"],
            base["UnderlagsID"],
            base["Personnummer"],
            base["Namn"],
            to_datetime("TidigareTid", previous),
            nullable_datetime("NyTid", new, is_rebook),
            base["Vårdtjänst"],
            base["Kontakttyp"],
            base["EnhetHSAID"],
            base["Enhet"],
            pick("Orsak", ALL_REASONS, REASON_T, reason),
            pick("Kommentar", cat.COMMENTS, pl.String(), comment_idx, rng.random(n) < 0.15),
            pick("Användare", USERS, pl.String(), _users(rng, reason)),
        ]
    ).sort(["Datum", "BokningsID", "Typ"], maintain_order=True)
    return frame.with_columns(
        pl.int_range(EVENT_ID_BASE + 1, EVENT_ID_BASE + 1 + frame.height, dtype=pl.Int64).alias("HändelseID")
    ).select(EVENT_COLUMNS)


def _link_bases(rng: np.random.Generator, core: dict, n_bases: int, now: int) -> dict:
    """Pick bookings made from a booking basis and decide those bases' state (R19, R27)."""
    status = core["status"]
    eligible = np.flatnonzero(np.isin(status, [BOOKED, DONE, ARRIVED, CANCELLED]))
    k = min(int(0.4 * n_bases), len(eligible))
    chosen = np.sort(rng.choice(eligible, k, replace=False)) if k else np.zeros(0, np.int64)
    st = status[chosen]
    reason = core["reason"][chosen]
    patient_cancel = (reason == E_CANCEL_CODE) | (reason == PATIENT_CANCEL_CODE)
    r27_breach = (reason == E_CANCEL_CODE) & (rng.random(k) < 0.15)
    basis_status = np.select(
        [st == BOOKED, st != CANCELLED, patient_cancel & ~r27_breach, patient_cancel],
        [1, 2, 0, 2], 3,
    )
    return {"chosen": chosen, "status": basis_status}


def build_bases(rng: np.random.Generator, core: dict, bookings: pl.DataFrame, patients: pl.DataFrame,
                n_bases: int, now: int, pairs: tuple) -> pl.DataFrame:
    """bokningsunderlag.csv: planned bases plus those booked/closed/removed lately (one row per basis)."""
    today = now // DAY
    link = core["link"]
    chosen, linked_status = link["chosen"], link["status"]
    k = len(chosen)
    m = max(0, n_bases - k)
    # unlinked bases
    pair_units, pair_services, pair_probs = pairs
    pair = rng.choice(len(pair_probs), m, p=pair_probs)
    u_unit, u_service = pair_units[pair], pair_services[pair]
    u_patient = rng.integers(0, patients.height, m)
    ru = rng.random(m)
    u_status = np.select([ru < 0.85, ru < 0.95], [0, 3], 2)
    u_monitor = np.where(u_status == 0, today + rng.integers(0, 121, m), today + rng.integers(-30, 61, m))
    kind = SERVICE_KIND[u_service]
    u_contact = KIND_CONTACT[kind]
    u_contact = np.where(kind == 4, 0, u_contact)
    # R18: a few bases whose contact type contradicts the care service
    contradict = (kind < 2) & (rng.random(m) < 0.01)
    u_contact = np.where(contradict, 1 - u_contact, u_contact)

    l_start = core["start"][chosen]
    l_monitor = l_start // DAY + rng.integers(0, 15, k)
    l_monitor = np.where(linked_status == 0, np.maximum(l_monitor, today), l_monitor)
    has_booking = np.concatenate([linked_status != 0, np.zeros(m, bool)])

    unit = np.concatenate([core["unit"][chosen], u_unit])
    service = np.concatenate([core["service"][chosen], u_service])
    status = np.concatenate([linked_status, u_status])
    n = k + m
    registered = time_between(rng, now - 90 * DAY, now - HOUR, n)
    changed = np.where(status == 0, time_between(rng, registered, now, n),
                       time_between(rng, now - 29 * DAY, now, n))
    registered = np.minimum(registered, changed)
    specialist = UNIT_LEVEL[unit] != cat.PV
    referral = np.where(specialist, rng.random(n) >= 0.03, rng.random(n) < 0.05)
    linked_rows = bookings[chosen]
    base = pl.DataFrame(
        [
            pl.Series("UnderlagsID", BASIS_ID_BASE + 1 + np.arange(n, dtype=np.int64)),
            pl.concat([linked_rows["Personnummer"], patients["Personnummer"].gather(u_patient)]),
            pl.concat([linked_rows["Namn"], patients["Namn"].gather(u_patient)]),
            pick("Vårdtjänst", SERVICE_NAMES, SERVICE_T, service),
            pl.concat([linked_rows["Kontakttyp"],
                       pick("Kontakttyp", cat.CONTACT_TYPES, CONTACT_T, u_contact)]),
            pl.concat([linked_rows["Besökstyp"],
                       pick("Besökstyp", cat.VISIT_TYPES, VISIT_T, (rng.random(m) >= 0.5).astype(np.int64))]),
            pick("EnhetHSAID", UNIT_HSA_IDS, UNIT_ID_T, unit),
            pick("Enhet", UNIT_NAMES, UNIT_NAME_T, unit),
            to_date("Bevakningsdatum", np.concatenate([l_monitor, u_monitor])),
            pick("Status", cat.BASIS_STATUSES, BASIS_STATUS_T, status),
            nullable("BokningsID", np.concatenate([core["id"][chosen], np.zeros(m, np.int64)]), has_booking),
            nullable_datetime("BokadTid", np.concatenate([l_start, np.zeros(m, np.int64)]), has_booking),
            pl.Series("Remiss", rng.integers(10_000_000, 99_999_999, n)).cast(pl.String),
            pl.Series("Akut", np.where(rng.random(n) < 0.05, "Ja", "Nej")).cast(YES_NO_T),
            to_datetime("Registreringsdatum", registered),
            to_datetime("Ändrad", changed),
        ]
    )
    return base.with_columns(
        pl.when(pl.Series(referral)).then(pl.concat_str([pl.lit("RID"), pl.col("Remiss")])).alias("Remiss")
    ).select(BASIS_COLUMNS)


def _markers(staff_units: np.ndarray) -> pl.DataFrame:
    """Schedule markers: one row per marker and care service (marker_id, unit, prof, name, service)."""
    rows: dict[str, list] = {k: [] for k in ("marker_id", "unit", "prof", "marker", "service", "is_mvg")}
    mid = 0

    def add(unit: int, prof: int, name: str, services: list[int]) -> None:
        nonlocal mid
        for s in services:
            rows["marker_id"].append(mid)
            rows["unit"].append(unit)
            rows["prof"].append(prof)
            rows["marker"].append(name)
            rows["service"].append(s)
            rows["is_mvg"].append(name in cat.MVG_MARKERS)
        mid += 1

    for u, level in enumerate(UNIT_LEVEL):
        for prof_name in cat.UNIT_PROFESSIONS[str(level)]:
            p = cat.PROFESSIONS.index(prof_name)
            mine = [i for i, s in enumerate(cat.CARE_SERVICES)
                    if s.level == level and s.web and SERVICE_PROF[i] == p and s.kind != cat.HIDDEN]
            digital = [i for i in mine if SERVICE_KIND[i] == 0]
            physical = [i for i in mine if SERVICE_KIND[i] == 1]
            if digital:
                extra = []
                if cat.UNITS[u][0] == cat.R23_MIXED_UNIT and prof_name == "Sjuksköterska":
                    extra = [SERVICE_NAMES.index(cat.R23_MIXED_SERVICE)]  # R23 breach
                add(u, p, "MVG distans", digital + extra)
            if digital and physical:
                add(u, p, "MVG distans + fysiskt", digital + physical)
            if physical:
                add(u, p, "MVG fysiskt", physical)
            if prof_name == "Sjuksköterska":
                add(u, p, "Telefontid", [SERVICE_NAMES.index("Telefon|telefon|sjuksköterska")])
            if prof_name == "Läkare" and physical:
                add(u, p, "Reserverad tid", physical[:1])
    return pl.DataFrame(rows)


def r22_gap_day(today: int) -> int:
    """The first weekday after today that is not a Swedish public holiday."""
    day = today + 1
    while True:
        d = from_day_number(day)
        if weekday(np.array([day]))[0] < 5 and d not in holidays.Sweden(years=d.year):
            return day
        day += 1


def grid_slots(days: np.ndarray, markers: pl.DataFrame) -> dict[str, np.ndarray]:
    """R22 baseline: one published slot per weekday for doctor and nurse at every unit, and
    physiotherapist in primary care, under the unit-profession's widest MVG marker."""
    first = (
        markers.filter(pl.col("is_mvg"))
        .unique(["marker_id"], keep="first", maintain_order=True)
        .with_columns(rank=pl.col("marker").replace_strict(
            {"MVG distans + fysiskt": 0, "MVG fysiskt": 1, "MVG distans": 2}, return_dtype=pl.Int32))
        .sort(["unit", "prof", "rank"])
        .unique(["unit", "prof"], keep="first", maintain_order=True)
    )
    required = first.filter(
        pl.col("prof").is_in([0, 1])
        | ((pl.col("prof") == 2) & pl.Series([UNIT_LEVEL[u] == cat.PV for u in first["unit"]]))
    )
    weekdays = days[weekday(days) < 5]
    mk = np.repeat(required["marker_id"].to_numpy(), len(weekdays))
    unit = np.repeat(required["unit"].to_numpy(), len(weekdays))
    prof = np.repeat(required["prof"].to_numpy(), len(weekdays))
    day = np.tile(weekdays, required.height)
    start = day * DAY + 8 * HOUR + 30 * ((day + unit) % 16)
    return {"marker": mk, "unit": unit, "prof": prof, "start": start, "end": start + 30,
            "web": np.ones(len(mk), bool), "booking": np.full(len(mk), -1, np.int64),
            "staff_pick": day + unit}


def build_slots(rng: np.random.Generator, core: dict, staff: pl.DataFrame, w_from: int, w_to: int,
                now: int, n_bookings: int) -> tuple[pl.DataFrame, tuple[str, str, date]]:
    """tider.csv: one row per slot and care service of the slot's marker (R20-R23)."""
    markers = _markers(np.arange(len(cat.UNITS)))
    today = now // DAY
    grid = grid_slots(np.arange(today, w_to + 1), markers)

    # booked slots for a sample of bookings on marker services
    lookup = (
        markers.filter(pl.col("is_mvg") & (pl.col("marker") != "MVG distans + fysiskt"))
        .unique(["unit", "service"], keep="first", maintain_order=True)
        .select("unit", "service", "marker_id")
    )
    sample = np.flatnonzero(
        np.isin(core["status"], [PRELIMINARY, BOOKED, ARRIVED, IN_PROGRESS, DONE])
        & SERVICE_WEB[core["service"]] & (rng.random(len(core["status"])) < 0.05)
    )
    hit = pl.DataFrame({"row": sample, "unit": core["unit"][sample], "service": core["service"][sample]}).join(
        lookup, on=["unit", "service"], how="inner", maintain_order="left"
    )
    rows = hit["row"].to_numpy()
    booked = {"marker": hit["marker_id"].to_numpy(), "unit": core["unit"][rows],
              "prof": SERVICE_PROF[core["service"][rows]], "start": core["start"][rows],
              "end": core["end"][rows], "web": rng.random(len(rows)) < 0.85,
              "booking": core["id"][rows], "staff_idx": core["staff"][rows]}

    # free slots under any marker
    n_free = n_bookings // 40
    marker_ids = markers.unique("marker_id", keep="first", maintain_order=True)
    pick_m = rng.integers(0, marker_ids.height, n_free)
    m_unit = marker_ids["unit"].to_numpy()[pick_m]
    m_prof = marker_ids["prof"].to_numpy()[pick_m]
    m_mvg = marker_ids["is_mvg"].to_numpy()[pick_m]
    days = weekday_days(rng, n_free, w_from, w_to)
    start = days * DAY + 8 * HOUR + 20 * rng.integers(0, 25, n_free)
    free = {"marker": marker_ids["marker_id"].to_numpy()[pick_m], "unit": m_unit, "prof": m_prof,
            "start": start, "end": start + 20, "web": m_mvg & (rng.random(n_free) < 0.85),
            "booking": np.full(n_free, -1, np.int64)}

    grid["staff_idx"] = pick_staff(rng, staff, grid["unit"], grid["prof"])
    free["staff_idx"] = pick_staff(rng, staff, free["unit"], free["prof"])
    del grid["staff_pick"]
    parts = [grid, booked, free]
    slot = {k: np.concatenate([p[k] for p in parts]) for k in grid}

    gap_day = r22_gap_day(today)
    gap_unit = UNIT_NAMES.index(cat.R22_GAP_UNIT)
    gap_prof = cat.PROFESSIONS.index(cat.R22_GAP_PROFESSION)
    hole = (slot["unit"] == gap_unit) & (slot["prof"] == gap_prof) & (slot["start"] // DAY == gap_day) & slot["web"]
    slot = {k: v[~hole] for k, v in slot.items()}
    n = len(slot["marker"])
    is_booked = slot["booking"] >= 0
    frame = pl.DataFrame(
        [
            pl.Series("TidID", SLOT_ID_BASE + 1 + np.arange(n, dtype=np.int64)),
            pl.Series("marker_id", slot["marker"]),
            pick("EnhetHSAID", UNIT_HSA_IDS, UNIT_ID_T, slot["unit"]),
            staff["ResursHSAID"].gather(slot["staff_idx"]),
            staff["Resurs"].gather(slot["staff_idx"]),
            pick("Yrkesroll", cat.PROFESSIONS, PROFESSION_T, slot["prof"]),
            to_datetime("Start", slot["start"]),
            to_datetime("Slut", slot["end"]),
            pl.Series("Webbtidbok", np.where(slot["web"], "Ja", "Nej")).cast(YES_NO_T),
            pl.Series("Status", np.where(is_booked, "Bokad", "Ledig")).cast(pl.Enum(("Ledig", "Bokad"))),
            nullable("BokningsID", slot["booking"], is_booked),
        ]
    )
    services = pl.DataFrame(
        [
            markers["marker_id"],
            markers["marker"].cast(pl.Enum(MARKER_NAMES)).alias("Schemamarkering"),
            pick("Vårdtjänst", SERVICE_NAMES, SERVICE_T, markers["service"].to_numpy()),
        ]
    )
    frame = frame.join(services, on="marker_id", how="inner", maintain_order="left").select(SLOT_COLUMNS)
    gap = (UNIT_HSA_IDS[gap_unit], cat.R22_GAP_PROFESSION, from_day_number(gap_day))
    return frame, gap


def generate_region(*, seed: int, n_bookings: int, as_of: datetime) -> Region:
    """A whole region and its first drop (sequence 1) as Cosmic would extract it at `as_of`."""
    if n_bookings < 1:
        raise ValueError("n_bookings must be at least 1")
    local = as_local(as_of)
    rng = np.random.default_rng(seed)
    now = local_minute(local)
    today = now // DAY
    w_from, w_to = today - WINDOW_BEFORE_DAYS, today + WINDOW_AFTER_DAYS
    staff = make_staff(rng, n_bookings)
    patients = make_patients(rng, max(40, n_bookings // 3), today)
    pairs = unit_service_pairs()
    n = n_bookings
    core = draw_bookings(rng, n, day_lo=w_from, day_hi=w_to, staff=staff,
                         patient_pool=np.arange(patients.height), pairs=pairs)
    core["id"] = BOOKING_ID_BASE + 1 + np.arange(n, dtype=np.int64)
    status = _statuses(rng, core["start"], core["end"], now)
    core["status"] = status
    cancel_reason = _weighted(rng, n, cat.CANCEL_REASONS)
    core["reason"] = np.where(status == CANCELLED, cancel_reason, -1)

    # registration / change times, shaped by the cancel and rebook events (R24, R25)
    start = core["start"]
    anchor = np.where(status == PLANNED, now, np.minimum(start, now))
    registered = time_between(rng, anchor - 60 * DAY, anchor - HOUR, n)
    changed = time_between(rng, registered, now, n)

    r24_breach = rng.random(n) < 0.06
    cancel_idx = np.flatnonzero(status == CANCELLED)
    cancel_at = event_time(rng, start[cancel_idx], now, r24_breach[cancel_idx])
    changed[cancel_idx] = cancel_at

    rebook_idx = np.flatnonzero(
        np.isin(status, [PRELIMINARY, BOOKED, ARRIVED, DONE]) & (rng.random(n) < 0.05)
    )
    k = len(rebook_idx)
    shift = rng.integers(-7, 15, k)
    shift = np.where(shift == 0, 1, shift)
    r25_breach = rng.random(k) < 0.06
    shift = np.where(r25_breach, np.where(rng.random(k) < 0.5, rng.integers(15, 31, k),
                                          rng.integers(-20, -7, k)), shift)
    previous = start[rebook_idx] - shift * DAY
    rebook_at = event_time(rng, np.minimum(previous, start[rebook_idx]), now, r24_breach[rebook_idx])
    changed[rebook_idx] = np.maximum(changed[rebook_idx], rebook_at)
    has_event = np.zeros(n, bool)
    has_event[cancel_idx] = True
    has_event[rebook_idx] = True
    event_at = np.full(n, now)
    event_at[cancel_idx] = cancel_at
    event_at[rebook_idx] = rebook_at
    registered = np.where(has_event, time_between(rng, event_at - 30 * DAY, event_at - HOUR, n), registered)
    core.update(registered=registered, changed=changed, cancel_idx=cancel_idx, cancel_at=cancel_at,
                rebook_idx=rebook_idx, rebook_at=rebook_at, rebook_previous=previous,
                rebook_reason=len(cat.CANCEL_REASONS) + _weighted(rng, k, cat.REBOOK_REASONS))

    n_bases = max(10, n // 4)
    core["link"] = _link_bases(rng, core, n_bases, now)
    basis = np.full(n, -1, np.int64)
    basis[core["link"]["chosen"]] = BASIS_ID_BASE + 1 + np.arange(len(core["link"]["chosen"]))
    core["basis"] = basis

    bookings = bookings_frame(core, staff, patients)
    bases = build_bases(rng, core, bookings, patients, n_bases, now, pairs)
    events = build_events(rng, bookings, core, now)
    slots, gap = build_slots(rng, core, staff, w_from, w_to, now, n)
    return Region(
        seed=seed, as_of=local, sequence=1,
        window_from=from_day_number(w_from), window_to=from_day_number(w_to),
        bookings=bookings, booking_bases=bases, events=events, slots=slots,
        units=units_frame(), care_services=care_services_frame(),
        patients=patients, staff=staff, clinic24_units=clinic24_unit_ids(),
        r22_gap=gap, r23_mixed_unit=UNIT_HSA_IDS[UNIT_NAMES.index(cat.R23_MIXED_UNIT)],
        notes={"next_booking_id": BOOKING_ID_BASE + 1 + n},
    )
