"""HSA-id validation (Cosmic input contract): trims, upper-cases the `SE` prefix, flags bad ids."""

from __future__ import annotations

import polars as pl

ERROR_HSA = "bad HSA-id"
MAX_LENGTH = 31

# `SE` + 10-digit organisation number + `-` + local id of ASCII letters and digits. The prefix
# is matched case-insensitively and upper-cased: a typed `se` is the same id, whereas the
# local part is kept as delivered because it is what Clinic24 and HSA compare.
_HSA = r"^[Ss][Ee][0-9]{10}-[A-Za-z0-9]+$"


def validate_hsa_id(raw: pl.Expr) -> pl.Expr:
    """Struct `{hsa_id, error}` for an HSA-id column (cosmic-extracts.md, `EnhetHSAID` etc.).

    Valid: `hsa_id` is the trimmed id with `SE` upper-case, `error` null. Invalid (wrong
    shape, missing dash, non-ASCII or punctuation in the local id, longer than 31
    characters): `hsa_id` null, `error` = `bad HSA-id`. Empty or null: both null, because
    whether the column is required is the contract's business (`ResursHSAID` is optional).
    """
    f = pl.field
    staged = pl.struct(text=raw.cast(pl.String).str.strip_chars()).struct.with_fields(
        is_empty=f("text").is_null() | (f("text").str.len_bytes() == 0),
        # The pattern admits ASCII only, so bytes are characters here.
        is_valid=f("text").str.contains(_HSA) & (f("text").str.len_bytes() <= MAX_LENGTH),
    )
    return staged.struct.with_fields(
        hsa_id=pl.when(f("is_valid"))
        .then(
            # Nearly every id already starts with `SE`; rebuilding those strings is the cost.
            pl.when(f("text").str.starts_with("SE"))
            .then(f("text"))
            .otherwise(pl.concat_str(pl.lit("SE"), f("text").str.slice(2)))
        )
        .otherwise(None),
        error=pl.when(f("is_empty") | f("is_valid"))
        .then(pl.lit(None, dtype=pl.String))
        .otherwise(pl.lit(ERROR_HSA)),
    ).struct.eval(f("hsa_id"), f("error"))
