"""The state folder's sync lock: one sync cycle at a time, whoever starts it."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def exclusive_run(state_dir: Path) -> Iterator[bool]:
    """Hold the state folder's sync lock for one cycle; yields False when another run has it.

    Prefect's deployment limit keeps scheduled runs apart, but not a command-line `sync` or a
    run that resumes from a pause; an OS file lock covers every case and dies with its process.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / "sync.lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
