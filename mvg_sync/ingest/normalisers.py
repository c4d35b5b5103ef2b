"""The value normalisers ingestion calls (R13 patient ids, HSA-ids, local date-times).

They are owned by `mvg_sync.rules.patient_id`, `mvg_sync.rules.hsa` and
`mvg_sync.ingest.localtime`; this module only re-exports them so the ingest code has one
import point. Until those modules exist in a checkout, minimal stand-ins with the same
signatures keep ingestion usable; the real ones win as soon as they import.
"""

from __future__ import annotations

from datetime import date

import polars as pl

try:  # pragma: no cover - depends on which modules have landed
    from mvg_sync.rules.patient_id import normalise_patient_id
except ImportError:  # pragma: no cover

    def normalise_patient_id(raw: pl.Expr, reference_date: date) -> pl.Expr:
        """Stand-in for R13 (12 digits, Luhn, + = century back, samordningsnummer day+60)."""
        text = raw.str.replace_all(r"[\s]", "")
        plus = text.str.contains(r"\+")
        digits = text.str.replace_all(r"[-+]", "")
        ok_shape = digits.str.contains(r"^(\d{10}|\d{12})$")
        short = digits.str.len_chars() == 10
        yy = digits.str.slice(0, 2).cast(pl.Int32, strict=False)
        ref_year = reference_date.year
        century = (ref_year - yy - pl.when(plus).then(100).otherwise(0)) // 100 * 100
        # the 10-digit form: the latest year not after the reference (minus 100 with "+")
        full_year = pl.when(
            (century + yy) > ref_year - pl.when(plus).then(100).otherwise(0)
        ).then(century - 100 + yy).otherwise(century + yy)
        twelve = pl.when(short).then(full_year.cast(pl.String).str.zfill(4) + digits.str.slice(2)).otherwise(digits)
        ten = twelve.str.slice(2, 10)
        luhn_sum = pl.lit(0)
        for i in range(10):
            d = ten.str.slice(i, 1).cast(pl.Int32, strict=False)
            v = d * (2 if i % 2 == 0 else 1)
            luhn_sum = luhn_sum + (v // 10) + (v % 10)
        day = twelve.str.slice(6, 2).cast(pl.Int32, strict=False)
        is_coord = day > 60
        real_day = pl.when(is_coord).then(day - 60).otherwise(day)
        birth = pl.concat_str([twelve.str.slice(0, 6), real_day.cast(pl.String).str.zfill(2)]).str.to_date(
            "%Y%m%d", strict=False
        )
        error = (
            pl.when(raw.is_null())
            .then(None)
            .when(~ok_shape.fill_null(False))
            .then(pl.lit("not 10 or 12 digits"))
            .when(birth.is_null())
            .then(pl.lit("impossible birth date"))
            .when(luhn_sum % 10 != 0)
            .then(pl.lit("check digit (Luhn) wrong"))
            .otherwise(None)
        )
        return pl.struct(
            pl.when(error.is_null()).then(twelve).alias("patient_id"),
            pl.when(error.is_null() & raw.is_not_null())
            .then(pl.when(is_coord).then(pl.lit("samordningsnummer")).otherwise(pl.lit("personnummer")))
            .alias("patient_id_kind"),
            error.alias("error"),
        )


try:  # pragma: no cover
    from mvg_sync.rules.hsa import validate_hsa_id
except ImportError:  # pragma: no cover

    def validate_hsa_id(raw: pl.Expr) -> pl.Expr:
        """Stand-in: `SE` + 10 digits + `-` + id, at most 31 characters."""
        ok = raw.str.contains(r"^SE\d{10}-[0-9A-Za-z]+$") & (raw.str.len_chars() <= 31)
        error = pl.when(raw.is_not_null() & ~ok).then(pl.lit("not an HSA-id (SE + 10 digits + - + id, <= 31)"))
        return pl.struct(pl.when(ok).then(raw).alias("hsa_id"), error.alias("error"))


try:  # pragma: no cover
    from mvg_sync.ingest.localtime import parse_local_date, parse_local_datetime
except ImportError:  # pragma: no cover

    def parse_local_datetime(raw: pl.Expr) -> pl.Expr:
        """Stand-in: `YYYY-MM-DD HH:MM` Europe/Stockholm -> UTC; DST gap/overlap rejected."""
        naive = raw.str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M", strict=False)
        gap = naive.dt.replace_time_zone("Europe/Stockholm", non_existent="null", ambiguous="earliest")
        overlap = naive.dt.replace_time_zone("Europe/Stockholm", non_existent="null", ambiguous="null")
        error = (
            pl.when(raw.is_null())
            .then(None)
            .when(naive.is_null())
            .then(pl.lit("not a date-time YYYY-MM-DD HH:MM"))
            .when(gap.is_null())
            .then(pl.lit("local time does not exist (DST gap)"))
            .when(overlap.is_null())
            .then(pl.lit("local time is ambiguous (DST overlap)"))
        )
        return pl.struct(
            pl.when(error.is_null()).then(overlap.dt.convert_time_zone("UTC")).alias("value"),
            error.alias("error"),
        )

    def parse_local_date(raw: pl.Expr) -> pl.Expr:
        """Stand-in: `YYYY-MM-DD` -> Date."""
        value = raw.str.strptime(pl.Date, "%Y-%m-%d", strict=False)
        error = pl.when(raw.is_not_null() & value.is_null()).then(pl.lit("not a date YYYY-MM-DD"))
        return pl.struct(value.alias("value"), error.alias("error"))


__all__ = ["normalise_patient_id", "parse_local_date", "parse_local_datetime", "validate_hsa_id"]
