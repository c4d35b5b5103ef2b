"""The scheduled sync's long-poll of the landing folder (issue 4 (b))."""

from __future__ import annotations

import json

from mvg_sync.ingest import wait_for_drop
from mvg_sync.store import drops as state


class FakeClock:
    """Monotonic time that only moves when the poll sleeps; `on_sleep` may change the folder."""

    def __init__(self, on_sleep=None) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.on_sleep = on_sleep

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep:
            self.on_sleep(self.now)


def _drop(landing, name: str, manifest: str | None = '{"sequence": 1}') -> None:
    folder = landing / name
    folder.mkdir(parents=True)
    (folder / "bokningar.csv").write_text("x\n")
    if manifest is not None:
        (folder / "manifest.json").write_text(manifest)


def _wait(tmp_path, clock: FakeClock, timeout_s: float = 10.0) -> bool:
    return wait_for_drop(
        tmp_path / "landing", tmp_path / "state", timeout_s=timeout_s, poll_s=0.5, sleep=clock.sleep, clock=clock
    )


def test_returns_at_once_when_an_unprocessed_drop_is_waiting(tmp_path):
    _drop(tmp_path / "landing", "20261126-080000")
    clock = FakeClock()
    assert _wait(tmp_path, clock) is True
    assert clock.sleeps == []


def test_gives_up_after_the_timeout_when_nothing_lands(tmp_path):
    (tmp_path / "landing").mkdir()
    clock = FakeClock()
    assert _wait(tmp_path, clock, timeout_s=3.0) is False
    assert clock.now == 3.0
    assert max(clock.sleeps) <= 0.5


def test_wakes_within_one_poll_of_a_manifest_landing(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    clock = FakeClock(on_sleep=lambda t: t == 2.0 and _drop(landing, "20261126-080100"))
    assert _wait(tmp_path, clock) is True
    assert clock.now == 2.0


def test_ignores_processed_drops_and_folders_still_being_written(tmp_path):
    landing = tmp_path / "landing"
    _drop(landing, "20261126-075900")  # already processed (in the drops table)
    _drop(landing, "20261126-080000", manifest=None)  # files copied, manifest not yet written
    _drop(landing, "20261126-080100", manifest='{"sequence": ')  # manifest being written right now
    con = state.connect(tmp_path / "state")
    try:
        con.execute("INSERT INTO drops (extract_id, outcome, processed_at) VALUES ('20261126-075900', 'accepted', now())")
    finally:
        con.close()
    clock = FakeClock()
    assert _wait(tmp_path, clock, timeout_s=2.0) is False
    (landing / "20261126-080100" / "manifest.json").write_text(json.dumps({"sequence": 2}))
    assert _wait(tmp_path, FakeClock(), timeout_s=2.0) is True
