"""R13 personnummer / samordningsnummer normalisation, birth date, R12 age, masking."""

import datetime as dt

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from mvg_sync.rules.patient_id import (
    ERROR_CHECK_DIGIT,
    ERROR_DATE,
    ERROR_EMPTY,
    ERROR_FORMAT,
    ERROR_FUTURE,
    MASK,
    age_on,
    birth_date,
    mask_patient_ids,
    normalise_one,
    normalise_patient_id,
)

REF = dt.date(2026, 11, 26)


def _luhn_digit(nine: str) -> str:
    total = 0
    for position, char in enumerate(nine):
        digit = int(char) * (2 if position % 2 == 0 else 1)
        total += digit - 9 if digit > 9 else digit
    return str((10 - total % 10) % 10)


def _normalise(values: list[str | None], reference_date: dt.date = REF) -> pl.DataFrame:
    frame = pl.DataFrame({"raw": values}, schema={"raw": pl.String})
    return frame.select(normalise_patient_id(pl.col("raw"), reference_date).alias("r")).unnest("r")


@pytest.mark.parametrize(
    "raw",
    [
        "19 581124-3269",
        "195811243269",
        "581124-3269",
        "5811243269",
        "19581124-3269",
        "  581124 3269 ",
        "581124 - 3269",
        "19 5811243269",
    ],
)
def test_r13_every_accepted_form_normalises_to_twelve_digits(raw):
    assert normalise_one(raw, REF) == ("195811243269", "personnummer", None)


def test_r13_expression_returns_struct_with_three_fields():
    expected = pl.DataFrame(
        {
            "patient_id": ["195811243269", None],
            "patient_id_kind": ["personnummer", None],
            "error": [None, ERROR_CHECK_DIGIT],
        },
        schema={"patient_id": pl.String, "patient_id_kind": pl.String, "error": pl.String},
    )
    assert_frame_equal(_normalise(["581124-3269", "581124-3268"]), expected)


@pytest.mark.parametrize("raw", ["19811218-9876", "811218-9876", "19121212-1212"])
def test_r13_luhn_known_good_examples(raw):
    patient_id, kind, error = normalise_one(raw, REF)
    assert error is None
    assert kind == "personnummer"
    assert (
        patient_id
        == {
            "19811218-9876": "198112189876",
            "811218-9876": "198112189876",
            "19121212-1212": "191212121212",
        }[raw]
    )


@pytest.mark.parametrize("raw", ["19811218-9875", "811218-9877", "19121212-1213", "5811243260"])
def test_r13_bad_check_digit(raw):
    assert normalise_one(raw, REF) == (None, None, ERROR_CHECK_DIGIT)


def test_r13_plus_means_hundred_or_older():
    assert normalise_one("121212+1212", REF) == ("191212121212", "personnummer", None)
    assert normalise_one("121212-1212", REF) == ("201212121212", "personnummer", None)


def test_r13_ten_digit_century_keeps_age_at_most_99():
    # Born 1926-12-01 would be 99 on REF; 2026-12-01 would be in the future.
    nine = "261201123"
    raw = nine + _luhn_digit(nine)
    assert normalise_one(raw, REF)[0] == "1926" + raw[2:]
    # Birthday on the reference date itself: a newborn, this century.
    nine = "261126123"
    raw = nine + _luhn_digit(nine)
    assert normalise_one(raw, REF)[0] == "2026" + raw[2:]
    # With `+` the same digits mean 100 years more.
    assert normalise_one(raw[:6] + "+" + raw[6:], REF)[0] == "1926" + raw[2:]


def test_r13_twelve_digit_century_is_explicit_whatever_the_separator():
    assert normalise_one("19121212+1212", REF) == ("191212121212", "personnummer", None)


def test_r13_samordningsnummer_day_plus_sixty():
    nine = "811278987"  # 1981-12-18 + 60 days in the day field
    raw = nine + _luhn_digit(nine)
    assert normalise_one(raw, REF) == ("19" + raw, "samordningsnummer", None)
    frame = pl.DataFrame({"patient_id": ["19" + raw]})
    assert frame.select(birth_date(pl.col("patient_id"))).item() == dt.date(1981, 12, 18)


@pytest.mark.parametrize(
    "nine",
    [
        "260230123",  # Feb 30
        "261301123",  # month 13
        "250229123",  # Feb 29 in a non-leap year
        "260100123",  # day 0
        "260132123",  # day 32 is neither a day nor a samordningsnummer day
        "260192123",
    ],  # samordningsnummer day 92 = 32
)
def test_r13_impossible_dates_are_invalid_date(nine):
    raw = nine + _luhn_digit(nine)  # a right check digit, so only the date can be wrong
    assert normalise_one("20" + raw, REF) == (None, None, ERROR_DATE)


def test_r13_feb_29_valid_in_leap_year_only():
    nine = "240229123"
    raw = nine + _luhn_digit(nine)
    assert normalise_one("20" + raw, REF) == ("20" + raw, "personnummer", None)
    # 1900 was no leap year: the `+` century makes the same digits an impossible date.
    nine = "000229123"
    raw = nine + _luhn_digit(nine)
    assert normalise_one(raw, REF) == ("20" + raw, "personnummer", None)
    assert normalise_one(raw[:6] + "+" + raw[6:], REF) == (None, None, ERROR_DATE)


def test_r13_future_birth_date():
    nine = "261201123"
    raw = nine + _luhn_digit(nine)
    assert normalise_one("20" + raw, REF) == (None, None, ERROR_FUTURE)
    assert normalise_one("20" + raw, dt.date(2026, 12, 1))[2] is None


@pytest.mark.parametrize(
    "raw",
    [
        "abc",
        "19581124-32691",
        "58112-43269",
        "5811243269x",
        "19581124--3269",
        "195811243",
        "581124/3269",
        "5811-24-3269",
        "+5811243269",
        "1958112-43269",
        "19581124\t3269",
        "٥٨١١٢٤٣٢٦٩",
    ],
)
def test_r13_garbage_is_bad_format(raw):
    assert normalise_one(raw, REF) == (None, None, ERROR_FORMAT)


@pytest.mark.parametrize("raw", ["", "   ", None])
def test_r13_empty(raw):
    assert normalise_one(raw, REF) == (None, None, ERROR_EMPTY)


def test_r13_reasons_never_carry_the_value():
    frame = _normalise(["19581124-3268", "19581130-3269", "abc581124", "20991124-3269"])
    for reason in frame["error"].to_list():
        assert reason.startswith("R13: ")
        assert not any(char.isdigit() for char in reason.removeprefix("R13: "))


def test_r12_age_on_visit_date():
    frame = pl.DataFrame(
        {
            "patient_id": [
                "201311241234",
                "201311241234",
                "200002290000",
                "200002290000",
                "201311841234",
                None,
                "abc",
            ],
            "on": [
                dt.date(2026, 11, 23),
                dt.date(2026, 11, 24),
                dt.date(2025, 2, 27),
                dt.date(2025, 2, 28),
                dt.date(2026, 11, 24),
                dt.date(2026, 1, 1),
                dt.date(2026, 1, 1),
            ],
        }
    )
    ages = frame.select(age_on(pl.col("patient_id"), pl.col("on"))).to_series().to_list()
    # 12 the day before the 13th birthday; leapling turns 25 on 28 Feb in a non-leap year.
    assert ages == [12, 13, 24, 25, 13, None, None]


def test_r13_birth_date_of_normalised_ids():
    frame = pl.DataFrame({"patient_id": ["195811243269", "200002296789", "5811243269", None]})
    result = frame.select(birth_date(pl.col("patient_id")).alias("birth_date"))
    expected = pl.DataFrame(
        {"birth_date": [dt.date(1958, 11, 24), dt.date(2000, 2, 29), None, None]}
    )
    assert_frame_equal(result, expected)


MASK_CASES = [
    ("pnr 19581124-3269 ok", f"pnr {MASK} ok"),
    ("pnr19581124-3269", f"pnr{MASK}"),
    ("581124-3269,5811243269 581124+3269", f"{MASK},{MASK} {MASK}"),
    ("19 581124-3269", MASK),
    ("Telefonnr:+46701234567", "Telefonnr:+46701234567"),  # 11 digits: not an id
    ("booking 1234567 row 42", "booking 1234567 row 42"),
    ("1958112432691", "1958112432691"),  # part of a longer digit run
    ("no ids here", "no ids here"),
]


@pytest.mark.parametrize(("text", "masked"), MASK_CASES)
def test_r13_mask_patient_ids_str(text, masked):
    assert mask_patient_ids(text) == masked


def test_r13_mask_patient_ids_expression_agrees_with_str():
    frame = pl.DataFrame({"text": [text for text, _ in MASK_CASES] + [None]})
    result = frame.select(mask_patient_ids(pl.col("text"))).to_series().to_list()
    assert result == [masked for _, masked in MASK_CASES] + [None]


def test_r13_million_rows_counts():
    # Catches accidental per-row Python only by making it painfully slow; asserts counts.
    good, samordning = "195811243269", "19" + "811278987" + _luhn_digit("811278987")
    block = [good, "581124-3269", samordning, "581124-3268", "", "garbage", "20260230-1234"]
    rows = 1_000_000 // len(block) + 1
    frame = pl.DataFrame({"raw": (block * rows)[: rows * len(block)]})
    result = frame.select(normalise_patient_id(pl.col("raw"), REF).alias("r")).unnest("r")
    counts = dict(result.group_by("error").len().iter_rows())
    assert counts == {
        None: 3 * rows,
        ERROR_CHECK_DIGIT: rows,
        ERROR_EMPTY: rows,
        ERROR_FORMAT: rows,
        ERROR_DATE: rows,
    }
    kinds = dict(result.group_by("patient_id_kind").len().iter_rows())
    assert kinds == {"personnummer": 2 * rows, "samordningsnummer": rows, None: 4 * rows}


def _r13_reference(raw: str | None, reference: dt.date) -> tuple[str | None, str | None, str | None]:
    """R13 row by row, in plain Python: what the vectorised expression must equal."""
    import re

    text = (raw or "").strip()
    if not text:
        return None, None, ERROR_EMPTY
    if not re.fullmatch(r"(?:[0-9]{2} *)?[0-9]{6} *[-+]? *[0-9]{4}", text):
        return None, None, ERROR_FORMAT
    digits = "".join(ch for ch in text if ch.isdigit())
    month, raw_day = int(digits[-8:-6]), int(digits[-6:-4])
    day = raw_day - 60 if raw_day > 60 else raw_day
    if len(digits) == 12:
        year = int(digits[:4])
    else:
        yy = int(digits[:2])
        year = reference.year - (reference.year - yy) % 100
        if year == reference.year and month * 100 + day > reference.month * 100 + reference.day:
            year -= 100
        if "+" in text:
            year -= 100
    try:
        born = dt.date(year, month, day)
    except ValueError:
        return None, None, ERROR_DATE
    if born > reference:
        return None, None, ERROR_FUTURE
    ten = digits[-10:]
    if _luhn_digit(ten[:9]) != ten[9]:
        return None, None, ERROR_CHECK_DIGIT
    kind = "samordningsnummer" if 61 <= raw_day <= 91 else "personnummer"
    return f"{year:04d}{ten[2:]}", kind, None


@settings(max_examples=400, deadline=None)
@given(st.lists(st.text(alphabet="0123456789-+ x", min_size=0, max_size=16), min_size=1, max_size=40)
       | st.lists(st.builds(lambda c, body, sep, tail: f"{c}{body}{sep}{tail}",
                            st.sampled_from(["", "19", "20", "18", "19 "]),
                            st.dates(dt.date(1880, 1, 1), dt.date(2030, 12, 31)).map(lambda d: d.strftime("%y%m%d")),
                            st.sampled_from(["", "-", "+", " - ", " "]),
                            st.from_regex(r"[0-9]{4}", fullmatch=True)), min_size=1, max_size=40))
def test_r13_vectorised_normalisation_equals_the_rule_row_by_row(values):
    """R13 (issue 12: the expression is tuned for speed): every value, odd or well-formed, gets
    the id, kind and reason the rule gives row by row."""
    result = _normalise(values)
    assert list(result.iter_rows()) == [_r13_reference(v, REF) for v in values]
