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
    # one integer per id, printed once; the typed forms are slices of it, built per form so
    # that no row pays for the forms it does not use
    twelve = (
        (year // 100).astype(np.int64) * 10**10 + yy * 10**8 + month * 10**6 + dd * 10**4
        + serial * 10 + check
    )
    patient_id = pl.Series("patient_id", twelve).cast(pl.String)
    parts = []
    for code in (FORM_12, FORM_12_DASH, FORM_10_SEP, FORM_10, FORM_SPACED):
        rows = np.flatnonzero(form == code)
        p = patient_id.gather(rows)
        sep = pl.Series(np.where(is_centenarian[rows], "+", "-"))
        if code == FORM_12:
            typed = p
        elif code == FORM_12_DASH:
            typed = p.str.slice(0, 8) + "-" + p.str.slice(8, 4)
        elif code == FORM_10_SEP:
            typed = p.str.slice(2, 6) + sep + p.str.slice(8, 4)
        elif code == FORM_10:
            typed = p.str.slice(2, 10)
        else:
            typed = p.str.slice(0, 2) + " " + p.str.slice(2, 6) + "-" + p.str.slice(8, 4)
        parts.append(pl.DataFrame({"row": rows, "Personnummer": typed}))
    typed_all = pl.concat(parts).sort("row")["Personnummer"]
    return pl.DataFrame([typed_all, patient_id])
