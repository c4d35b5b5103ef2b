"""Named crash points for the crash-safety tests: SIGKILL this process when one is reached.

`MVG_CRASH_AT=<point>[:<n>]` kills the process the n-th time (default first) the point is
reached. Unset — as in every real deployment — a point costs one dictionary lookup. The
points sit exactly where a real crash would hurt most: in ingestion with a drop's snapshots
staged but the drop not recorded, between two drops, after the outbox is written, after
Clinic24 applied a batch but before its answers are recorded, and between batches.
"""

from __future__ import annotations

import os
import signal

_seen: dict[str, int] = {}


def reached(point: str) -> None:
    """Die here if the environment names this point (read now, never at import)."""
    target = os.environ.get("MVG_CRASH_AT")
    if not target:
        return
    name, _, nth = target.partition(":")
    if name != point:
        return
    _seen[point] = _seen.get(point, 0) + 1
    if _seen[point] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
