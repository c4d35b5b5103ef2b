"""Personnummer and samordningsnummer (R13): vectorised normalisation, birth date, age, masking."""

from __future__ import annotations

import datetime as dt
import re

import polars as pl

PERSONNUMMER = "personnummer"
SAMORDNINGSNUMMER = "samordningsnummer"

ERROR_EMPTY = "R13: empty"
ERROR_FORMAT = "R13: bad format"
ERROR_DATE = "R13: invalid date"
ERROR_FUTURE = "R13: future birth date"
ERROR_CHECK_DIGIT = "R13: bad check digit"

# Shape of everything R13 accepts: optional century, YYMMDD, optional separator (`-`, `+`,
# spaces), NNNC. Masking uses the same body so that whatever ingest accepts is also masked.
_BODY = r"(?:[0-9]{2} *)?[0-9]{6} *[-+]? *[0-9]{4}"
_SHAPE = rf"^{_BODY}$"
# The Rust regex engine has no look-around, so a digit boundary is matched as a captured
# neighbour and put back; `_mask_expr` runs it twice for numbers separated by one character.
_MASK_RUST = rf"(^|[^0-9]){_BODY}([^0-9]|$)"
_MASK_PY = re.compile(rf"(?<![0-9]){_BODY}(?![0-9])")
MASK = "XXXXXXXX-XXXX"

_E8 = 10**8
_E10 = 10**10


def _luhn_terms(chunk: int, width: int) -> int:
    """Luhn contribution of a digit chunk that starts on a doubled (even, 0-based) position."""
    total = 0
    for position, char in enumerate(f"{chunk:0{width}d}"):
        digit = int(char) * (2 if position % 2 == 0 else 1)
        total += digit - 9 if digit > 9 else digit
    return total


# Lookup tables: three gathers instead of ~40 arithmetic passes over the column
# (measured 0.03 s instead of 0.12 s per million rows).
_LUHN_4 = pl.Series("luhn4", [_luhn_terms(i, 4) for i in range(10_000)], dtype=pl.Int16)
_LUHN_2 = pl.Series("luhn2", [_luhn_terms(i, 2) for i in range(100)], dtype=pl.Int16)
# Days per month indexed by any two-digit month; 0 marks months that do not exist.
_DAYS_IN_MONTH = pl.Series(
    "dim", [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] + [0] * 87, dtype=pl.Int64
)


def _is_leap(year: pl.Expr) -> pl.Expr:
    return ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)


def _is_real_date(year: pl.Expr, month: pl.Expr, day: pl.Expr) -> pl.Expr:
    """True when (year, month, day) is a calendar date; arithmetic, because `pl.date` raises.

    `month` must lie in 0..99 (two digits of an id). False, never null, for null input.
    """
    leap_day = ((month == 2) & _is_leap(year)).cast(pl.Int64)
    days_in_month = pl.lit(_DAYS_IN_MONTH).gather(month) + leap_day
    return ((day >= 1) & (day <= days_in_month)).fill_null(False)


def _luhn_ok(ten_digits: pl.Expr) -> pl.Expr:
    """Luhn over YYMMDDNNNC given as an integer: weights 2,1,2,1,… from the left."""
    total = (
        pl.lit(_LUHN_4).gather(ten_digits // 10**6)
        + pl.lit(_LUHN_4).gather((ten_digits // 100) % 10_000)
        + pl.lit(_LUHN_2).gather(ten_digits % 100)
    )
    return (total % 10 == 0).fill_null(False)


def normalise_patient_id(raw: pl.Expr, reference_date: dt.date) -> pl.Expr:
    """R13: normalise a personnummer / samordningsnummer column to `ÅÅÅÅMMDDNNNN`.

    Returns a struct `{patient_id, patient_id_kind, error}`: either the first two are set and
    `error` is null, or both are null and `error` names the first failing check, in the order
    empty, format, calendar date, future birth date, Luhn check digit. Reasons never carry the
    value itself (they go to the quarantine and logs).

    Century of the 10-digit form: the one that makes the person 0-99 years old on
    `reference_date`; a `+` separator moves it one century back (100-199 years). In the
    12-digit form the century is explicit and the separator carries no meaning.
    """
    # Staged through struct fields: a plain expression tree would repeat (and re-run) the
    # regex and arithmetic every time an intermediate is referenced.
    f = pl.field
    ref_year = reference_date.year
    ref_mmdd = reference_date.month * 100 + reference_date.day
    ref_ymd = ref_year * 10_000 + ref_mmdd
    staged = (
        pl.struct(text=raw.cast(pl.String).str.strip_chars())
        .struct.with_fields(
            is_empty=f("text").is_null() | (f("text").str.len_bytes() == 0),
            has_shape=f("text").str.contains(_SHAPE),
            has_plus=f("text").str.contains("+", literal=True),
            # Only a value of the shape is read further, and its only non-digits are `-`, `+`
            # and spaces: literal removals, several times cheaper than a regex (issue 12).
            digits=f("text")
            .str.replace_all("-", "", literal=True)
            .str.replace_all("+", "", literal=True)
            .str.replace_all(" ", "", literal=True),
        )
        .struct.with_fields(
            is_twelve=f("digits").str.len_bytes() == 12,
            number=f("digits").cast(pl.Int64, strict=False),
        )
        .struct.with_fields(
            ten=f("number") % _E10,
            century=f("number") // _E10,
        )
        .struct.with_fields(
            yy=f("ten") // _E8,
            month=(f("ten") // 10**6) % 100,
            raw_day=(f("ten") // 10**4) % 100,
        )
        .struct.with_fields(
            is_coordination=f("raw_day").is_between(61, 91),
            day=pl.when(f("raw_day") > 60).then(f("raw_day") - 60).otherwise(f("raw_day")),
            # Latest year ending in `yy` that is not after the reference year.
            latest=ref_year - ((ref_year - f("yy")) % 100),
        )
        .struct.with_fields(
            # A century back when that birthday still lies ahead in the reference year, and
            # one more for `+`.
            year=pl.when(f("is_twelve"))
            .then(f("century") * 100 + f("yy"))
            .otherwise(
                f("latest")
                - pl.when((f("latest") == ref_year) & (f("month") * 100 + f("day") > ref_mmdd))
                .then(100)
                .otherwise(0)
                - pl.when(f("has_plus")).then(100).otherwise(0)
            ),
        )
        .struct.with_fields(
            error=pl.when(f("is_empty"))
            .then(pl.lit(ERROR_EMPTY))
            .when(~f("has_shape") | f("year").is_null())
            .then(pl.lit(ERROR_FORMAT))
            .when(~_is_real_date(f("year"), f("month"), f("day")))
            .then(pl.lit(ERROR_DATE))
            .when(f("year") * 10_000 + f("month") * 100 + f("day") > ref_ymd)
            .then(pl.lit(ERROR_FUTURE))
            .when(~_luhn_ok(f("ten")))
            .then(pl.lit(ERROR_CHECK_DIGIT))
            .otherwise(pl.lit(None, dtype=pl.String)),
        )
    )
    is_valid = f("error").is_null()
    # The 12-digit input already is the normalised form; building it from integers would need
    # a zero-padding pass for the (odd) years below 1000.
    twelve = (
        pl.when(f("is_twelve"))
        .then(f("digits"))
        .otherwise((f("year") * _E8 + f("ten") % _E8).cast(pl.String))
    )
    kind = (
        pl.when(f("is_coordination"))
        .then(pl.lit(SAMORDNINGSNUMMER))
        .otherwise(pl.lit(PERSONNUMMER))
    )
    # Computed with `with_fields` and only then selected: in polars 2.1.0 arithmetic on
    # several fields directly inside `struct.eval` fails to resolve the fields.
    return staged.struct.with_fields(
        patient_id=pl.when(is_valid).then(twelve).otherwise(None),
        patient_id_kind=pl.when(is_valid).then(kind).otherwise(None),
    ).struct.eval(f("patient_id"), f("patient_id_kind"), f("error"))


def _birth_parts(patient_id: pl.Expr, **extra: pl.Expr) -> pl.Expr:
    """Struct of year, month, day (samordningsnummer day made real) and is_real of an id."""
    f = pl.field
    return (
        pl.struct(text=patient_id.cast(pl.String), **extra)
        .struct.with_fields(
            # Only the normalised 12-digit form: a 10-digit one would read as year 00YY.
            number=pl.when(f("text").str.len_bytes() == 12).then(
                f("text").cast(pl.Int64, strict=False)
            )
        )
        .struct.with_fields(
            year=f("number") // _E8,
            month=(f("number") // 10**6) % 100,
            raw_day=(f("number") // 10**4) % 100,
        )
        .struct.with_fields(
            day=pl.when(f("raw_day") > 60).then(f("raw_day") - 60).otherwise(f("raw_day"))
        )
        .struct.with_fields(is_real=_is_real_date(f("year"), f("month"), f("day")))
    )


def birth_date(patient_id: pl.Expr) -> pl.Expr:
    """R13: birth date (pl.Date) of a normalised 12-digit id; samordningsnummer day - 60.

    Null for null or a value that is not a normalised id (never raises on bad data).
    """
    f = pl.field
    # `pl.date` raises on an impossible date, so invalid rows get a harmless placeholder.
    return (
        _birth_parts(patient_id)
        .struct.with_fields(
            birth_date=pl.when(f("is_real"))
            .then(
                pl.date(
                    pl.when(f("is_real")).then(f("year")).otherwise(1970),
                    pl.when(f("is_real")).then(f("month")).otherwise(1),
                    pl.when(f("is_real")).then(f("day")).otherwise(1),
                )
            )
            .otherwise(None)
        )
        .struct.field("birth_date")
    )


def age_on(patient_id: pl.Expr, on: pl.Expr) -> pl.Expr:
    """R12/R13: age in whole years (Int64) on the date `on` (pass a local pl.Date).

    Someone born on 29 February has their birthday on 28 February in non-leap years, as
    Swedish law counts years (lag 1930:173). Null when either side is null or invalid.
    """
    f = pl.field
    return (
        _birth_parts(patient_id, on=on)
        .struct.with_fields(
            on_year=f("on").dt.year().cast(pl.Int64),
            on_mmdd=f("on").dt.month().cast(pl.Int64) * 100 + f("on").dt.day().cast(pl.Int64),
        )
        .struct.with_fields(
            birthday=f("month") * 100
            + pl.when((f("month") == 2) & (f("day") == 29) & ~_is_leap(f("on_year")))
            .then(28)
            .otherwise(f("day"))
        )
        .struct.with_fields(
            age=pl.when(f("is_real"))
            .then(
                f("on_year")
                - f("year")
                - pl.when(f("on_mmdd") < f("birthday")).then(1).otherwise(0)
            )
            .otherwise(None)
        )
        .struct.field("age")
    )


def normalise_one(
    raw: str | None, reference_date: dt.date
) -> tuple[str | None, str | None, str | None]:
    """R13 for one value: `(patient_id, patient_id_kind, error)`, via the same expression."""
    frame = pl.DataFrame({"raw": [raw]}, schema={"raw": pl.String})
    row = frame.select(normalise_patient_id(pl.col("raw"), reference_date).alias("r")).unnest("r")
    patient_id, kind, error = row.row(0)
    return patient_id, kind, error


def _mask_expr(text: pl.Expr) -> pl.Expr:
    once = text.str.replace_all(_MASK_RUST, f"${{1}}{MASK}${{2}}")
    return once.str.replace_all(_MASK_RUST, f"${{1}}{MASK}${{2}}")


def mask_patient_ids(text: pl.Expr | str) -> pl.Expr | str:
    """R13: replace anything shaped like a personnummer/samordningsnummer with `XXXXXXXX-XXXX`.

    Shape only (10 or 12 digits with the separators R13 accepts, not part of a longer digit
    run), no date or Luhn check: masking too much is the safe side for reports and logs.
    A str gives a str (for log filters, no frame built), an expression gives an expression.
    """
    if isinstance(text, str):
        return _MASK_PY.sub(MASK, text)
    return _mask_expr(text)
