"""Named crash points for the crash-safety tests: SIGKILL this process when one is reached.

`MVG_CRASH_AT=<point>[:<n>]` kills the process the n-th time (default first) the point is
reached. Unset — as in every real deployment — a point costs one dictionary lookup. The
points sit exactly where a real crash would hurt most: in ingestion with a drop's snapshots
staged but the drop not recorded, between two drops, after the outbox is written, after
Clinic24 applied a batch but before its answers are recorded, and between batches.

`MVG_PAUSE_AT=<point>[:<n>]` pauses there instead (the interrupt tests, issue 11.2): the
file named by `MVG_PAUSE_FILE` is created, and the process waits until a signal asks it to
stop, or the test removes the file to let it go on (at most two minutes), as slow work at
that point would.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

_seen: dict[str, int] = {}


def reached(point: str) -> None:
    """Die (or pause) here if the environment names this point (read now, never at import)."""
    if _hit("MVG_CRASH_AT", point):
        os.kill(os.getpid(), signal.SIGKILL)
    if _hit("MVG_PAUSE_AT", point):
        from mvg_sync import interrupts

        marker = Path(os.environ["MVG_PAUSE_FILE"])
        marker.touch()
        deadline = time.monotonic() + 120
        while marker.exists() and interrupts.requested() is None and time.monotonic() < deadline:
            time.sleep(0.05)


def _hit(variable: str, point: str) -> bool:
    target = os.environ.get(variable)
    if not target:
        return False
    name, _, nth = target.partition(":")
    if name != point:
        return False
    key = f"{variable}={point}"
    _seen[key] = _seen.get(key, 0) + 1
    return _seen[key] == int(nth or 1)
