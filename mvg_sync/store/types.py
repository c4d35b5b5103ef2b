"""The store's vocabulary: the values its status, kind and type columns may hold.

They are `StrEnum`s, so a member is equal to (and serialises as) the string the store keeps:
`OutboxStatus.PENDING == "pending"`. Code names the member; SQL binds it as a parameter, so a
misspelt status is an AttributeError at import, not a query that silently matches nothing.
"""

from __future__ import annotations

from enum import StrEnum


class OutboxStatus(StrEnum):
    """Where one planned change stands (`outbox.status`)."""

    PENDING = "pending"  # to push (or in flight: a crash leaves it pending, re-sent identically)
    HELD = "held"  # not pushed, with a rule and reason (R05, R12, R17, a guard hold…)
    DEAD = "dead"  # Clinic24 refused it for good; `redrive` re-queues it
    DONE = "done"  # settled by an answer (accepted or stale)
    SUPERSEDED = "superseded"  # a later plan replaced it before it was settled


OPEN_STATUSES: tuple[OutboxStatus, ...] = (OutboxStatus.PENDING, OutboxStatus.HELD, OutboxStatus.DEAD)


class ChangeKind(StrEnum):
    """What a change does to Clinic24 (`outbox.change_kind`)."""

    CREATE = "create"  # R06
    REBOOK = "rebook"  # R07/R08
    UPDATE = "update"
    CANCEL = "cancel"  # R06/R10
    ISSUE = "issue"  # a booking ticket fell due (tickets rules)
    REVOKE = "revoke"
    COMPLETE = "complete"


class ResourceType(StrEnum):
    """The FHIR resource a change is sent as (`outbox.resource_type`, `clinic24_record.resource_type`)."""

    APPOINTMENT = "Appointment"  # a booking
    SERVICE_REQUEST = "ServiceRequest"  # a booking ticket


class DropOutcome(StrEnum):
    """What became of one Cosmic drop (`drops.outcome`)."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"
    STALE = "stale"


class ApprovalStatus(StrEnum):
    """A drop held by the mass-cancellation guard (`approvals.status`)."""

    HELD = "held"
    APPROVED = "approved"
    SUPERSEDED = "superseded"
