"""Booking scope (R01-R06): which Cosmic bookings belong in Clinic24, and as which desired rows."""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import duckdb
import polars as pl

DIGITAL = "digital"
PHYSICAL = "physical"
HIDDEN_CONTACT = "Dold kontakt"
# Cosmic may leave Avbokningsorsak empty, but Clinic24 requires a reason on every cancel.
DEFAULT_CANCEL_REASON = "Avbokad i Cosmic"

NOT_YET_BOOKED_STATUSES = ("planned", "preliminary")
UNDER_WAY_STATUSES = ("arrived", "in_progress", "done")
PUSHED_STATUSES = ("booked", "cancelled")

# Reasons recorded in `ScopeResult.held` / `.out_of_scope` (never patient data).
REASON_UNIT_NOT_IN_CLINIC24 = "unit-not-in-clinic24"
REASON_HIDDEN_CONTACT = "hidden-contact"
REASON_NOT_IN_CATALOGUE = "care-service-not-in-catalogue"
REASON_NOT_WEB_BOOKABLE = "not-web-bookable"
REASON_NOT_YET_BOOKED = "not-yet-booked"
REASON_VISIT_UNDER_WAY = "visit-under-way"
REASON_UNKNOWN_STATUS = "unknown-status"
REASON_MISSING_ROLE = "missing-role"

# design.md, desired_appointments, in this order.
DESIRED_COLUMNS: tuple[str, ...] = (
    "booking_id",
    "status",
    "cancel_reason",
    "start_at",
    "end_at",
    "care_service",
    "clinic24_role",
    "visit_kind",
    "patient_id",
    "patient_id_kind",
    "patient_name",
    "unit_hsa_id",
    "resource_hsa_id",
    "resource_name",
    "booking_info",
    "contact_type",
    "visit_type",
    "patient_may_rebook",
    "patient_may_cancel",
    "content_hash",
)
HASHED_COLUMNS: tuple[str, ...] = tuple(c for c in DESIRED_COLUMNS if c != "content_hash")

_REASON_SCHEMA = {"booking_id": pl.String, "reason": pl.String, "rule": pl.String}
# Bumped whenever the canonical form changes, so old and new hashes can never collide.
_HASH_VERSION = "mvg-appointment-v1"
HASH_VERSION = _HASH_VERSION


@dataclass(frozen=True)
class ScopeResult:
    """Every booking of the snapshot lands in exactly one of the three frames.

    - `desired`: one row per booking Clinic24 should hold (design.md desired_appointments).
    - `held`: `booking_id`, `reason`, `rule`: in scope but blocked by a configuration error.
    - `out_of_scope`: `booking_id`, `reason`, `rule`: not represented in Clinic24 (now).
    `rehashed`: desired rows whose content hash was digested, not taken from `known_hashes`.
    """

    desired: pl.DataFrame
    held: pl.DataFrame
    out_of_scope: pl.DataFrame
    rehashed: int = 0


def visit_kind(care_service: pl.Expr) -> pl.Expr:
    """R04: `digital` when the second `|`-segment of the care service is `distans video`.

    Every other care service (including one with fewer than two segments or a null) is
    `physical`. Segments are compared after trimming spaces, case-sensitively as Cosmic
    names them.
    """
    second = care_service.str.split("|").list.get(1, null_on_oob=True).str.strip_chars()
    return pl.when(second == "distans video").then(pl.lit(DIGITAL)).otherwise(pl.lit(PHYSICAL))


def is_hidden_contact(care_service: pl.Expr) -> pl.Expr:
    """R03: the care service is `Dold kontakt` (trimmed, any case, also as first segment).

    Matching generously is the safe side: a hidden contact must never reach the portal.
    """
    first = care_service.str.split("|").list.first().str.strip_chars().str.to_lowercase()
    return (first == HIDDEN_CONTACT.lower()).fill_null(False)


def _canonical_field(name: str, dtype: pl.DataType) -> pl.Expr:
    col = pl.col(name)
    if isinstance(dtype, pl.Datetime):
        # Epoch microseconds name the instant whatever the column's time zone.
        text = col.dt.epoch("us").cast(pl.String)
    elif dtype == pl.Boolean:
        text = pl.when(col).then(pl.lit("1")).otherwise(pl.lit("0"))
    else:
        text = col.cast(pl.String)
    # A length prefix makes the concatenation unambiguous whatever the free text holds, and
    # `~` (never a digit) keeps null apart from the empty string.
    return (
        pl.when(col.is_null())
        .then(pl.lit("~"))
        .otherwise(pl.concat_str([text.str.len_bytes().cast(pl.String), pl.lit(":"), text]))
    )


def canonical_text(frame: pl.DataFrame, columns: Sequence[str] = HASHED_COLUMNS) -> pl.Series:
    """The text `content_hash` digests, one per row: `_HASH_VERSION` then each column,
    length-prefixed, date-times as epoch microseconds, booleans as 1/0, null as `~`."""
    return frame.select(
        pl.concat_str(
            [pl.lit(_HASH_VERSION)] + [_canonical_field(c, frame.schema[c]) for c in columns],
            separator=",",
        ).alias("canonical")
    ).to_series()


def content_hash(frame: pl.DataFrame, columns: Sequence[str] = HASHED_COLUMNS) -> pl.Series:
    """R10: a stable hash (sha256 hex) of `columns`, one per row, named `content_hash`.

    Polars' own `hash()` changes between releases and processes, and this value is stored
    in the state store (`clinic24_record.content_hash`, what Clinic24 accepted) to decide
    "unchanged" on later runs, so the canonical row text is built in Polars
    (`canonical_text`) and digested by DuckDB's `sha256`, vectorised (issue 12: the former
    per-row `hashlib` loop was 2.7 s of a 4.9 s plan at 400 k rows).

    Compatibility with an existing state: the values are identical to the former
    `hashlib.sha256(text.encode("utf-8")).hexdigest()` over the same canonical text (DuckDB
    digests the UTF-8 bytes and prints lowercase hex), so no stored hash is migrated and the
    first plan after an upgrade re-pushes nothing. A test pins this equality.
    """
    canonical = canonical_text(frame, columns)
    if canonical.len() == 0:
        return pl.Series("content_hash", [], dtype=pl.String)
    con = _digester()
    con.register("canonical_rows", pl.DataFrame([canonical]).to_arrow())
    try:
        # A plain projection keeps the input's row order (insertion order is preserved).
        digests = con.sql("SELECT sha256(canonical) AS content_hash FROM canonical_rows").pl()
    finally:
        con.unregister("canonical_rows")
    return digests.to_series().cast(pl.String).rename("content_hash")


_thread = threading.local()


def _digester() -> duckdb.DuckDBPyConnection:
    """This thread's in-memory DuckDB for `content_hash`, opened once: opening one costs
    25-50 ms, and a plan digests three times (issue 12). A connection is not shared between
    threads (DuckDB's rule); it holds no file and no data between calls."""
    con = getattr(_thread, "digester", None)
    if con is None:
        con = _thread.digester = duckdb.connect()
    return con


FINGERPRINT_COLUMNS = ("fingerprint_a", "fingerprint_b")
_FINGERPRINT_SEEDS = (20_261_126, 48_271)


def fingerprints(frame: pl.DataFrame) -> pl.DataFrame:
    """`booking_id` and a 128-bit fingerprint (two seeded Polars row hashes) of the other
    hashed columns: a cheap "did this desired row change" test, never stored as the content
    hash. Polars' row hash is fixed within a release, not across releases: keep fingerprints
    only next to the Polars version that made them (the plan's cache is named by it).
    """
    body = frame.select(HASHED_COLUMNS[1:])
    return frame.select("booking_id").with_columns(
        body.hash_rows(seed).alias(name) for name, seed in zip(FINGERPRINT_COLUMNS, _FINGERPRINT_SEEDS, strict=True)
    )


# What R07 compares with the row Clinic24 accepted, kept beside each hash in the plan's cache.
CACHED_ROW_COLUMNS = ("end_at", "resource_hsa_id")


def hash_cache_rows(desired: pl.DataFrame) -> pl.DataFrame:
    """What the plan keeps for the next one: `booking_id`, the fingerprints, `content_hash`,
    and the `CACHED_ROW_COLUMNS` of the row that hash was taken of (R07 reads them when
    Clinic24's record holds that same hash, instead of reading back the accepted payload)."""
    return fingerprints(desired).with_columns(desired.select("content_hash", *CACHED_ROW_COLUMNS))


def with_content_hash(frame: pl.DataFrame, known: pl.DataFrame | None = None) -> pl.DataFrame:
    """The desired columns of `frame`, in design order, with `content_hash` (re)computed.

    `known` (issue 12: hash only the rows whose content changed): `hash_cache_rows` of
    desired rows already hashed, e.g. by a previous plan. A row whose fingerprint equals its
    `known` row's takes that row's hash; only the others are digested. Two rows with equal
    fingerprints (two independent 64-bit row hashes) and different content would keep the
    old hash; short of that, the result is the same as without `known`.
    """
    return _hashed(frame, known)[0]


def _hashed(frame: pl.DataFrame, known: pl.DataFrame | None) -> tuple[pl.DataFrame, int]:
    """`with_content_hash` and how many rows were digested anew."""
    body = frame.select(HASHED_COLUMNS)
    if known is None or known.height == 0 or body.height == 0:
        return body.with_columns(content_hash(body)), body.height
    a, b = FINGERPRINT_COLUMNS
    reused = fingerprints(body).join(
        known.select("booking_id", pl.col(a).alias("_ka"), pl.col(b).alias("_kb"), "content_hash"),
        on="booking_id",
        how="left",
        maintain_order="left",
    )
    same = (pl.col(a) == pl.col("_ka")) & (pl.col(b) == pl.col("_kb"))
    hashes = reused.select(pl.when(same.fill_null(False)).then(pl.col("content_hash")).alias("content_hash"))
    stale = hashes.get_column("content_hash").is_null()
    count = int(stale.sum())
    if count:
        fresh = content_hash(body.filter(stale))
        hashes = hashes.with_columns(hashes.get_column("content_hash").scatter(stale.arg_true(), fresh))
    return body.with_columns(hashes.get_column("content_hash")), count


def _reason_frame(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(
        pl.col("booking_id"), pl.col("reason").cast(pl.String), pl.col("rule").cast(pl.String)
    )


def desired_appointments(
    bookings: pl.DataFrame,
    care_services: pl.DataFrame,
    clinic24_units: Collection[str],
    *,
    known_hashes: pl.DataFrame | None = None,
) -> ScopeResult:
    """R01-R06: split normalised bookings into desired Clinic24 rows, held and out of scope.

    The first matching rule decides, in this order:
    1. R01 unit not in Clinic24's `GET /Location` list -> out of scope `unit-not-in-clinic24`.
    2. R03 `Dold kontakt` -> out of scope `hidden-contact`, whatever the catalogue says.
    3. R02 care service missing from the catalogue -> out of scope
       `care-service-not-in-catalogue` (an unknown service is not web-bookable);
       `is_web_bookable` false or null -> `not-web-bookable`.
    4. R06 `planned` / `preliminary` -> out of scope `not-yet-booked` (pushed once booked).
    5. R06 `arrived` / `in_progress` / `done` -> out of scope `visit-under-way`: the visit is
       happening, nothing is created or updated for it. The planner treats these as live, so
       Clinic24's appointment is neither cancelled nor changed.
    6. Any other status -> out of scope `unknown-status` (the contract should stop it earlier).
    7. R05 web-bookable but no `clinic24_role` (null or blank) -> held `missing-role`;
       booked and cancelled bookings alike, since no payload may carry a guessed role.
    8. Otherwise desired: `booked` stays booked; `cancelled` becomes cancelled with Cosmic's
       reason, or `Avbokad i Cosmic` when Cosmic gave none (Clinic24 requires one). A
       cancelled booking Clinic24 never had is dropped later by the planner (no blind cancel).

    `visit_kind` follows R04; `patient_may_rebook` / `patient_may_cancel` come from the
    catalogue. `content_hash` covers every desired column (there is no `source_sequence`
    here; the sequence is added only to the payload); rows unchanged since `known_hashes`
    (the previous plan's `hash_cache_rows`) reuse its hash (`with_content_hash`).
    Raises ValueError when the catalogue lists a care service twice (its grain).
    """
    if care_services.get_column("care_service").is_duplicated().any():
        raise ValueError("care_services: a care_service appears more than once in the catalogue")
    catalogue = care_services.select(
        pl.col("care_service"),
        pl.col("is_web_bookable"),
        pl.col("clinic24_role").str.strip_chars().replace("", None).alias("clinic24_role"),
        pl.col("patient_may_rebook"),
        pl.col("patient_may_cancel"),
        pl.lit(True).alias("_in_catalogue"),
    )
    # Per care service, not per booking: a region has a few dozen services and hundreds of
    # thousands of bookings, and the text tests (R03, R04) are the costly part.
    services = (
        bookings.select(pl.col("care_service").unique())
        .with_columns(
            is_hidden_contact(pl.col("care_service")).alias("_hidden"),
            visit_kind(pl.col("care_service")).alias("visit_kind"),
        )
        .join(catalogue, on="care_service", how="left")
    )
    status = pl.col("status")
    verdicts = [
        (~pl.col("unit_hsa_id").is_in(list(clinic24_units)).fill_null(False), "R01", REASON_UNIT_NOT_IN_CLINIC24),
        (pl.col("_hidden"), "R03", REASON_HIDDEN_CONTACT),
        (pl.col("_in_catalogue").is_null(), "R02", REASON_NOT_IN_CATALOGUE),
        (~pl.col("is_web_bookable").fill_null(False), "R02", REASON_NOT_WEB_BOOKABLE),
        (status.is_in(NOT_YET_BOOKED_STATUSES), "R06", REASON_NOT_YET_BOOKED),
        (status.is_in(UNDER_WAY_STATUSES), "R06", REASON_VISIT_UNDER_WAY),
        (~status.is_in(PUSHED_STATUSES).fill_null(False), "R06", REASON_UNKNOWN_STATUS),
        (pl.col("clinic24_role").is_null(), "R05", REASON_MISSING_ROLE),
    ]
    # The first matching rule decides: its position, mapped to rule and reason only for the
    # rows that have one (string work on every booking cost more than the whole test).
    chain = pl.when(verdicts[0][0]).then(pl.lit(0, pl.Int8))
    for n, (condition, _, _) in enumerate(verdicts[1:], start=1):
        chain = chain.when(condition).then(pl.lit(n, pl.Int8))
    frame = bookings.join(services, on="care_service", how="left").with_columns(
        chain.otherwise(None).alias("_verdict")
    )
    names = pl.DataFrame(
        {
            "_verdict": list(range(len(verdicts))),
            "rule": [rule for _, rule, _ in verdicts],
            "reason": [reason for _, _, reason in verdicts],
        },
        schema={"_verdict": pl.Int8, "rule": pl.String, "reason": pl.String},
    )
    excluded = frame.filter(pl.col("_verdict").is_not_null()).select("booking_id", "_verdict").join(
        names, on="_verdict", how="left", maintain_order="left"
    )
    out_of_scope = _reason_frame(excluded.filter(pl.col("rule") != "R05"))
    held = _reason_frame(excluded.filter(pl.col("rule") == "R05"))
    cancelled = status == "cancelled"
    desired, rehashed = _hashed(
        frame.filter(pl.col("_verdict").is_null()).with_columns(
            pl.when(cancelled)
            .then(
                pl.coalesce(
                    pl.col("cancel_reason").str.strip_chars().replace("", None),
                    pl.lit(DEFAULT_CANCEL_REASON),
                )
            )
            .otherwise(pl.lit(None, dtype=pl.String))
            .alias("cancel_reason"),
        ),
        known_hashes,
    )
    return ScopeResult(desired=desired, held=held, out_of_scope=out_of_scope, rehashed=rehashed)
