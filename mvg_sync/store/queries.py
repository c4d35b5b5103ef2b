"""Named queries that several readers share (status, run summary, sync-health report)."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb

R11_TARGET_S = 300.0  # R11: p95 under 5 minutes from extract to Clinic24's acceptance

# R11: seconds from a drop's `extracted_at` to Clinic24's acceptance, per change accepted in
# [start, end). An acceptance before its extract's timestamp is clock skew between Cosmic and
# this host (or a back-dated `as_of`): counted apart, never allowed to pull the percentiles
# under the target.
R11_LATENCY_SQL = """
WITH accepted AS (
    SELECT epoch(settled_at) - epoch(extracted_at) AS s FROM outbox
    WHERE status = 'done' AND last_outcome = 'accepted' AND extracted_at IS NOT NULL
      AND settled_at >= $start AND settled_at < $end
)
SELECT count(*) FILTER (WHERE s >= 0)::BIGINT AS accepted,
       quantile_cont(s, 0.5) FILTER (WHERE s >= 0) AS p50_s,
       quantile_cont(s, 0.95) FILTER (WHERE s >= 0) AS p95_s,
       max(s) FILTER (WHERE s >= 0) AS max_s,
       avg(CASE WHEN s < $target THEN 1.0 ELSE 0.0 END) FILTER (WHERE s >= 0) AS share_under_5_min,
       count(*) FILTER (WHERE s < 0)::BIGINT AS clock_skewed
FROM accepted
"""
_FAR = datetime(9999, 1, 1, tzinfo=UTC)


def r11_latency(
    con: duckdb.DuckDBPyConnection, *, start: datetime, end: datetime | None = None, digits: int = 3
) -> dict[str, float | int | None]:
    """accepted, p50_s, p95_s, max_s, share_under_5_min, clock_skewed for [start, end)."""
    row = con.execute(R11_LATENCY_SQL, {"start": start, "end": end or _FAR, "target": R11_TARGET_S}).fetchone()
    names = ("accepted", "p50_s", "p95_s", "max_s", "share_under_5_min", "clock_skewed")
    out: dict[str, float | int | None] = dict(zip(names, row, strict=True))
    out["accepted"] = int(out["accepted"] or 0)
    out["clock_skewed"] = int(out["clock_skewed"] or 0)
    for key in ("p50_s", "p95_s", "max_s", "share_under_5_min"):
        value = out[key]
        out[key] = None if value is None else round(float(value), digits)
    return out
