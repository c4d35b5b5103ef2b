"""Sync cycle steps: ticket holds per basis, ticket counts of the plan, push counts per resource type."""

import json
from datetime import UTC, date, datetime, timedelta

import polars as pl
from polars.testing import assert_frame_equal

from mvg_sync.clinic24.client import EntryOutcome
from mvg_sync.clinic24.payloads import build_appointment
from mvg_sync.rules.tickets import CHANGES_SCHEMA, REJECTED_SCHEMA, ticket_content_hash
from mvg_sync.store import outbox as store
from mvg_sync.store import plan_reads
from mvg_sync.store.types import ResourceType
from mvg_sync.sync import commit, push, runlock
from mvg_sync.sync import draft as drafting

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
UNIT = "SE2321000198-E1023"


def test_r17_r18_a_basis_breaking_two_rules_is_one_hold_naming_both():
    rejected = pl.DataFrame(
        [
            ("29000002", UNIT, "R18", "visit type 'x' is not Nybesök or Återbesök"),
            ("29000001", UNIT, "R17", "specialist-care unit without referral"),
            ("29000002", UNIT, "R17", "specialist-care unit without referral"),
        ],
        schema=REJECTED_SCHEMA,
        orient="row",
    )
    expected = pl.DataFrame(
        [
            ("29000001", UNIT, "R17", "R17: specialist-care unit without referral"),
            (
                "29000002",
                UNIT,
                "R17",
                "R17: specialist-care unit without referral; "
                "R18: visit type 'x' is not Nybesök or Återbesök",
            ),
        ],
        schema=drafting.HOLD_COLUMNS,
        orient="row",
    )
    assert_frame_equal(drafting.ticket_holds(rejected), expected)


def test_r15_commit_plan_reports_not_due_and_rejected_bases_with_the_ticket_counts(tmp_path):
    draft = drafting.TicketDraft(
        changes=pl.DataFrame(schema=CHANGES_SCHEMA),
        holds=pl.DataFrame(schema=drafting.HOLD_COLUMNS),
        counts={"not_due": 2, "rejected": 1},
    )
    snapshot = plan_reads.SnapshotRef("20261126T080000-000001", 1, NOW, date(2026, 11, 19), date(2027, 2, 24))
    counts = commit.commit_plan(
        tmp_path, run_id="run1", bookings=None, ticket_draft=draft, snapshot=snapshot, now=NOW
    )
    assert counts == {
        "ServiceRequest": {"inserted": 0, "kept": 0, "superseded": 0, "not_due": 2, "rejected": 1},
        "holds": {"bookings": 0, "tickets": 0},
    }
    # the run summary's dict form: plain strings, never enum members (their repr would show)
    assert {type(k) for k in counts} == {str}


class _AcceptAll:
    """A Clinic24 client that accepts every entry, one batch per call."""

    def upsert(self, entries, *, on_batch_settled):
        outcomes = [EntryOutcome(e.change_id, "accepted", 201, version="1") for e in entries]
        on_batch_settled(outcomes)
        return outcomes


def _outbox_rows(keys: list[str], status: str) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "key": keys,
            "change_kind": ["create" if status == "booked" else "issue"] * len(keys),
            "rule": ["R06"] * len(keys),
            "content_hash": [f"h{k}" for k in keys],
            "source_sequence": [1] * len(keys),
            "payload": ["{}"] * len(keys),
            "target_status": [status] * len(keys),
            "target_start_at": [None] * len(keys),
            "target_unit": [UNIT] * len(keys),
            "extracted_at": [NOW] * len(keys),
        },
        schema_overrides={"target_start_at": pl.Datetime("us", "UTC"), "source_sequence": pl.Int64},
    )


def test_r14_push_counts_tickets_apart_from_bookings(tmp_path):
    con = plan_reads.open_state(tmp_path)
    store.write_plan(
        con,
        {
            "Appointment": _outbox_rows(["10000001", "10000002"], "booked"),
            "ServiceRequest": _outbox_rows(["29000001"], "active"),
        },
        plan_id="run1",
        now=NOW,
    )
    con.close()
    counts = push.push_pending(tmp_path, _AcceptAll(), clock=lambda: NOW)
    assert counts == {
        "sent": 3,
        "done": 3,
        "Appointment": {"sent": 2, "done": 2},
        "ServiceRequest": {"sent": 1, "done": 1},
    }
    assert repr(counts) == repr({"sent": 3, "done": 3, "Appointment": {"sent": 2, "done": 2},
                                 "ServiceRequest": {"sent": 1, "done": 1}})  # plain-string keys


def _issue(authored_at: datetime, *, monitoring_date: date = date(2026, 12, 20)) -> pl.DataFrame:
    row = {
        "change_kind": "issue", "rule": "R14", "basis_id": "29000001", "status": "active",
        "care_service": "Primärvård|mottagning|läkare", "clinic24_role": "lakare-allman-fysiskt",
        "patient_id": "199810233578", "patient_id_kind": "personnummer", "patient_name": "Test, Testa",
        "unit_hsa_id": "SE2321000198-E1001", "issue_date": authored_at.date(),
        "monitoring_date": monitoring_date, "authored_at": authored_at, "contact_type": "Mottagningsbesök",
        "visit_type": "Nybesök", "referral_id": None,
    }
    return pl.DataFrame([{**row, "content_hash": ticket_content_hash(row)}], schema=CHANGES_SCHEMA)


def _commit(state_dir, changes: pl.DataFrame, run_id: str, sequence: int = 1) -> dict:
    draft = drafting.TicketDraft(changes=changes, holds=pl.DataFrame(schema=drafting.HOLD_COLUMNS))
    snapshot = plan_reads.SnapshotRef(f"drop-{sequence}", sequence, NOW, date(2026, 11, 19), date(2027, 2, 24))
    return commit.commit_plan(
        state_dir, run_id=run_id, bookings=None, ticket_draft=draft, snapshot=snapshot, now=NOW
    )["ServiceRequest"]


def _open_payloads(state_dir) -> list[dict]:
    con = plan_reads.open_state(state_dir)
    try:
        rows = con.execute("SELECT payload FROM outbox WHERE status = 'pending'").fetchall()
    finally:
        con.close()
    return [json.loads(p) for (p,) in rows]


def test_r16_an_open_issue_planned_again_later_keeps_its_first_plan(tmp_path):
    first = datetime(2026, 11, 26, 22, 59, tzinfo=UTC)
    assert _commit(tmp_path, _issue(first), "run1")["inserted"] == 1
    # The answer was lost (crash, 5xx): the next run, the next local day and drop, plans it again.
    again = _commit(tmp_path, _issue(first + timedelta(hours=2)), "run2", sequence=2)
    assert (again["inserted"], again["kept"], again["superseded"]) == (0, 1, 0)
    [payload] = _open_payloads(tmp_path)
    assert payload["authoredOn"] == "2026-11-26T23:59:00+01:00"
    assert payload["occurrencePeriod"]["start"] == "2026-11-26"


def test_r16_an_open_issue_whose_basis_changed_is_replaced(tmp_path):
    first = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    _commit(tmp_path, _issue(first), "run1")
    moved = _commit(tmp_path, _issue(first + timedelta(minutes=2), monitoring_date=date(2026, 12, 21)), "run2")
    assert (moved["inserted"], moved["kept"], moved["superseded"]) == (1, 0, 1)
    [payload] = _open_payloads(tmp_path)
    assert payload["occurrencePeriod"]["end"] == "2026-12-21"


def outcome(kind, status=None, code=None, diagnostics=None):
    return EntryOutcome("c1", kind, status, None, code, diagnostics, None)


def test_409_stale_settles_done_with_a_note():
    assert push.classify(outcome("stale", 409, "conflict")) == (
        "done", "stale: Clinic24 holds a newer source-sequence (409)")


def test_r12_guardian_missing_holds_and_other_rejections_dead_letter_without_free_text():
    assert push.classify(outcome("rejected", 422, "business-rule", "primary-guardian-missing"))[0] == "held"
    assert push.classify(outcome("rejected", 404, "not-found", "unknown-location")) == (
        "dead", "404 not-found: unknown-location")
    status, reason = push.classify(outcome("rejected", 422, "invalid", "Patient Åsa Öberg 19581124-3269 invalid"))
    assert status == "dead"
    assert reason == "422 invalid: (diagnostics withheld)"


def test_a_second_sync_in_the_same_state_folder_is_turned_away(tmp_path):
    with runlock.exclusive_run(tmp_path) as first:
        assert first
        with runlock.exclusive_run(tmp_path) as second:
            assert not second
    with runlock.exclusive_run(tmp_path) as again:
        assert again


def test_r08_an_ending_change_without_a_known_payload_is_held_not_fatal(tmp_path):
    import duckdb

    con = duckdb.connect(str(tmp_path / "s.duckdb"))
    store.ensure_schema(con)
    changes = pl.DataFrame(
        {"booking_id": ["b1"], "change_kind": ["cancel"], "rule": ["R08"], "content_hash": ["h"],
         "status": ["cancelled"], "start_at": [NOW], "unit_hsa_id": [UNIT], "cancel_reason": ["x"]},
        schema_overrides={"start_at": pl.Datetime("us", "UTC")},
    )
    snapshot = plan_reads.SnapshotRef("20261126T080000-000001", 1, NOW, date(2026, 11, 19), date(2027, 2, 24))
    failed: list[dict] = []
    rows = commit._outbox_rows(
        con, changes, resource_type=ResourceType.APPOINTMENT, key="booking_id",
        builder=build_appointment, snapshot=snapshot, failed=failed,
    )
    assert rows.height == 0
    assert [(f["key"], f["rule"]) for f in failed] == [("b1", "payload")]


def test_guard_counts_only_bookings_from_the_window_start(tmp_path):
    import duckdb

    con = duckdb.connect(str(tmp_path / "s.duckdb"))
    store.ensure_schema(con)
    for key, start in [("past", NOW - timedelta(days=30)), ("future", NOW + timedelta(days=3))]:
        con.execute(
            "INSERT INTO clinic24_record VALUES ('Appointment', ?, 'booked', ?, ?, 'h', 1, '1', ?)",
            [key, start, UNIT, NOW],
        )
    assert store.live_synced_count(con, since=NOW - timedelta(days=7)) == 1


def test_r19_mass_ticket_revocation_is_held_like_mass_cancellation(tmp_path):
    con = plan_reads.open_state(tmp_path)
    for n in range(100):
        con.execute(
            "INSERT INTO clinic24_record VALUES ('ServiceRequest', ?, 'active', NULL, ?, 'h', 1, '1', ?)",
            [f"t{n}", UNIT, NOW],
        )
    con.close()
    snapshot = plan_reads.SnapshotRef("20261126T080000-000009", 9, NOW, date(2026, 11, 19), date(2027, 2, 24))
    no_booking_changes = pl.DataFrame(schema={"booking_id": pl.Utf8, "change_kind": pl.Utf8})
    empty = pl.DataFrame(schema=drafting.HOLD_COLUMNS)
    draft = drafting.BookingDraft(snapshot, no_booking_changes, empty, pl.DataFrame(), pl.DataFrame())
    revokes = pl.DataFrame({"basis_id": [f"t{n}" for n in range(30)], "change_kind": ["revoke"] * 30})
    guard = drafting.apply_guard(
        tmp_path, draft, drafting.TicketDraft(revokes, empty), max_share=0.05, floor=20, now=NOW
    )
    assert guard.held and guard.newly_held
    assert "30 ticket revocations" in guard.reason
    few = drafting.TicketDraft(revokes.head(4), empty)
    assert not drafting.apply_guard(tmp_path, draft, few, max_share=0.05, floor=20, now=NOW).held


class _GuardianLookups:
    """A client stand-in for `check_guardians`: answers lookups from a set, records each."""

    def __init__(self, with_guardian: set[str]) -> None:
        self.with_guardian = with_guardian
        self.asked: list[str] = []

    def has_primary_guardian(self, patient_id: str, kind: str) -> bool:
        assert kind == "personnummer"
        self.asked.append(patient_id)
        return patient_id in self.with_guardian


def _guardian_draft(children: dict[str, str]) -> drafting.BookingDraft:
    """A draft whose only content that matters here: booking id -> child's personnummer."""
    snapshot = plan_reads.SnapshotRef("20261126T080000-000001", 1, NOW, date(2026, 11, 19), date(2027, 2, 24))
    candidates = pl.DataFrame(
        {"booking_id": list(children), "patient_id": list(children.values()),
         "patient_id_kind": ["personnummer"] * len(children)}
    )
    empty = pl.DataFrame()
    return drafting.BookingDraft(snapshot, empty, pl.DataFrame(schema=drafting.HOLD_COLUMNS), empty, candidates)


def test_r12_new_children_are_looked_up_within_the_budget_and_the_rest_checked_by_the_upsert(tmp_path):
    children = {f"b{n}": f"2019010{n}1234" for n in range(1, 6)}  # five children, none seen before
    client = _GuardianLookups(with_guardian={"201901021234"})
    answers = drafting.check_guardians(tmp_path, _guardian_draft(children), client, max_lookups=2)
    assert client.asked == ["201901011234", "201901021234"], "lookups in patient-id order, no more than the budget"
    decided = dict(answers.iter_rows())
    assert decided == {
        "201901011234": False,  # looked up: no guardian, held before any push
        "201901021234": True,  # looked up: has one
        # beyond the budget: pushed, and Clinic24's 422 primary-guardian-missing holds them
        "201901031234": True, "201901041234": True, "201901051234": True,
    }


def test_r12_a_child_already_held_is_rechecked_by_the_upsert_not_looked_up_again(tmp_path):
    con = plan_reads.open_state(tmp_path)
    try:
        held = pl.DataFrame([("b1", UNIT, "R12", "needs primary guardian")], schema=drafting.HOLD_COLUMNS, orient="row")
        store.replace_holds(con, held, resource_type=ResourceType.APPOINTMENT, now=NOW)
    finally:
        con.close()
    client = _GuardianLookups(with_guardian=set())
    answers = drafting.check_guardians(tmp_path, _guardian_draft({"b1": "201901011234", "b2": "201901021234"}), client)
    assert client.asked == ["201901021234"]
    assert dict(answers.iter_rows()) == {"201901011234": True, "201901021234": False}


# R07 label (issue 14): a change of only the end time or the practitioner is a rebook --------


def _accepted_world(tmp_path):
    """A small region ingested, planned and recorded as accepted by Clinic24 (no sandbox)."""
    from mvg_sync.generator import generate_region, write_drop
    from mvg_sync.ingest import ingest_pending
    from mvg_sync.timeutil import STOCKHOLM

    as_of = datetime(2026, 11, 26, 8, 0, tzinfo=STOCKHOLM)
    region = generate_region(seed=7, n_bookings=200, as_of=as_of)
    landing, state = tmp_path / "landing", tmp_path / "state"
    write_drop(region, landing)
    ingest_pending(landing, state, as_of=as_of)
    units = list(region.clinic24_units)
    draft = drafting.draft_booking_plan(state, units, as_of=as_of)
    commit.commit_plan(state, run_id="initial", bookings=draft, ticket_draft=None, snapshot=draft.snapshot, now=NOW)
    con = plan_reads.open_state(state)
    try:
        con.execute("UPDATE outbox SET status = 'done', last_outcome = 'accepted', version = '1', settled_at = ?",
                    [NOW])
        con.execute("INSERT INTO clinic24_record SELECT resource_type, key, target_status, target_start_at, "
                    "target_unit, content_hash, source_sequence, '1', settled_at FROM outbox")
    finally:
        con.close()
    booked = draft.changes.filter((pl.col("status") == "booked") & (pl.col("visit_kind") == "physical"))
    return region, landing, state, units, booked.get_column("booking_id").head(2).to_list()


def test_r07_only_end_or_practitioner_changed_is_recorded_as_rebook_in_the_outbox(tmp_path):
    from mvg_sync.generator import next_region, write_drop
    from mvg_sync.ingest import ingest_pending

    region, landing, state, units, (end_only, practitioner_only) = _accepted_world(tmp_path)
    later = region.as_of + timedelta(minutes=5)
    drop, _ = next_region(region, seed=3, as_of=later)
    bid = pl.col("BokningsID").cast(pl.String)
    other = drop.bookings.filter(bid != practitioner_only).select("ResursHSAID", "Resurs").drop_nulls().row(0)
    drop.bookings = drop.bookings.with_columns(
        pl.when(bid == end_only).then(pl.col("Sluttid") + timedelta(minutes=15)).otherwise(pl.col("Sluttid"))
        .alias("Sluttid"),
        pl.when(bid == practitioner_only).then(pl.lit(other[0])).otherwise(pl.col("ResursHSAID"))
        .alias("ResursHSAID"),
        pl.when(bid == practitioner_only).then(pl.lit(other[1])).otherwise(pl.col("Resurs")).alias("Resurs"),
    )
    write_drop(drop, landing)
    ingest_pending(landing, state, as_of=later)
    draft = drafting.draft_booking_plan(state, units, as_of=later)
    planned = {k: (kind, rule) for k, kind, rule in draft.changes.select("booking_id", "change_kind", "rule").rows()}
    assert planned[end_only] == ("rebook", "R07")
    assert planned[practitioner_only] == ("rebook", "R07")
    # Issue 12: the hashes reused from the previous plan's cache change nothing in the plan.
    cache = drafting._hash_cache_path(state)
    assert cache.stat().st_mode & 0o777 == 0o600
    cache.unlink()
    assert_frame_equal(drafting.draft_booking_plan(state, units, as_of=later).changes, draft.changes)
    commit.commit_plan(state, run_id="next", bookings=draft, ticket_draft=None, snapshot=draft.snapshot, now=NOW)
    con = plan_reads.open_state(state)
    try:
        rules = dict(con.execute(
            "SELECT key, rule || '/' || change_kind FROM outbox WHERE status = 'pending' AND key IN (?, ?)",
            [end_only, practitioner_only],
        ).fetchall())
    finally:
        con.close()
    assert rules == {end_only: "R07/rebook", practitioner_only: "R07/rebook"}


def test_r07_end_and_resource_come_from_the_cache_only_for_a_desired_booking_recorded_with_its_hash():
    """Issue 12: the plan's cache stands in for the accepted payload only where it holds the
    very row Clinic24 accepted (the same content hash) of a booking still desired; every other
    key is read back from the payloads."""
    from mvg_sync.rules.booking_scope import hash_cache_rows
    from tests.unit.test_booking_plan import desired, record_of, row, utc

    accepted = desired(row("hit"), row("other-hash"), row("gone"), row("uncached"))
    known = hash_cache_rows(accepted.filter(pl.col("booking_id") != "uncached"))
    record = record_of(accepted).with_columns(
        pl.when(pl.col("booking_id") == "other-hash").then(pl.lit("a-later-hash")).otherwise(pl.col("content_hash"))
        .alias("content_hash")
    )
    moved = {"end_at": utc(2026, 12, 3, 9, 30), "resource_hsa_id": "SE2321000032-other"}
    now = desired(*(row(key, **moved) for key in ("hit", "other-hash", "uncached")))
    keys = pl.Series("booking_id", ["gone", "hit", "other-hash", "uncached"])

    ends = drafting._accepted_ends(keys, now, record, known)

    # the accepted end and resource, not the new ones of the snapshot
    assert ends.rows() == [("hit", utc(2026, 12, 3, 9, 0), row("hit")["resource_hsa_id"])]
    assert drafting._accepted_ends(keys, now, record, None).height == 0


def test_r10_a_plan_cache_written_before_the_cached_row_columns_is_ignored(tmp_path):
    """R10 (issue 12): a hash cache from the release before `CACHED_ROW_COLUMNS` (fingerprints
    and hashes only), a torn one and a missing one are not read (the plan then hashes every
    row, and `_remember_hashes` writes the cache anew: the R07 e2e test above runs that path)."""
    from mvg_sync.rules.booking_scope import hash_cache_rows
    from tests.unit.test_booking_plan import desired, row

    current = hash_cache_rows(desired(row("1"), row("2")))
    current.write_ipc(tmp_path / "current.arrow")
    current.drop("end_at", "resource_hsa_id").write_ipc(tmp_path / "older.arrow")
    (tmp_path / "torn.arrow").write_bytes((tmp_path / "current.arrow").read_bytes()[:100])

    assert_frame_equal(drafting._known_hashes_in(tmp_path / "current.arrow"), current)
    assert drafting._known_hashes_in(tmp_path / "older.arrow") is None
    assert drafting._known_hashes_in(tmp_path / "torn.arrow") is None
    assert drafting._known_hashes_in(tmp_path / "missing.arrow") is None


def test_r07_accepted_rows_are_the_rows_the_payloads_were_built_from():
    from mvg_sync.clinic24.payloads import build_appointment
    from mvg_sync.sync.accepted import accepted_rows, appointment_row
    from tests.unit.test_booking_plan import DESIRED_SCHEMA, row

    rows = [
        row("1"),
        row("2", status="cancelled", cancel_reason="Patienten avbokar", booking_info=None,
            resource_hsa_id=None, resource_name=None, patient_id_kind="samordningsnummer",
            patient_may_cancel=False),
    ]
    for r in rows:
        assert appointment_row(build_appointment(r, source_sequence=5)) == r
    resources = {r["booking_id"]: build_appointment(r, source_sequence=5) for r in rows}
    assert_frame_equal(accepted_rows(resources, pl.Schema(DESIRED_SCHEMA)), pl.DataFrame(rows, schema=DESIRED_SCHEMA))


class _GuardianGate:
    """Refuses the visits of `children` as Clinic24 does without a primary guardian (R12), accepts
    the rest, and remembers the order entries were sent in."""

    def __init__(self, children: set[str]):
        self.children, self.sent = children, []

    def upsert(self, entries, *, on_batch_settled):
        self.sent += [(e.resource_type, e.key) for e in entries]
        outcomes = [
            EntryOutcome(e.change_id, "rejected", 422, code="business-rule", diagnostics=push.GUARDIAN_DIAGNOSTICS)
            if e.resource_type == "Appointment" and e.key in self.children
            else EntryOutcome(e.change_id, "accepted", 201, version="1")
            for e in entries
        ]
        on_batch_settled(outcomes)
        return outcomes


def test_r11_r12_a_drops_changes_are_sent_before_the_re_checks_of_refused_children(tmp_path):
    """Issue 12: each plan sends the visits Clinic24 refused under R12 again (thousands a cycle);
    they go after the drop's own changes, which no longer wait behind them."""
    first_keys = [str(10000001 + i) for i in range(12)]
    children = set(first_keys[::2])  # interleaved with the others in the outbox's order
    con = plan_reads.open_state(tmp_path)
    store.write_plan(con, {"Appointment": _outbox_rows(first_keys, "booked")}, plan_id="run1", now=NOW)
    con.close()
    push.push_pending(tmp_path, _GuardianGate(children), clock=lambda: NOW)

    # the next plan sends the refused children again, beside a drop's new bookings and a ticket
    new_keys = [str(10000101 + i) for i in range(5)]
    later = NOW + timedelta(minutes=1)
    con = plan_reads.open_state(tmp_path)
    store.write_plan(
        con,
        {"Appointment": _outbox_rows(sorted(children) + new_keys, "booked"),
         "ServiceRequest": _outbox_rows([min(children)], "active")},  # a ticket keyed like a child: no re-check
        plan_id="run2", now=later,
    )
    assert store.guardian_rechecks(con) == children
    con.close()
    gate = _GuardianGate(children)
    counts = push.push_pending(tmp_path, gate, clock=lambda: later)
    assert counts["sent"] == 12
    assert sorted(gate.sent[:6]) == sorted([("Appointment", k) for k in new_keys] + [("ServiceRequest", min(children))])
    assert sorted(gate.sent[6:]) == sorted(("Appointment", k) for k in children)
    # refused again: still re-checks for the plan after; accepted ones never were
    con = plan_reads.open_state(tmp_path)
    store.write_plan(con, {"Appointment": _outbox_rows(sorted(children) + new_keys[:1], "booked")},
                     plan_id="run3", now=later + timedelta(minutes=1))
    assert store.guardian_rechecks(con) == children
    con.close()
