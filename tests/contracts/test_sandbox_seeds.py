"""Sandbox seed files and its scalar R13 normaliser, which must agree with the integration's."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mvg_sync.clinic24.sandbox.examples import with_check_digit
from mvg_sync.clinic24.sandbox.seeds import load_guardians, load_units
from mvg_sync.clinic24.sandbox.validation import normalise_patient_id
from mvg_sync.rules.patient_id import normalise_one

REFERENCE = date(2026, 11, 26)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("19 581124-3269", "195811243269"),
        ("195811243269", "195811243269"),
        ("581124-3269", "195811243269"),
        ("581124+3269", "185811243269"),
        ("5811243269", "195811243269"),
        ("581124-3268", None),  # Luhn
        ("581324-3265", None),  # month 13
        ("1958-11-24-3269", None),  # not an R13 shape
        ("٥٨١١٢٤-٣٢٦٩", None),  # non-ASCII digits
    ],
)
def test_r13_sandbox_normaliser_forms(raw: str, expected: str | None) -> None:
    assert normalise_patient_id(raw, REFERENCE) == expected


@settings(max_examples=300, deadline=None)
@given(
    century=st.sampled_from(["", "18", "19", "20", "21"]),
    yymmdd=st.integers(0, 999999).map(lambda n: f"{n:06d}"),
    serial=st.integers(0, 999).map(lambda n: f"{n:03d}"),
    separator=st.sampled_from(["", "-", "+", " - ", " "]),
    fix_luhn=st.booleans(),
)
def test_r13_sandbox_normaliser_agrees_with_the_rules_module(
    century: str, yymmdd: str, serial: str, separator: str, fix_luhn: bool
) -> None:
    eleven = f"{century or '19'}{yymmdd}{serial}"
    full = with_check_digit(eleven) if fix_luhn else f"{eleven}0"
    raw = f"{century}{yymmdd}{separator}{full[-4:]}"
    expected, _, _ = normalise_one(raw, REFERENCE)
    assert normalise_patient_id(raw, REFERENCE) == expected


def test_units_file_windows_1252_with_names(tmp_path: Path) -> None:
    path = tmp_path / "enheter.csv"
    path.write_bytes("EnhetHSAID;Enhet\nSE1-A;Hälsocentral Åby\nSE1-B;\n".encode("windows-1252"))
    assert load_units(path) == {"SE1-A": "Hälsocentral Åby", "SE1-B": "SE1-B"}


def test_units_file_without_the_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "enheter.csv"
    path.write_text("Id;Enhet\nSE1-A;x\n")
    with pytest.raises(ValueError, match="EnhetHSAID"):
        load_units(path)


def test_r13_guardians_file_any_form_and_invalid_rows_by_number(tmp_path: Path) -> None:
    path = tmp_path / "guardians.csv"
    path.write_text("Namn;Personnummer\nA;20190305-1231\nB;not a number\nC;1903051231\n")
    ids, invalid = load_guardians(path, REFERENCE)
    assert ids == {"201903051231"}
    assert invalid == [2]
