"""Synthetic normalised snapshots for the report pages: rendering checks and the timing run.

Deterministic for a seed; every breach kind (R24-R27), HSL gaps, 07:00 releases and a mixed
marker (R23) occur. Patient ids are fake 12-digit numbers, names are made up.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import polars as pl

UTC_DT = pl.Datetime("us", "UTC")
ESERVICE_USER = "Mtwweb ServiceUser"
REASONS = (
    "Patienten avbokar via e-tjänst",
    "Patienten ombokar via e-tjänst",
    "Patienten avbokar",
    "Felaktig registrering",
)
SERVICES = (
    ("Primärvård|distans video|läkare", True, True),
    ("Primärvård|distans video|sjuksköterska", True, True),
    ("Primärvård|mottagning|fysioterapeut", True, True),
    ("Primärvård|mottagning|sjuksköterska|fotvård", False, True),
    ("Strålbehandling|mottagning|läkare", False, False),
)
SLOT_SERVICES = {
    "Läkare": ["Primärvård|distans video|läkare", "Primärvård|mottagning|läkare"],
    "Sjuksköterska": ["Primärvård|distans video|sjuksköterska"],
    "Fysioterapeut": ["Primärvård|mottagning|fysioterapeut"],
}
MARKERS = ("MVG distans", "MVG distans + fysiskt", "MVG fysiskt")


def _units(n: int) -> pl.DataFrame:
    ids = [f"SE2321000233-E{i:04d}" for i in range(n)]
    kinds = [("Hälsocentral", "Primärvård", True), ("Specialistmottagning", "Specialistvård", True),
             ("Hälsocentral", "Primärvård", False)]
    rows = [kinds[i % 3] for i in range(n)]
    names = [f"{'Hälsocentral' if r[0] == 'Hälsocentral' else 'Mottagning'} {i:03d}"
             for i, r in enumerate(rows)]
    ids.append("SE2321000233-STRL")
    names.append("Strålbehandlingsmottagning Gävle")
    rows.append(("Strålbehandlingsmottagning", "Specialistvård", True))
    return pl.DataFrame({
        "unit_hsa_id": ids, "unit_name": names,
        "unit_type": [r[0] for r in rows], "care_level": [r[1] for r in rows],
        "is_public": [r[2] for r in rows],
    })


def _care_services() -> pl.DataFrame:
    return pl.DataFrame({
        "care_service": [s[0] for s in SERVICES],
        "is_web_bookable": [True] * len(SERVICES),
        "clinic24_role": ["lakare", "sjukskoterska", "fysioterapeut", "sjukskoterska", None],
        "patient_may_rebook": [s[1] for s in SERVICES],
        "patient_may_cancel": [s[2] for s in SERVICES],
    })


def _ts(base: datetime, seconds: np.ndarray) -> pl.Series:
    epoch_us = int(base.timestamp() * 1_000_000)
    return pl.Series(epoch_us + seconds.astype(np.int64) * 1_000_000).cast(UTC_DT)


def sample_datasets(
    *,
    units: int = 6,
    events: int = 300,
    start: date = date(2026, 11, 2),
    event_days: int = 28,
    slot_days: int = 28,
    slots_per_unit_day: int = 6,
    seed: int = 7,
) -> dict[str, pl.DataFrame]:
    """`events`, `booking_bases`, `care_services`, `slots`, `units` as design.md names them."""
    rng = np.random.default_rng(seed)
    unit_df = _units(units)
    base = datetime(start.year, start.month, start.day, 7, 0, tzinfo=UTC)
    n = events

    unit_idx = rng.integers(0, unit_df.height, n)
    service_idx = rng.choice(len(SERVICES), n, p=[0.5, 0.3, 0.1, 0.07, 0.03])
    reason_idx = rng.choice(4, n, p=[0.35, 0.25, 0.25, 0.15])
    registered_s = rng.integers(0, event_days * 86_400, n)
    # mostly days ahead, some within the last 24 h (R24)
    lead_s = np.where(rng.random(n) < 0.1, rng.integers(-3_600, 86_400, n),
                      rng.integers(86_400, 30 * 86_400, n))
    previous_s = registered_s + lead_s
    is_rebook = (reason_idx == 1) | ((reason_idx >= 2) & (rng.random(n) < 0.4))
    shift_days = rng.integers(-9, 17, n)  # a few outside -7/+14 (R25)
    new_s = previous_s + shift_days * 86_400
    patient_ids = [str(p) for p in rng.integers(194_001_010_000, 202_012_310_000, n)]
    unit_ids = unit_df["unit_hsa_id"].to_numpy()[unit_idx]
    unit_names = unit_df["unit_name"].to_numpy()[unit_idx]
    services = np.array([s[0] for s in SERVICES])[service_idx]
    reasons = np.array(REASONS)[reason_idx]
    users = np.where(
        (reason_idx <= 1) & (rng.random(n) < 0.9), ESERVICE_USER,
        "Eichmann, Albin, Medicinsk sekreterare")
    event_ids = [f"H{i:08d}" for i in range(n)]
    events_df = pl.DataFrame({
        "event_id": event_ids,
        "registered_at": _ts(base, registered_s),
        "event_type": np.where(is_rebook, "rebook", "cancel"),
        "booking_id": [f"B{i:08d}" for i in range(n)],
        "basis_id": [f"U{i:08d}" for i in range(n)],
        "patient_id": patient_ids,
        "patient_id_kind": ["personnummer"] * n,
        "patient_name": [f"Testsson, Patient {i}" for i in range(n)],
        "previous_start": _ts(base, previous_s),
        "new_start": _ts(base, new_s),
        "care_service": services,
        "contact_type": ["Distansbesök - video"] * n,
        "unit_hsa_id": unit_ids,
        "unit_name": unit_names,
        "reason": reasons,
        "comment": pl.Series(["Bokning via webbtidbok" if c else None
                              for c in rng.random(n) < 0.5], dtype=pl.String),
        "user_name": users,
    }).with_columns(
        new_start=pl.when(pl.col("event_type") == "rebook").then(pl.col("new_start"))
    )

    # Own bases (monitoring dates) for every event, plus put-back bases for ~90 % of
    # cancellations (the rest are R27 breaches).
    own = events_df.select(
        "basis_id", "patient_id", "patient_id_kind", "patient_name", "care_service",
        "contact_type", pl.lit("Återbesök").alias("visit_type"), "unit_hsa_id", "unit_name",
        (pl.col("previous_start").dt.date() + pl.duration(days=14)).alias("monitoring_date"),
        pl.lit("booked").alias("status"), "booking_id",
        pl.col("previous_start").alias("booked_start_at"), pl.lit(None, pl.String).alias("referral_id"),
        pl.lit(False).alias("is_acute"),
        (pl.col("registered_at") - pl.duration(days=40)).alias("registered_at"),
        (pl.col("registered_at") - pl.duration(days=40)).alias("changed_at"),
    )
    put_back_mask = (events_df["event_type"] == "cancel").to_numpy() & (rng.random(n) < 0.9)
    put_back = (
        events_df.filter(pl.Series(put_back_mask))
        .select(
            ("P" + pl.col("event_id")).alias("basis_id"), "patient_id", "patient_id_kind",
            "patient_name", "care_service", "contact_type",
            pl.lit("Återbesök").alias("visit_type"), "unit_hsa_id", "unit_name",
            (pl.col("previous_start").dt.date() + pl.duration(days=14)).alias("monitoring_date"),
            pl.lit("planned").alias("status"), pl.lit(None, pl.String).alias("booking_id"),
            pl.lit(None, UTC_DT).alias("booked_start_at"),
            pl.lit(None, pl.String).alias("referral_id"), pl.lit(False).alias("is_acute"),
            (pl.col("registered_at") + pl.duration(seconds=5)).alias("registered_at"),
            (pl.col("registered_at") + pl.duration(seconds=5)).alias("changed_at"),
        )
    )
    bases_df = pl.concat([own, put_back])

    return {
        "events": events_df,
        "booking_bases": bases_df,
        "care_services": _care_services(),
        "slots": _slots(unit_df, start, slot_days, slots_per_unit_day, rng),
        "units": unit_df,
    }


def _slots(unit_df: pl.DataFrame, start: date, days: int, per_day: int,
           rng: np.random.Generator) -> pl.DataFrame:
    professions = list(SLOT_SERVICES)
    rows_unit, rows_day, rows_prof, rows_hour = [], [], [], []
    for u in unit_df["unit_hsa_id"].to_list():
        for d in range(days):
            for p in professions:
                # now and then a profession has no slot at all that day (an HSL gap)
                if rng.random() < 0.04:
                    continue
                k = int(rng.integers(1, per_day + 1))
                rows_unit += [u] * k
                rows_day += [d] * k
                rows_prof += [p] * k
                rows_hour += list(rng.integers(7, 16, k))
    m = len(rows_unit)
    base = datetime(start.year, start.month, start.day, tzinfo=UTC)
    seconds = np.array(rows_day, dtype=np.int64) * 86_400 + (np.array(rows_hour) - 1) * 3_600
    slots = pl.DataFrame({
        "slot_id": [f"T{i:09d}" for i in range(m)],
        "unit_hsa_id": rows_unit,
        "resource_hsa_id": [None] * m,
        "resource_name": [None] * m,
        "profession": rows_prof,
        "start_at": _ts(base, seconds),
        "schedule_marker": np.array(MARKERS)[rng.integers(0, 3, m)],
        "is_web_bookable": rng.random(m) < 0.97,
        "status": np.where(rng.random(m) < 0.6, "booked", "free"),
    }, schema_overrides={"resource_hsa_id": pl.String, "resource_name": pl.String})
    slots = slots.with_columns(
        end_at=pl.col("start_at") + pl.duration(minutes=20),
        booking_id=pl.when(pl.col("status") == "booked").then(pl.col("slot_id")),
        care_service=pl.col("profession").replace_strict(
            dict(SLOT_SERVICES), return_dtype=pl.List(pl.String)),
    ).explode("care_service")
    # one configuration error: a doctor marker that also carries a nurse service (R23)
    first = slots.filter(pl.col("profession") == "Läkare").head(1).with_columns(
        care_service=pl.lit("Primärvård|distans video|sjuksköterska"))
    return pl.concat([slots, first]).select(
        "slot_id", "unit_hsa_id", "resource_hsa_id", "resource_name", "profession", "start_at",
        "end_at", "schedule_marker", "care_service", "is_web_bookable", "status", "booking_id",
    )
