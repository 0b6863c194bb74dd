"""The status a user reads with `kubectl get dbschema -o yaml`, built without a socket."""

from datetime import UTC, datetime, timedelta

from schemagate.core.check.verdict import Fingerprint, Place, Verdict
from schemagate.core.status import conditions as cond
from schemagate.core.status.outcome import Outcome, from_verdict, next_status, transition
from schemagate.core.wire.models import DatabaseSchemaStatus, GateStatus
from schemagate.core.wire.reasons import Reason

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FP = Fingerprint(host="10.0.0.5", port=5432, database="app", user="backend",
                 search_path='"$user", public', server_version="18.1",
                 system_identifier="7301")
GATE = GateStatus(condition_type="schemagate.io/backend-schema", pods=2, ready=0)


def elsewhere() -> Verdict:
    return Verdict(verified=False, reason=Reason.TABLES_ELSEWHERE,
                   message="subscriptions missing from schema public; found in schema migrator",
                   missing_tables=("subscriptions",),
                   found_elsewhere=(Place("subscriptions", "migrator", "app"),),
                   current_revisions=frozenset({"3f2a9c"}), fingerprint=FP)


def test_a_failed_check_says_where_the_tables_went() -> None:
    status = next_status(DatabaseSchemaStatus(), outcome=from_verdict(elsewhere()),
                         generation=3, gate=GATE, now=T0)
    wire = status.model_dump(by_alias=True, mode="json", exclude_none=True)
    assert wire["observedGeneration"] == 3
    assert wire["missingTables"] == ["subscriptions"]
    assert wire["foundElsewhere"] == [{"table": "subscriptions", "schema": "migrator",
                                       "database": "app"}]
    assert wire["database"]["host"] == "10.0.0.5" and "password" not in str(wire)
    ready = cond.find(status.conditions, cond.READY)
    assert ready is not None and (ready.status, ready.reason) == ("False", "TablesElsewhere")
    assert "0 of 2 gated pods open" in ready.message
    stalled = cond.find(status.conditions, cond.STALLED)
    assert stalled is not None and stalled.status == "False"


def test_an_unreachable_database_keeps_what_was_last_seen() -> None:
    seen = next_status(DatabaseSchemaStatus(), outcome=from_verdict(elsewhere()),
                       generation=1, gate=GATE, now=T0)
    later = next_status(seen, outcome=Outcome(Reason.DATABASE_UNREACHABLE, "timeout"),
                        generation=1, gate=GATE, now=T0 + timedelta(minutes=1))
    assert later.missing_tables == ["subscriptions"]
    assert later.last_verified_time == "2026-03-01T12:00:00Z"
    verified = cond.find(later.conditions, cond.SCHEMA_VERIFIED)
    assert verified is not None and verified.status == "Unknown"


def test_a_spec_a_person_must_fix_is_stalled() -> None:
    status = next_status(DatabaseSchemaStatus(), outcome=Outcome(Reason.SECRET_NOT_FOUND,
                                                                 "Secret backend-db not found"),
                         generation=1, gate=GATE, now=T0)
    stalled = cond.find(status.conditions, cond.STALLED)
    assert stalled is not None and (stalled.status, stalled.reason) == ("True", "SecretNotFound")


def test_only_a_change_of_verdict_is_a_transition() -> None:
    first = next_status(DatabaseSchemaStatus(), outcome=from_verdict(elsewhere()),
                        generation=1, gate=GATE, now=T0)
    assert transition(DatabaseSchemaStatus(), first) is not None
    again = next_status(first, outcome=from_verdict(elsewhere()), generation=1, gate=GATE,
                        now=T0 + timedelta(seconds=30))
    assert transition(first, again) is None


def test_kubectl_columns_read_as_sentences() -> None:
    from schemagate.core.status.outcome import missing_summary, revision_summary

    assert missing_summary(["a", "b", "c"]) == "3 tables: a, b, c"
    assert missing_summary(["a"]) == "1 table: a"
    assert missing_summary(["a", "b", "c", "d", "e"]) == "5 tables: a, b, c, ..."
    assert missing_summary([]) == "none"
    assert revision_summary(frozenset({"3f2a9c"}), None) == "3f2a9c"
    assert revision_summary(frozenset({"3f2a9c"}), frozenset({"9e9e9e"})) == \
        "3f2a9c (expected 9e9e9e)"
    assert revision_summary(None, None) == "no version table"
    assert revision_summary(frozenset(), None) == "none recorded"
    status = next_status(DatabaseSchemaStatus(), outcome=from_verdict(elsewhere()),
                         generation=1, gate=GATE, now=T0)
    wire = status.model_dump(by_alias=True, mode="json", exclude_none=True)
    assert (wire["missingSummary"], wire["revisionSummary"], wire["gateSummary"]) == \
        ("1 table: subscriptions", "3f2a9c", "0/2")
    unread = next_status(DatabaseSchemaStatus(), outcome=Outcome(Reason.SECRET_NOT_FOUND, "x"),
                         generation=1, gate=GATE, now=T0)
    assert unread.missing_summary is None, "nothing is known missing before a read"
