"""SIGINT/SIGTERM for `mvg-sync sync`: stop within seconds, after settling answers already received (issue 11.2).

Outside a `deferred()` section a signal raises `Interrupted` at once: every step before the
push is crash-safe (a SIGKILL there converges on the rerun, tests/e2e/test_sync_crash.py),
so an exception is no worse. Inside one (the push), the signal is only recorded: the batch
whose answers are arriving is settled first, then `checkpoint()` raises. A batch that does
not finish within `GRACE_S` (Clinic24 hanging, retries backing off) is abandoned: the raise
happens anyway and the rerun reads back the writes left in doubt, as after a crash.
"""

from __future__ import annotations

import _thread
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

GRACE_S = 5.0
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + signal number, as shells report it


class Interrupted(KeyboardInterrupt):  # noqa: N818 - reads as what happened, like KeyboardInterrupt
    """The operator (or the service manager) asked the run to stop; carries the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.signum, 128 + self.signum)


_state = {"installed": False, "signum": None, "deferring": 0, "grace_over": False, "timer": None}


def requested() -> int | None:
    """The signal received so far, if any."""
    return _state["signum"]


def _handler(signum: int, frame: object) -> None:
    repeated = _state["signum"] is not None  # a second Ctrl-C does not wait for the batch
    if not repeated:
        _state["signum"] = signum
    if _state["deferring"] and not _state["grace_over"] and not repeated:
        if _state["timer"] is None:
            timer = threading.Timer(GRACE_S, _grace_over)
            timer.daemon = True
            _state["timer"] = timer
            timer.start()
        return
    raise Interrupted(_state["signum"])


def _grace_over() -> None:
    _state["grace_over"] = True
    _thread.interrupt_main(_state["signum"])  # runs `_handler` in the main thread, which now raises


def install() -> None:
    """Handle SIGINT and SIGTERM in this (main) thread; call once, early in the command."""
    timer = _state.get("timer")
    if timer is not None:
        timer.cancel()
    # a fresh command: nothing of an earlier one in the same interpreter (tests) carries over
    _state.update(signum=None, grace_over=False, timer=None)
    for signum in EXIT_CODES:
        signal.signal(signum, _handler)
    _state["installed"] = True


def checkpoint() -> None:
    """Raise `Interrupted` if a signal came in: call where stopping leaves nothing half done."""
    if _state["signum"] is not None:
        raise Interrupted(_state["signum"])


@contextmanager
def deferred() -> Iterator[None]:
    """Record signals instead of raising, for at most GRACE_S after the first one.

    Re-installs this module's handlers for the section (Prefect's flow engine swaps its own
    SIGTERM handler in for the run) and puts back whatever was there after. Only effective
    in the main thread, where Python delivers signals, and only once `install()` ran (the
    command line): in a deployment Prefect's own SIGTERM handling (cancellation) stays as is.
    """
    if not _state["installed"] or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in EXIT_CODES}
    install()
    _state["deferring"] += 1
    try:
        yield
    finally:
        _state["deferring"] -= 1
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    checkpoint()
