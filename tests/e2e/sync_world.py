"""A small world for end-to-end sync tests: generated drops, a sandbox over HTTP, settings."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from mvg_sync.clinic24.sandbox.runner import SandboxHandle, start_sandbox
from mvg_sync.generator import Region, generate_region, write_drop, write_sandbox_seed
from mvg_sync.timeutil import STOCKHOLM

AS_OF = datetime(2026, 11, 26, 8, 0, tzinfo=STOCKHOLM)


@dataclass
class World:
    root: Path
    landing: Path
    state: Path
    sandbox: SandboxHandle
    region: Region

    def env(self) -> dict[str, str]:
        return {
            "MVG_LANDING_DIR": str(self.landing),
            "MVG_STATE_DIR": str(self.state),
            "MVG_REPORT_DIR": str(self.root / "reports"),
            "CLINIC24_BASE_URL": self.sandbox.base_url,
        }

    def drop(self, region: Region, **kw) -> Path:
        self.region = region
        return write_drop(region, self.landing, **kw)

    def appointments(self) -> dict[str, dict]:
        """Clinic24's stored appointments by Cosmic booking id."""
        return _by_key(self.sandbox.state("Appointment"), "Appointment")

    def tickets(self) -> dict[str, dict]:
        return _by_key(self.sandbox.state("ServiceRequest"), "ServiceRequest")

    def versions(self) -> dict[tuple[str, str], object]:
        """Every stored resource's version: equal before and after a run that changed nothing."""
        return {(i["resourceType"], i["identifier"]): i["version"] for i in self.sandbox.state()["resources"]}

    def cli(self, *args: str, extra_env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        """Run `mvg-sync` in its own process, as operations would."""
        import os

        env = {**os.environ, **self.env(), **(extra_env or {})}
        return subprocess.run(
            [sys.executable, "-m", "mvg_sync.cli", *args],
            env=env, capture_output=True, text=True, timeout=timeout, cwd=self.root,
        )


def prefect_env() -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    return {"PREFECT_API_URL": PREFECT_API_URL.value()}


def comparable(world: World) -> dict:
    """Clinic24's final state without server-side ids: identifier → (status, version, body)."""
    out = {}
    for item in world.sandbox.state()["resources"]:
        body = {k: v for k, v in item["resource"].items() if k not in ("id", "meta")}
        out[(item["resourceType"], item["identifier"])] = (item["status"], item["version"], body)
    return out


def rechecks_only(push: dict) -> bool:
    """A run sent nothing but R12 re-checks: visits of children still held for a missing
    primary guardian, pushed so that Clinic24 re-checks them (refused, nothing stored)."""
    return push.get("sent", 0) == push.get("held", 0)


def _by_key(state: dict, resource_type: str) -> dict[str, dict]:
    return {
        item["identifier"]: {**item["resource"], "_version": item["version"]}
        for item in state["resources"]
        if item["resourceType"] == resource_type
    }


def make_world(tmp_path: Path, *, n_bookings: int = 300, seed: int = 7, faults: dict | None = None) -> World:
    region = generate_region(seed=seed, n_bookings=n_bookings, as_of=AS_OF)
    units, guardians = write_sandbox_seed(region, tmp_path / "seed")
    sandbox = start_sandbox(tmp_path / "sandbox", units=units, guardians=guardians, faults=faults)
    world = World(tmp_path, tmp_path / "landing", tmp_path / "state", sandbox, region)
    world.landing.mkdir()
    return world
