"""The typed summary of one sync run, shared by the flow, its tasks, the run artifact and the CLI.

Its dict form (`as_dict`) is an external interface and stays as it was when the summary was a
plain dict: the flow's result, `sync_runs.counts` (JSON, keys sorted), the `booking-sync-counts`
artifact and `mvg-sync sync`'s output line. A part that was never set is left out of the
dict, as the key was never added before; `tests/unit/test_run_summary.py` holds the keys.
Aggregates only: no patient data ever enters it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# Counts whose keys come from the step that made them (ingest outcomes, `write_plan`'s
# per-type tallies, `classify`'s statuses): nested str -> int (or -> float for latency).
Counts = dict[str, Any]

SKIPPED = "skipped: another sync is running"


@dataclass
class GuardStep:
    """The mass-cancellation guard's numbers (R06 cancellations, R19 revocations)."""

    cancels: int
    live: int
    held: int  # 0 or 1: counts only, so the artifact's table stays numeric

    def as_dict(self) -> dict[str, int]:
        return {"cancels": self.cancels, "live": self.live, "held": self.held}


@dataclass
class Steps:
    """What each step of a cycle reported; None for a step the cycle did not reach."""

    wait: Counts | None = None  # `wait_for_drop` (long-poll only)
    ingest: Counts | None = None
    guard: GuardStep | None = None
    plan: Counts | None = None  # `commit_plan`: per resource type and holds
    push: Counts | None = None  # `push_pending`, or {"error": …} when Clinic24 went away mid-push
    retention: Counts | None = None

    def as_dict(self) -> dict[str, Any]:
        parts = {"wait": self.wait, "ingest": self.ingest,
                 "guard": self.guard.as_dict() if self.guard is not None else None,
                 "plan": self.plan, "push": self.push, "retention": self.retention}
        return {name: value for name, value in parts.items() if value is not None}

    @classmethod
    def from_dict(cls, steps: Mapping[str, Any]) -> Steps:
        guard = steps.get("guard")
        return cls(
            wait=steps.get("wait"), ingest=steps.get("ingest"),
            guard=GuardStep(**guard) if guard is not None else None,
            plan=steps.get("plan"), push=steps.get("push"), retention=steps.get("retention"),
        )

    def flat(self) -> Iterator[tuple[str, str, Any]]:
        """(step, `Appointment.inserted`-style measure, value) for the flat counts artifact."""
        for step, values in self.as_dict().items():
            for name, value in _flatten(values):
                yield step, name, value


def _flatten(values: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, value in values.items():
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{prefix}{name}.")
        elif value is not None:
            yield f"{prefix}{name}", value


@dataclass
class RunSummary:
    """One sync cycle (or, with `cycles`, a long-polling run whose last cycle it is)."""

    outcome: str  # done | nothing to do | held | failed | skipped: …
    run_id: str | None = None
    as_of: datetime | None = None
    started_at: datetime | None = None
    steps: Steps = field(default_factory=Steps)
    warnings: list[str] = field(default_factory=list)
    extract_id: str | None = None
    cause: str | None = None  # why a failed run failed, one line
    latency: Counts | None = None  # R11, from `publish_run_summary`
    open_items: Counts | None = None
    cycles: list[RunSummary] = field(default_factory=list)

    @classmethod
    def start(cls, run_id: str, as_of: datetime, started_at: datetime) -> RunSummary:
        return cls(outcome="done", run_id=run_id, as_of=as_of, started_at=started_at)

    @classmethod
    def skipped(cls) -> RunSummary:
        return cls(outcome=SKIPPED)

    def as_dict(self) -> dict[str, Any]:
        """The summary as it always was: the keys in this order, unset parts left out."""
        out: dict[str, Any] = {"run_id": self.run_id, "as_of": self.as_of, "started_at": self.started_at}
        out = {k: v for k, v in out.items() if v is not None}
        out |= {"outcome": self.outcome, "steps": self.steps.as_dict()}
        if self.warnings:
            out["warnings"] = list(self.warnings)
        optional = {"extract_id": self.extract_id, "cause": self.cause, "latency": self.latency,
                    "open_items": self.open_items}
        out |= {k: v for k, v in optional.items() if v is not None}
        if self.cycles:
            out["cycles"] = [c.as_dict() for c in self.cycles]
        return out

    def stored_counts(self, latency: Counts) -> dict[str, Any]:
        """What `sync_runs.counts` keeps for this run: the summary with this run's latency."""
        return {**self.as_dict(), "latency": latency}

    @classmethod
    def from_dict(cls, summary: Mapping[str, Any]) -> RunSummary:
        """The flow's result (its dict form) read back, for the command line."""
        return cls(
            outcome=summary["outcome"], run_id=summary.get("run_id"), as_of=summary.get("as_of"),
            started_at=summary.get("started_at"), steps=Steps.from_dict(summary.get("steps", {})),
            warnings=list(summary.get("warnings", [])), extract_id=summary.get("extract_id"),
            cause=summary.get("cause"), latency=summary.get("latency"), open_items=summary.get("open_items"),
            cycles=[cls.from_dict(c) for c in summary.get("cycles", [])],
        )
