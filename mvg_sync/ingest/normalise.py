"""Raw Cosmic strings -> the normalised datasets of design.md, with one quarantine row per bad value."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import polars as pl

from mvg_sync.cosmic_columns import BOOLEAN_VALUES, Column, FileLayout, output_columns
from mvg_sync.ingest.manifest import DropRejected
from mvg_sync.ingest.normalisers import (
    normalise_patient_id,
    parse_local_date,
    parse_local_datetime,
    validate_hsa_id,
)
from mvg_sync.timeutil import STOCKHOLM

QUARANTINE_SCHEMA = {
    "source_row": pl.Int64,
    "record_key": pl.String,
    "column_name": pl.String,
    "rule": pl.String,
    "reason": pl.String,
}
_ERR = "__err__"
STOCKHOLM_NAME = str(STOCKHOLM)
_TMP = "__tmp__"


@dataclass
class Normalised:
    """One file after normalisation: the good rows, the quarantined values, the warnings."""

    frame: pl.DataFrame
    quarantine: pl.DataFrame
    rows_in: int
    warnings: list[str] = field(default_factory=list)

    @property
    def rows_quarantined(self) -> int:
        return self.rows_in - self.frame.height


def check_columns(raw_columns: list[str], layout: FileLayout) -> list[str]:
    """File-level column contract: missing required -> DropRejected; unknown extra -> warning."""
    present = set(raw_columns)
    missing = [h for h in layout.required_headers if h not in present]
    if missing:
        raise DropRejected(f"{layout.file}: missing required column {', '.join(missing)}", file=layout.file)
    known = set(layout.headers)
    return [f"{layout.file}: unknown column {h} ignored" for h in raw_columns if h not in known]


# A NUL byte is valid CSV but no text: it would reach Clinic24 verbatim (issue 14).
NUL_REASON = "holds a NUL byte (\\x00), which no text value may hold"


def _error_for(column: Column, raw: pl.Expr, parsed_error: pl.Expr | None, *, may_hold_nul: bool) -> pl.Expr:
    """Why this column's value is unusable (null = fine). Never includes the value."""
    expr = pl.when(raw.is_null() & pl.lit(column.required)).then(pl.lit("required value missing"))
    # the typed kinds already refuse a NUL as an invalid value
    if column.kind == "text" and may_hold_nul:
        expr = expr.when(raw.str.contains("\x00", literal=True)).then(pl.lit(NUL_REASON))
    if parsed_error is not None:
        # a normaliser may report "empty" for null input; absence is judged by `required` alone
        expr = expr.when(raw.is_not_null() & parsed_error.is_not_null()).then(
            pl.lit(_prefix(column)) + parsed_error
        )
    return expr.otherwise(None)


def _prefix(column: Column) -> str:
    return {
        "patient_id": "invalid personnummer: ",
        "hsa_id": "invalid HSA-id: ",
        "datetime": "invalid date-time: ",
        "date": "invalid date: ",
    }.get(column.kind, "")


def _rule_for(column: Column) -> str:
    return "R13" if column.kind == "patient_id" else "contract"


def normalise(
    raw: pl.DataFrame, layout: FileLayout, reference_date: date, *, window: tuple[date, date] | None = None
) -> Normalised:
    """Normalise one file; raises DropRejected for file-level contract failures.

    Row-level failures never raise: the row leaves the snapshot and every failing value
    gets a quarantine row (`source_row`, Cosmic column name, rule, reason).
    """
    warnings = check_columns(raw.columns, layout)
    _check_grain(raw, layout)
    result = normalise_rows(raw, layout, reference_date, window=window)
    result.warnings = warnings
    return result


def normalise_rows(
    raw: pl.DataFrame,
    layout: FileLayout,
    reference_date: date,
    *,
    row_offset: int = 0,
    window: tuple[date, date] | None = None,
    may_hold_nul: bool = True,
) -> Normalised:
    """The row-level part of `normalise` for one batch of a file whose rows start after `row_offset`.

    File-level checks (columns, grain) are the caller's: a batch cannot see the whole file.
    Every rule here looks at one row only, so batches give the same rows as the whole file.
    `window` is the manifest's (from, to): a row of a windowed file whose start's local date
    lies outside it is quarantined (rule `window`). `may_hold_nul=False` says the file's bytes
    hold no NUL (`reader.FileScan.has_nul`), so no value can, and the NUL check is skipped.
    """
    rows_in = raw.height
    missing_optional = [c.header for c in layout.columns if c.header not in raw.columns]
    if missing_optional:
        raw = raw.with_columns(pl.lit(None, pl.String).alias(h) for h in missing_optional)

    # pass 1: typed values (struct-returning normalisers materialised once)
    # The row's own id (e.g. BokningsID) travels with its quarantine rows: planning must know
    # that a quarantined booking still exists in Cosmic, or it would read it as vanished (R08).
    keys = key_headers(layout)
    first: list[pl.Expr] = [
        pl.int_range(row_offset + 1, row_offset + pl.len() + 1, dtype=pl.Int64).alias("source_row"),
        pl.concat_str([pl.col(h).str.strip_chars() for h in keys], separator="|").alias("record_key"),
    ]
    for c in layout.columns:
        src = pl.col(c.header)
        if c.kind == "patient_id":
            first.append(normalise_patient_id(src, reference_date).alias(_TMP + c.name))
        elif c.kind == "hsa_id":
            first.append(validate_hsa_id(src).alias(_TMP + c.name))
        elif c.kind == "datetime":
            first.append(parse_local_datetime(src).alias(_TMP + c.name))
        elif c.kind == "date":
            first.append(parse_local_date(src).alias(_TMP + c.name))
        elif c.kind == "enum":
            assert c.values is not None
            first.append(src.replace_strict(c.values, default=None, return_dtype=pl.String).alias(c.name))
        elif c.kind == "bool":
            first.append(src.replace_strict(BOOLEAN_VALUES, default=None, return_dtype=pl.Boolean).alias(c.name))
        else:
            first.append(src.alias(c.name))
        first.append(src.alias(_ERR + "raw__" + c.header))
    staged = raw.select(first)

    # pass 2: unpack structs, compute per-column error text
    second: list[pl.Expr] = []
    errors: list[tuple[str, str, str]] = []  # (error column, Cosmic header, rule)
    for c in layout.columns:
        raw_expr = pl.col(_ERR + "raw__" + c.header)
        tmp = pl.col(_TMP + c.name)
        parsed_error: pl.Expr | None = None
        if c.kind == "patient_id":
            second += [tmp.struct.field("patient_id").alias(c.name), tmp.struct.field("patient_id_kind")]
            parsed_error = tmp.struct.field("error")
        elif c.kind == "hsa_id":
            second.append(tmp.struct.field("hsa_id").alias(c.name))
            parsed_error = tmp.struct.field("error")
        elif c.kind in ("datetime", "date"):
            second.append(tmp.struct.field("value").alias(c.name))
            parsed_error = tmp.struct.field("error")
        elif c.kind in ("enum", "bool"):
            parsed_error = pl.when(raw_expr.is_not_null() & pl.col(c.name).is_null()).then(
                pl.lit(f"not one of the values allowed in {c.header}")
            )
        err_name = _ERR + c.name
        second.append(_error_for(c, raw_expr, parsed_error, may_hold_nul=may_hold_nul).alias(err_name))
        errors.append((err_name, c.header, _rule_for(c)))
    staged = staged.with_columns(second)

    # pass 3: rules across columns
    third: list[pl.Expr] = []
    header_of = {c.name: c.header for c in layout.columns}
    if layout.dataset == "bookings":
        # R-contract: only a planned booking may lack its times
        for col in ("start_at", "end_at"):
            name = f"{_ERR}required_{col}"
            third.append(
                pl.when(pl.col(f"{_ERR}raw__{header_of[col]}").is_null() & (pl.col("status") != "planned"))
                .then(pl.lit("required unless Status is Planerad"))
                .alias(name)
            )
            errors.append((name, header_of[col], "contract"))
    for start, end in layout.ordered:
        name = f"{_ERR}order_{end}"
        third.append(
            pl.when(pl.col(end) <= pl.col(start)).then(pl.lit(f"end is not after {header_of[start]}")).alias(name)
        )
        errors.append((name, header_of[end], "contract"))
    if window is not None and layout.windowed is not None:
        # The window is the extract's promise of what it covers; R08 reads a booking missing
        # from it as cancelled or as history, so a row outside it cannot be trusted either way.
        first_day, last_day = window
        name = f"{_ERR}window"
        local_day = pl.col(layout.windowed).dt.convert_time_zone(STOCKHOLM_NAME).dt.date()
        third.append(
            pl.when(~local_day.is_between(pl.lit(first_day), pl.lit(last_day)))
            .then(pl.lit(f"start outside the manifest's window {first_day}..{last_day}"))
            .alias(name)
        )
        errors.append((name, header_of[layout.windowed], "window"))
    if third:
        staged = staged.with_columns(third)

    err_cols = [e[0] for e in errors]
    bad = pl.any_horizontal(pl.col(err_cols).is_not_null())
    quarantine = _quarantine_rows(staged.filter(bad).select("source_row", "record_key", *err_cols), errors)
    good = staged.filter(~bad).select(output_columns(layout))
    return Normalised(frame=good, quarantine=quarantine, rows_in=rows_in)


def _quarantine_rows(bad_rows: pl.DataFrame, errors: list[tuple[str, str, str]]) -> pl.DataFrame:
    if bad_rows.height == 0:
        return pl.DataFrame(schema=QUARANTINE_SCHEMA)
    headers = {e[0]: e[1] for e in errors}
    rules = {e[0]: e[2] for e in errors}
    return (
        bad_rows.unpivot(index=["source_row", "record_key"], variable_name="err", value_name="reason")
        .filter(pl.col("reason").is_not_null())
        .select(
            "source_row",
            "record_key",
            pl.col("err").replace_strict(headers, return_dtype=pl.String).alias("column_name"),
            pl.col("err").replace_strict(rules, return_dtype=pl.String).alias("rule"),
            pl.col("reason").cast(pl.String),
        )
        .sort("source_row", "column_name")
    )


def key_headers(layout: FileLayout) -> list[str]:
    """Cosmic headers of the file's grain (e.g. `BokningsID`, or `TidID` + `Vårdtjänst`)."""
    return [c.header for c in layout.columns if c.name in layout.key]


def _check_grain(raw: pl.DataFrame, layout: FileLayout) -> None:
    check_grain(raw.select(key_headers(layout)), layout)


def check_grain(keys: pl.DataFrame, layout: FileLayout) -> None:
    """Duplicate ids violate the file's grain: the file cannot be trusted (rejects the drop).

    `keys` holds the key columns of every row of the file, as read.
    """
    frame = keys.drop_nulls()
    if frame.height == 0:
        return
    distinct = frame.n_unique()
    if distinct != frame.height:
        dup_rows = frame.height - distinct
        raise DropRejected(
            f"{layout.file}: duplicate {' + '.join(keys.columns)} ({dup_rows} rows repeat an id; grain violated)",
            file=layout.file,
        )
