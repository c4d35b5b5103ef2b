"""Vectorised generation of Luhn-valid personnummer / samordningsnummer in the forms Cosmic shows (R13)."""

from __future__ import annotations

import numpy as np
import polars as pl

# How an id may be typed in Cosmic (R13); index = form code
FORM_12 = 0  # 195811243269
FORM_12_DASH = 1  # 19581124-3269
FORM_10_SEP = 2  # 581124-3269, or 581124+3269 at 100 years or older
FORM_10 = 3  # 5811243269 (only below 100 years: nothing marks the century)
FORM_SPACED = 4  # 19 581124-3269
FORM_WEIGHTS = np.array([0.35, 0.20, 0.25, 0.10, 0.10])


def luhn_check_digit(digits: np.ndarray) -> np.ndarray:
    """Check digit for each row of a (n, 9) array of digits (R13: the last digit is a Luhn digit)."""
    weights = np.array([2, 1, 2, 1, 2, 1, 2, 1, 2], dtype=np.int64)
    products = digits.astype(np.int64) * weights
    total = (products // 10 + products % 10).sum(axis=1)
    return (10 - total % 10) % 10


def luhn_valid(ten_digits: str) -> bool:
    """True when a 10-digit string (YYMMDDNNNC) carries a correct Luhn check digit."""
    if len(ten_digits) != 10 or not ten_digits.isdigit():
        return False
    head = np.array([[int(c) for c in ten_digits[:9]]])
    return int(luhn_check_digit(head)[0]) == int(ten_digits[9])


def make_ids(
    year: np.ndarray, month: np.ndarray, day: np.ndarray, serial: np.ndarray,
    is_coordination: np.ndarray, form: np.ndarray, is_centenarian: np.ndarray,
) -> pl.DataFrame:
    """Typed and normalised ids: columns `Personnummer` (as typed) and `patient_id` (12 digits).

    Samordningsnummer carry day + 60. A centenarian in a 10-digit form always gets `+`.
    """
    dd = day + np.where(is_coordination, 60, 0)
    yy = year % 100
    digits = np.stack(
        [yy // 10, yy % 10, month // 10, month % 10, dd // 10, dd % 10,
         serial // 100, (serial // 10) % 10, serial % 10],
        axis=1,
    )
    check = luhn_check_digit(digits)
    form = np.where(is_centenarian & (form == FORM_10), FORM_10_SEP, form)
    frame = pl.DataFrame(
        {
            "cc": year // 100, "yy": yy, "mm": month, "dd": dd, "nnn": serial, "c": check,
            "form": form.astype(np.int8), "old": is_centenarian,
        }
    )

    def z(name: str, width: int) -> pl.Expr:
        return pl.col(name).cast(pl.String).str.zfill(width)

    yymmdd = pl.concat_str([z("yy", 2), z("mm", 2), z("dd", 2)])
    tail = pl.concat_str([z("nnn", 3), z("c", 1)])
    century = z("cc", 2)
    sep10 = pl.when(pl.col("old")).then(pl.lit("+")).otherwise(pl.lit("-"))
    typed = (
        pl.when(pl.col("form") == FORM_12).then(pl.concat_str([century, yymmdd, tail]))
        .when(pl.col("form") == FORM_12_DASH).then(pl.concat_str([century, yymmdd, pl.lit("-"), tail]))
        .when(pl.col("form") == FORM_10_SEP).then(pl.concat_str([yymmdd, sep10, tail]))
        .when(pl.col("form") == FORM_10).then(pl.concat_str([yymmdd, tail]))
        .otherwise(pl.concat_str([century, pl.lit(" "), yymmdd, pl.lit("-"), tail]))
    )
    return frame.select(
        typed.alias("Personnummer"),
        pl.concat_str([century, yymmdd, tail]).alias("patient_id"),
    )
