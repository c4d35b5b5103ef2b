"""A deterministic sample region: units, staff, patients and one drop's Cosmic-shaped datasets."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np
import polars as pl

from mvg_sync.generator import catalogue as cat
from mvg_sync.generator.personnummer import FORM_WEIGHTS, make_ids
from mvg_sync.generator.timegrid import (
    date_parts,
    to_date,
)

WINDOW_BEFORE_DAYS = 7
WINDOW_AFTER_DAYS = 90
EVENT_LOG_DAYS = 60
BASIS_CLOSED_DAYS = 30

BOOKING_ID_BASE = 10_000_000
BASIS_ID_BASE = 20_000_000
SLOT_ID_BASE = 30_000_000
EVENT_ID_BASE = 40_000_000

# CSV file name -> Region attribute, in the order the drop lists them
FILES = {
    "bokningar.csv": "bookings",
    "bokningsunderlag.csv": "booking_bases",
    "av_ombokningar.csv": "events",
    "tider.csv": "slots",
    "enheter.csv": "units",
    "vardtjanster.csv": "care_services",
}

BOOKING_COLUMNS = (
    "BokningsID", "Personnummer", "Namn", "BokadTid", "Sluttid", "Status", "Vårdtjänst",
    "Kontakttyp", "Besökstyp", "EnhetHSAID", "Enhet", "ResursHSAID", "Resurs", "Yrkesroll",
    "Bokningsinformation", "UnderlagsID", "Avbokningsorsak", "Registreringsdatum", "Ändrad",
)
BASIS_COLUMNS = (
    "UnderlagsID", "Personnummer", "Namn", "Vårdtjänst", "Kontakttyp", "Besökstyp", "EnhetHSAID",
    "Enhet", "Bevakningsdatum", "Status", "BokningsID", "BokadTid", "Remiss", "Akut",
    "Registreringsdatum", "Ändrad",
)
EVENT_COLUMNS = (
    "HändelseID", "Datum", "Typ", "BokningsID", "UnderlagsID", "Personnummer", "Namn",
    "TidigareTid", "NyTid", "Vårdtjänst", "Kontakttyp", "EnhetHSAID", "Enhet", "Orsak",
    "Kommentar", "Användare",
)
SLOT_COLUMNS = (
    "TidID", "EnhetHSAID", "ResursHSAID", "Resurs", "Yrkesroll", "Start", "Slut",
    "Schemamarkering", "Vårdtjänst", "Webbtidbok", "Status", "BokningsID",
)

SERVICE_NAMES = tuple(s.name for s in cat.CARE_SERVICES)
UNIT_HSA_IDS = tuple(f"{cat.HSA_PREFIX}E{1001 + i}" for i in range(len(cat.UNITS)))
UNIT_NAMES = tuple(u[0] for u in cat.UNITS)
CANCEL_REASON_NAMES = tuple(r for r, _ in cat.CANCEL_REASONS)
REBOOK_REASON_NAMES = tuple(r for r, _ in cat.REBOOK_REASONS)
ALL_REASONS = CANCEL_REASON_NAMES + REBOOK_REASON_NAMES
USERS = (cat.E_SERVICE_USER, *cat.SECRETARIES)
MARKER_NAMES = cat.MVG_MARKERS + cat.OTHER_MARKERS

# Enum dtypes keep 10 M-row frames small; they compare equal to plain strings.
SERVICE_T = pl.Enum(SERVICE_NAMES)
STATUS_T = pl.Enum(cat.BOOKING_STATUSES)
BASIS_STATUS_T = pl.Enum(cat.BASIS_STATUSES)
CONTACT_T = pl.Enum(cat.CONTACT_TYPES)
VISIT_T = pl.Enum(cat.VISIT_TYPES)
UNIT_ID_T = pl.Enum(UNIT_HSA_IDS)
UNIT_NAME_T = pl.Enum(UNIT_NAMES)
PROFESSION_T = pl.Enum(cat.PROFESSIONS)
REASON_T = pl.Enum(ALL_REASONS)
YES_NO_T = pl.Enum(("Ja", "Nej"))

_KIND_CODE = {cat.DIGITAL: 0, cat.PHYSICAL: 1, cat.PHONE: 2, cat.ADMIN: 3, cat.HIDDEN: 4}
SERVICE_KIND = np.array([_KIND_CODE[s.kind] for s in cat.CARE_SERVICES])
SERVICE_PROF = np.array([cat.PROFESSIONS.index(s.profession) for s in cat.CARE_SERVICES])
SERVICE_IN_SCOPE = np.array([s.in_scope for s in cat.CARE_SERVICES])
SERVICE_WEB = np.array([s.web for s in cat.CARE_SERVICES])
UNIT_LEVEL = np.array(
    [cat.RT if name == cat.RADIOTHERAPY_UNIT else level for name, _, level, _ in cat.UNITS]
)
KIND_CONTACT = np.array([0, 1, 2, 3, 1])  # index into CONTACT_TYPES per kind code


@dataclass
class Region:
    """Raw Cosmic-shaped frames of one drop (headers exactly as the CSV columns) plus metadata.

    Date-times are naive `pl.Datetime` holding Stockholm wall-clock time, dates are `pl.Date`,
    ids are Int64, fixed vocabularies are `pl.Enum`, the rest `pl.String`.
    `patients` and `staff` are the generator's own registers (not files of the drop).
    """

    seed: int
    as_of: datetime
    sequence: int
    window_from: date
    window_to: date
    bookings: pl.DataFrame
    booking_bases: pl.DataFrame
    events: pl.DataFrame
    slots: pl.DataFrame
    units: pl.DataFrame
    care_services: pl.DataFrame
    patients: pl.DataFrame
    staff: pl.DataFrame
    clinic24_units: tuple[str, ...]
    r22_gap: tuple[str, str, date]
    r23_mixed_unit: str
    notes: dict[str, object] = field(default_factory=dict)

    def frame(self, file_name: str) -> pl.DataFrame:
        """The dataset written as `file_name` (e.g. `bokningar.csv`)."""
        return getattr(self, FILES[file_name])


# ---------------------------------------------------------------- static registers


def units_frame() -> pl.DataFrame:
    """enheter.csv: one row per unit."""
    return pl.DataFrame(
        {
            "EnhetHSAID": list(UNIT_HSA_IDS),
            "Enhet": list(UNIT_NAMES),
            "Enhetstyp": [u[1] for u in cat.UNITS],
            "Verksamhetsområde": [u[2] for u in cat.UNITS],
            "Offentlig": ["Ja" if u[3] else "Nej" for u in cat.UNITS],
        }
    )


def care_services_frame() -> pl.DataFrame:
    """vardtjanster.csv: one row per care service."""

    def yn(flag: bool) -> str:
        return "Ja" if flag else "Nej"

    return pl.DataFrame(
        {
            "Vårdtjänst": [s.name for s in cat.CARE_SERVICES],
            "Webbtidbok": [yn(s.web) for s in cat.CARE_SERVICES],
            "Clinic24Roll": [s.role for s in cat.CARE_SERVICES],
            "PatientKanOmboka": [yn(s.may_rebook) for s in cat.CARE_SERVICES],
            "PatientKanAvboka": [yn(s.may_cancel) for s in cat.CARE_SERVICES],
        },
        schema_overrides={"Clinic24Roll": pl.String},
    )


def clinic24_unit_ids() -> tuple[str, ...]:
    """The units Clinic24 knows: all but `UNITS_OUTSIDE_CLINIC24` (R01)."""
    return tuple(
        hsa for hsa, name in zip(UNIT_HSA_IDS, UNIT_NAMES, strict=True)
        if name not in cat.UNITS_OUTSIDE_CLINIC24
    )


def unit_service_pairs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(unit, service, probability) of a booking landing on that unit and service."""
    unit_weight = {cat.PV: 1.0, cat.SV: 1.0, cat.RT: 0.7}
    units, services, probs = [], [], []
    total_weight = sum(unit_weight[str(level)] for level in UNIT_LEVEL)
    for u, level in enumerate(UNIT_LEVEL):
        offered = [
            i for i, s in enumerate(cat.CARE_SERVICES)
            if s.level == level or s.level == cat.ANY
        ]
        # hidden / phone / admin / group services carry their weight as a share of the unit
        special = [i for i in offered if not cat.CARE_SERVICES[i].in_scope
                   and i != SERVICE_NAMES.index(cat.MISCONFIGURED_SERVICE)]
        regular = [i for i in offered if i not in special]
        special_share = sum(cat.CARE_SERVICES[i].weight for i in special)
        regular_total = sum(cat.CARE_SERVICES[i].weight for i in regular)
        for i in offered:
            w = cat.CARE_SERVICES[i].weight
            p = w if i in special else (1 - special_share) * w / regular_total
            units.append(u)
            services.append(i)
            probs.append(p * unit_weight[str(level)] / total_weight)
    prob = np.array(probs)
    return np.array(units), np.array(services), prob / prob.sum()


def make_staff(rng: np.random.Generator, n_bookings: int) -> pl.DataFrame:
    """Staff, sorted by unit then profession; more staff for larger regions."""
    per_group = min(400, 2 + n_bookings // 50_000)
    rows: dict[str, list] = {k: [] for k in ("ResursHSAID", "Resurs", "Yrkesroll", "EnhetHSAID",
                                             "unit_idx", "prof_idx")}
    serial = 0
    for u, level in enumerate(UNIT_LEVEL):
        for prof in cat.UNIT_PROFESSIONS[str(level)]:
            first = rng.integers(0, len(cat.FIRST_NAMES), per_group)
            last = rng.integers(0, len(cat.LAST_NAMES), per_group)
            for f, la in zip(first, last, strict=True):
                serial += 1
                rows["ResursHSAID"].append(f"{cat.HSA_PREFIX}T{serial:05d}")
                rows["Resurs"].append(f"{cat.LAST_NAMES[la]}, {cat.FIRST_NAMES[f]}")
                rows["Yrkesroll"].append(prof)
                rows["EnhetHSAID"].append(UNIT_HSA_IDS[u])
                rows["unit_idx"].append(u)
                rows["prof_idx"].append(cat.PROFESSIONS.index(prof))
    return pl.DataFrame(rows, schema_overrides={"unit_idx": pl.Int32, "prof_idx": pl.Int32})


def staff_groups(staff: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Offset and count of staff per group `unit * 5 + profession` (staff sorted by group)."""
    n_groups = len(cat.UNITS) * len(cat.PROFESSIONS)
    group = (staff["unit_idx"].to_numpy() * len(cat.PROFESSIONS) + staff["prof_idx"].to_numpy())
    count = np.bincount(group, minlength=n_groups)
    offset = np.concatenate([[0], np.cumsum(count)[:-1]])
    return offset, count


def pick_staff(rng: np.random.Generator, staff: pl.DataFrame, unit: np.ndarray,
               prof: np.ndarray) -> np.ndarray:
    offset, count = staff_groups(staff)
    group = unit * len(cat.PROFESSIONS) + prof
    if (count[group] == 0).any():
        raise ValueError("a unit offers a care service of a profession it has no staff for")
    return offset[group] + (rng.random(len(group)) * count[group]).astype(np.int64)


def make_patients(rng: np.random.Generator, n_patients: int, today: int) -> pl.DataFrame:
    """Patients with Luhn-valid ids in every form Cosmic shows (R13), children 0-12 (R12)."""
    r = rng.random(n_patients)
    year_days = 365.25
    age_days = np.where(
        r < 0.07, rng.uniform(0, 12.9 * year_days, n_patients),
        np.where(r < 0.08, rng.uniform(101 * year_days, 104 * year_days, n_patients),
                 rng.uniform(13 * year_days, 95 * year_days, n_patients)),
    ).astype(np.int64)
    birth = today - age_days
    year, month, day = date_parts(birth)
    is_centenarian = (r >= 0.07) & (r < 0.08)
    ids = make_ids(
        year, month, day, rng.integers(1, 1000, n_patients), rng.random(n_patients) < 0.03,
        rng.choice(len(FORM_WEIGHTS), n_patients, p=FORM_WEIGHTS), is_centenarian,
    )
    is_child = r < 0.07
    # exactly every other child has a primary guardian in Clinic24 (R12)
    child_rank = np.cumsum(is_child) - 1
    has_guardian = is_child & (child_rank % 2 == 0)
    first = pl.Series(cat.FIRST_NAMES).gather(rng.integers(0, len(cat.FIRST_NAMES), n_patients))
    last = pl.Series(cat.LAST_NAMES).gather(rng.integers(0, len(cat.LAST_NAMES), n_patients))
    return ids.with_columns(
        Namn=pl.concat_str([last, pl.lit(", "), first]),
        birth_date=to_date("birth_date", birth),
        is_child=pl.Series(is_child),
        has_guardian=pl.Series(has_guardian),
    )
