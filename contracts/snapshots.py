"""pandera contracts of the normalised snapshots (design.md): strict, typed, one model per dataset."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData
from pandera.engines.polars_engine import DateTime

UTC = {"time_unit": "us", "time_zone": "UTC"}
# What R13 (mvg_sync.rules.patient_id) can emit: any century (a 10-digit form reaches 199 years
# back, a 12-digit one keeps the century it was written with), a real month, a day 01-31 or,
# for a samordningsnummer, 61-91. Date validity and the check digit are the normaliser's.
PATIENT_ID = r"^[0-9]{4}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01]|6[1-9]|[78][0-9]|9[01])[0-9]{4}$"
HSA_ID = r"^SE\d{10}-[0-9A-Za-z]{1,20}$"
PATIENT_ID_KINDS = ["personnummer", "samordningsnummer"]
VISIT_TYPES = ["Nybesök", "Återbesök"]

# Datasets this large are checked column-by-type in full and value-by-value on a sample:
# the row rules were already applied as Polars masks by ingestion (mvg_sync.ingest.normalise)
# and the grain by its duplicate check, so the sample guards the hand-over, not the data: a
# normaliser bug breaks a kind of row, and a kind of row as rare as 1 in 1,000 still shows ~50
# times in 50,000. Issue 12: checking a regional file whole cost 0.45 of its 2.3 CPU-s.
FULL_CHECK_MAX_ROWS = 50_000
SAMPLE_ROWS = 50_000


def _end_after_start(data: PolarsData, start: str = "start_at", end: str = "end_at") -> pl.LazyFrame:
    return data.lazyframe.select(
        (pl.col(end) > pl.col(start)) | pl.col(start).is_null() | pl.col(end).is_null()
    )


class Bookings(pa.DataFrameModel):
    """One row per booking (grain: `booking_id`), from bokningar.csv."""

    booking_id: str = pa.Field(unique=True, description="Cosmic BokningsID, stable across rebookings")
    patient_id: str = pa.Field(str_matches=PATIENT_ID, description="R13: 12-digit personnummer")
    patient_id_kind: str = pa.Field(isin=PATIENT_ID_KINDS, description="personnummer or samordningsnummer")
    patient_name: str = pa.Field(description="Efternamn, Förnamn")
    start_at: DateTime = pa.Field(nullable=True, dtype_kwargs=UTC, description="start; null only if planned")
    end_at: DateTime = pa.Field(nullable=True, dtype_kwargs=UTC, description="end, after start_at")
    status: str = pa.Field(
        isin=["planned", "preliminary", "booked", "arrived", "in_progress", "done", "cancelled"],
        description="Cosmic Status mapped to English",
    )
    care_service: str = pa.Field(description="Vårdtjänst, Area|contact|profession[|speciality]")
    contact_type: str = pa.Field(description="Kontakttyp, Cosmic's text")
    visit_type: str = pa.Field(isin=VISIT_TYPES, description="Besökstyp")
    unit_hsa_id: str = pa.Field(str_matches=HSA_ID, description="HSA-id of the caring unit")
    unit_name: str = pa.Field(description="unit name")
    resource_hsa_id: str = pa.Field(nullable=True, str_matches=HSA_ID, description="HSA-id of the staff member")
    resource_name: str = pa.Field(nullable=True, description="staff member")
    profession: str = pa.Field(nullable=True, description="Yrkesroll")
    booking_info: str = pa.Field(nullable=True, description="free text")
    basis_id: str = pa.Field(nullable=True, description="booking basis the booking was made from")
    cancel_reason: str = pa.Field(nullable=True, description="Avbokningsorsak")
    registered_at: DateTime = pa.Field(dtype_kwargs=UTC, description="registered in Cosmic")
    changed_at: DateTime = pa.Field(dtype_kwargs=UTC, description="last change in Cosmic")
    source_row: pl.Int64 = pa.Field(ge=1, unique=True, description="1-based data row in the CSV")

    class Config:
        strict = True
        ordered = True

    @pa.dataframe_check
    @classmethod
    def end_after_start(cls, data: PolarsData) -> pl.LazyFrame:
        """end_at is after start_at."""
        return _end_after_start(data)

    @pa.dataframe_check
    @classmethod
    def times_unless_planned(cls, data: PolarsData) -> pl.LazyFrame:
        """Only a planned booking may lack start_at / end_at."""
        return data.lazyframe.select(
            (pl.col("status") == "planned") | (pl.col("start_at").is_not_null() & pl.col("end_at").is_not_null())
        )


class BookingBases(pa.DataFrameModel):
    """One row per booking basis (grain: `basis_id`), from bokningsunderlag.csv."""

    basis_id: str = pa.Field(unique=True, description="UnderlagsID")
    patient_id: str = pa.Field(str_matches=PATIENT_ID, description="R13: 12-digit personnummer")
    patient_id_kind: str = pa.Field(isin=PATIENT_ID_KINDS)
    patient_name: str = pa.Field()
    care_service: str = pa.Field()
    contact_type: str = pa.Field()
    visit_type: str = pa.Field(isin=VISIT_TYPES)
    unit_hsa_id: str = pa.Field(str_matches=HSA_ID)
    unit_name: str = pa.Field()
    monitoring_date: pl.Date = pa.Field(description="Bevakningsdatum")
    status: str = pa.Field(isin=["planned", "booked", "closed", "removed"])
    booking_id: str = pa.Field(nullable=True, description="set when booked")
    booked_start_at: DateTime = pa.Field(nullable=True, dtype_kwargs=UTC, description="set when booked")
    referral_id: str = pa.Field(nullable=True, description="Remiss (R17 checks it where required)")
    is_acute: bool = pa.Field(description="Akut Ja/Nej")
    registered_at: DateTime = pa.Field(dtype_kwargs=UTC)
    changed_at: DateTime = pa.Field(dtype_kwargs=UTC)
    source_row: pl.Int64 = pa.Field(ge=1, unique=True)

    class Config:
        strict = True
        ordered = True


class Events(pa.DataFrameModel):
    """One row per cancel/rebook event (grain: `event_id`), from av_ombokningar.csv."""

    event_id: str = pa.Field(unique=True, description="HändelseID")
    registered_at: DateTime = pa.Field(dtype_kwargs=UTC, description="Datum")
    event_type: str = pa.Field(isin=["cancel", "rebook"])
    booking_id: str = pa.Field()
    basis_id: str = pa.Field(nullable=True)
    patient_id: str = pa.Field(str_matches=PATIENT_ID)
    patient_id_kind: str = pa.Field(isin=PATIENT_ID_KINDS)
    patient_name: str = pa.Field()
    previous_start: DateTime = pa.Field(dtype_kwargs=UTC, description="TidigareTid")
    new_start: DateTime = pa.Field(nullable=True, dtype_kwargs=UTC, description="NyTid (rebook)")
    care_service: str = pa.Field()
    contact_type: str = pa.Field()
    unit_hsa_id: str = pa.Field(str_matches=HSA_ID)
    unit_name: str = pa.Field()
    reason: str = pa.Field(description="Orsak")
    comment: str = pa.Field(nullable=True)
    user_name: str = pa.Field(description="Användare")
    source_row: pl.Int64 = pa.Field(ge=1, unique=True)

    class Config:
        strict = True
        ordered = True


class Slots(pa.DataFrameModel):
    """One row per slot and care service (grain: `slot_id` + `care_service`), from tider.csv."""

    slot_id: str = pa.Field(description="TidID")
    unit_hsa_id: str = pa.Field(str_matches=HSA_ID)
    resource_hsa_id: str = pa.Field(nullable=True, str_matches=HSA_ID)
    resource_name: str = pa.Field(nullable=True)
    profession: str = pa.Field()
    start_at: DateTime = pa.Field(dtype_kwargs=UTC)
    end_at: DateTime = pa.Field(dtype_kwargs=UTC)
    schedule_marker: str = pa.Field(nullable=True)
    care_service: str = pa.Field()
    is_web_bookable: bool = pa.Field()
    status: str = pa.Field(isin=["free", "booked"])
    booking_id: str = pa.Field(nullable=True)
    source_row: pl.Int64 = pa.Field(ge=1, unique=True)

    class Config:
        strict = True
        ordered = True
        unique = ["slot_id", "care_service"]

    @pa.dataframe_check
    @classmethod
    def end_after_start(cls, data: PolarsData) -> pl.LazyFrame:
        """end_at is after start_at."""
        return _end_after_start(data)


class Units(pa.DataFrameModel):
    """One row per unit (grain: `unit_hsa_id`), from enheter.csv."""

    unit_hsa_id: str = pa.Field(unique=True, str_matches=HSA_ID)
    unit_name: str = pa.Field()
    unit_type: str = pa.Field(description="Enhetstyp, Cosmic's text")
    care_level: str = pa.Field(isin=["Primärvård", "Specialistvård"])
    is_public: bool = pa.Field()
    source_row: pl.Int64 = pa.Field(ge=1, unique=True)

    class Config:
        strict = True
        ordered = True


class CareServices(pa.DataFrameModel):
    """One row per care service (grain: `care_service`), from vardtjanster.csv."""

    care_service: str = pa.Field(unique=True)
    is_web_bookable: bool = pa.Field(description="R02")
    clinic24_role: str = pa.Field(nullable=True, description="R05")
    patient_may_rebook: bool = pa.Field(description="R26")
    patient_may_cancel: bool = pa.Field(description="R26")
    source_row: pl.Int64 = pa.Field(ge=1, unique=True)

    class Config:
        strict = True
        ordered = True


SNAPSHOT_MODELS: dict[str, type[pa.DataFrameModel]] = {
    "bookings": Bookings,
    "booking_bases": BookingBases,
    "events": Events,
    "slots": Slots,
    "units": Units,
    "care_services": CareServices,
}


class SnapshotContractError(Exception):
    """A normalised snapshot breaks its contract: a bug in ingestion, never bad input."""


def validate_snapshot(dataset: str, frame: pl.DataFrame) -> None:
    """Check a normalised snapshot against its model, gathering every failure (lazy=True).

    Raises SnapshotContractError with the failing checks (column and check names only).
    """
    model = SNAPSHOT_MODELS[dataset]
    try:
        if frame.height <= FULL_CHECK_MAX_ROWS:
            model.validate(frame, lazy=True)
        else:
            model.validate(frame.lazy(), lazy=True)  # names and types of every column
            model.validate(frame.sample(SAMPLE_ROWS, seed=0), lazy=True)
    except (pa.errors.SchemaErrors, pa.errors.SchemaError) as exc:
        raise SnapshotContractError(f"{dataset}: {_summary(exc)}") from None


def _summary(exc: Exception) -> str:
    cases = getattr(exc, "failure_cases", None)
    if isinstance(cases, pl.DataFrame) and {"column", "check"} <= set(cases.columns):
        pairs = cases.select(pl.col("column").cast(pl.String), pl.col("check").cast(pl.String)).unique()
        return "; ".join(f"{c}: {k}" for c, k in pairs.sort("column", "check").iter_rows())
    return type(exc).__name__
