"""The decision over plain data: every precedence rule of `core.check.verdict`, no sockets."""

from __future__ import annotations

import json

import pytest

from schemagate.core.check.verdict import (
    Fingerprint,
    Observation,
    Place,
    Requirement,
    connection_failed,
    decide,
    names,
)
from schemagate.core.wire.reasons import Reason

TABLES = ("credit_transactions", "agent_executions", "subscriptions")
FINGERPRINT = Fingerprint(host="10.0.0.5", port=5432, database="app", user="app",
                          search_path='"$user", public', server_version="18.1",
                          system_identifier="7312345678901234567",
                          effective_search_path=("pg_catalog", "public"))


def requirement(**kw: object) -> Requirement:
    return Requirement(**{"tables": TABLES, **kw})  # type: ignore[arg-type]


def observation(present: tuple[str, ...] = TABLES, revisions: set[str] | None = None,
                elsewhere: tuple[Place, ...] = (), fingerprint: Fingerprint = FINGERPRINT,
                schema_exists: bool = True, duration_ms: float = 0.0) -> Observation:
    return Observation(present_tables=frozenset(present),
                       current_revisions=None if revisions is None else frozenset(revisions),
                       found_elsewhere=elsewhere, fingerprint=fingerprint,
                       schema_exists=schema_exists, duration_ms=duration_ms)


# When tables are missing: TablesElsewhere, NoRevision, StampedButMissing, TablesMissing.

def test_tables_elsewhere_wins_over_everything_and_names_the_schema() -> None:
    elsewhere = (Place("credit_transactions", "migrator", "app"),
                 Place("subscriptions", "migrator", "app"))
    verdict = decide(requirement(), observation(present=("agent_executions",), revisions=set(),
                                                elsewhere=elsewhere))
    assert verdict.reason is Reason.TABLES_ELSEWHERE
    assert not verdict.verified
    assert verdict.missing_tables == ("credit_transactions", "subscriptions")
    assert verdict.found_elsewhere == elsewhere
    assert verdict.message == (
        "credit_transactions, subscriptions are missing from schema public of database app on "
        "10.0.0.5:5432; found in schema migrator (the migrating role's search_path?)")


def test_tables_elsewhere_also_with_the_revision_check_off() -> None:
    elsewhere = (Place("subscriptions", "public", "app_staging"),)
    verdict = decide(requirement(revision_check=False),
                     observation(present=TABLES[:2], elsewhere=elsewhere))
    assert verdict.reason is Reason.TABLES_ELSEWHERE
    assert "found in database app_staging (schema public)" in verdict.message
    assert "another database" in verdict.message


def test_tables_elsewhere_groups_places_and_says_what_was_found_nowhere() -> None:
    elsewhere = (Place("credit_transactions", "migrator", "app"),
                 Place("credit_transactions", "public", "other"),
                 Place("subscriptions", "migrator", "app"))
    verdict = decide(requirement(), observation(present=(), revisions={"3f2a9c"},
                                                elsewhere=elsewhere))
    assert verdict.reason is Reason.TABLES_ELSEWHERE
    assert ("found in schema migrator: credit_transactions, subscriptions; "
            "in database other (schema public): credit_transactions") in verdict.message
    assert verdict.message.endswith("not found anywhere: agent_executions")


def test_places_of_tables_that_are_present_do_not_count() -> None:
    # A declared table present in `schema` may also exist elsewhere: not a finding.
    elsewhere = (Place("subscriptions", "archive", "app"),)
    verdict = decide(requirement(revision_check=False),
                     observation(present=TABLES[1:], elsewhere=elsewhere))
    assert verdict.reason is Reason.TABLES_MISSING
    assert verdict.found_elsewhere == ()

    verdict = decide(requirement(revision_check=False), observation(elsewhere=elsewhere))
    assert verdict.reason is Reason.VERIFIED
    assert verdict.found_elsewhere == ()


@pytest.mark.parametrize("revisions, state", [(None, "does not exist"), (set(), "is empty")])
def test_no_revision_when_tables_are_missing(revisions: set[str] | None, state: str) -> None:
    verdict = decide(requirement(expected_revisions=frozenset({"3f2a9c"})),
                     observation(present=(), revisions=revisions))
    assert verdict.reason is Reason.NO_REVISION
    assert verdict.message.startswith(
        f"no migration is recorded: version table public.alembic_version {state}; "
        "credit_transactions, agent_executions, subscriptions are missing")
    assert verdict.current_revisions == (None if revisions is None else frozenset())


def test_stamped_but_missing_without_expected_revisions() -> None:
    verdict = decide(requirement(), observation(present=("agent_executions",),
                                                revisions={"3f2a9c"}))
    assert verdict.reason is Reason.STAMPED_BUT_MISSING
    assert verdict.message == (
        "credit_transactions, subscriptions are missing from schema public of database app on "
        "10.0.0.5:5432, yet public.alembic_version records 3f2a9c (tables dropped, or the "
        "revision stamped without running the migrations?)")


def test_stamped_but_missing_at_the_expected_revision() -> None:
    verdict = decide(requirement(expected_revisions=frozenset({"3f2a9c"})),
                     observation(present=(), revisions={"3f2a9c"}))
    assert verdict.reason is Reason.STAMPED_BUT_MISSING


def test_missing_tables_at_another_revision_than_expected_is_a_mismatch() -> None:
    # Tables missing and the version table at another revision: running the migrations
    # is what fixes it, hence a mismatch rather than missing tables (rule 4 of core.check.verdict).
    verdict = decide(requirement(expected_revisions=frozenset({"3f2a9c"})),
                     observation(present=TABLES[:1], revisions={"1a0b"}))
    assert verdict.reason is Reason.REVISION_MISMATCH
    assert verdict.message.startswith(
        "public.alembic_version records 1a0b, expected 3f2a9c; agent_executions, "
        "subscriptions are missing")


def test_tables_missing_with_the_revision_check_off() -> None:
    verdict = decide(requirement(revision_check=False),
                     observation(present=("subscriptions",), revisions=None))
    assert verdict.reason is Reason.TABLES_MISSING
    assert verdict.missing_tables == ("credit_transactions", "agent_executions")


def test_missing_schema_is_said() -> None:
    verdict = decide(requirement(schema="billing", revision_check=False),
                     observation(present=(), schema_exists=False))
    assert "(schema billing does not exist there)" in verdict.message


# When every table is present: NoRevision, RevisionMismatch, Verified.

@pytest.mark.parametrize("revisions", [None, set()])
def test_no_revision_when_all_tables_are_present(revisions: set[str] | None) -> None:
    verdict = decide(requirement(), observation(revisions=revisions))
    assert verdict.reason is Reason.NO_REVISION
    assert "all 3 declared tables are present in schema public" in verdict.message


def test_revision_mismatch_when_expected_revisions_differ() -> None:
    verdict = decide(requirement(expected_revisions=frozenset({"3f2a9c"})),
                     observation(revisions={"1a0b"}))
    assert verdict.reason is Reason.REVISION_MISMATCH
    assert verdict.current_revisions == frozenset({"1a0b"})
    assert verdict.expected_revisions == frozenset({"3f2a9c"})


def test_revision_mismatch_when_only_one_of_two_heads_is_recorded() -> None:
    verdict = decide(requirement(expected_revisions=frozenset({"aaa", "bbb"})),
                     observation(revisions={"aaa"}))
    assert verdict.reason is Reason.REVISION_MISMATCH


def test_any_recorded_revision_verifies_without_expected_revisions() -> None:
    verdict = decide(requirement(), observation(revisions={"1a0b"}))
    assert verdict.reason is Reason.VERIFIED and verdict.verified
    assert verdict.message == ("all 3 declared tables are present in schema public of "
                               "database app on 10.0.0.5:5432; public.alembic_version "
                               "records 1a0b")


def test_two_heads_expected_and_recorded_verify() -> None:
    verdict = decide(requirement(expected_revisions=frozenset({"bbb", "aaa"})),
                     observation(revisions={"aaa", "bbb"}))
    assert verdict.reason is Reason.VERIFIED
    assert verdict.to_json()["revision"] == {"current": ["aaa", "bbb"],
                                             "expected": ["aaa", "bbb"]}


def test_only_the_tables_count_with_the_revision_check_off() -> None:
    verdict = decide(requirement(revision_check=False, expected_revisions=frozenset({"x"})),
                     observation(revisions=None))
    assert verdict.reason is Reason.VERIFIED
    assert verdict.message.endswith("revision not checked")


def test_verified_warns_when_the_schema_is_not_on_the_search_path() -> None:
    fingerprint = Fingerprint(host="10.0.0.5", port=5432, database="app", user="app",
                              search_path="app", server_version="18.1",
                              effective_search_path=("pg_catalog", "app"))
    verdict = decide(requirement(), observation(revisions={"1a0b"}, fingerprint=fingerprint))
    assert verdict.reason is Reason.VERIFIED
    assert "schema public is not on this connection's search_path (pg_catalog, app)" in (
        verdict.message)


# The data itself.

def test_requirement_defaults_and_normalises() -> None:
    req = Requirement(schema="billing", tables=("a", "b", "a"), expected_revisions=frozenset())
    assert req.version_table_schema == "billing"
    assert req.version_table_place == "billing.alembic_version"
    assert req.tables == ("a", "b")
    assert req.expected_revisions is None
    assert Requirement(version_table_schema="meta").version_table_schema == "meta"


@pytest.mark.parametrize("kw", [{"schema": ""}, {"tables": ("a", "")}, {"version_table": ""}])
def test_requirement_refuses_empty_names(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Requirement(**kw)  # type: ignore[arg-type]


def test_names_are_matched_exactly() -> None:
    verdict = decide(Requirement(tables=("Credit-Transactions",), revision_check=False),
                     observation(present=("credit-transactions",)))
    assert verdict.missing_tables == ("Credit-Transactions",)


def test_long_lists_are_shortened_in_messages_but_kept_in_fields() -> None:
    many = tuple(f"t{i:05d}" for i in range(10_000))
    verdict = decide(Requirement(tables=many, revision_check=False), observation(present=()))
    assert len(verdict.missing_tables) == 10_000
    assert "t00009 and 9,990 more are missing" in verdict.message
    assert len(verdict.message) < 300
    assert names(["a", "b"]) == "a, b"


def test_json_shape_is_the_design_contract() -> None:
    elsewhere = (Place("subscriptions", "migrator", "app"),)
    verdict = decide(requirement(expected_revisions=frozenset({"3f2a9c"})),
                     observation(present=TABLES[:2], revisions=set(), elsewhere=elsewhere,
                                 duration_ms=12.345))
    document = json.loads(json.dumps(verdict.to_json()))
    assert document == {
        "verified": False,
        "reason": "TablesElsewhere",
        "message": verdict.message,
        "missing_tables": ["subscriptions"],
        "found_elsewhere": [{"table": "subscriptions", "schema": "migrator", "database": "app"}],
        "column_mismatches": [],
        "revision": {"current": [], "expected": ["3f2a9c"]},
        "database": {"host": "10.0.0.5", "port": 5432, "database": "app", "user": "app",
                     "search_path": '"$user", public', "server_version": "18.1",
                     "system_identifier": "7312345678901234567"},
        "duration_ms": 12.3,
    }


def test_connection_failures_carry_no_fingerprint() -> None:
    verdict = connection_failed(requirement(expected_revisions=frozenset({"x"})),
                                Reason.AUTHENTICATION_FAILED, "refused", duration_ms=3.0)
    assert not verdict.verified
    assert verdict.to_json()["database"] is None
    assert verdict.to_json()["revision"] == {"current": None, "expected": ["x"]}
    with pytest.raises(ValueError):
        connection_failed(requirement(), Reason.TABLES_MISSING, "not a connection failure")


def test_socket_connections_are_described() -> None:
    fingerprint = Fingerprint(host=None, port=None, database="app", user="app",
                              search_path="public", server_version="18.1")
    assert fingerprint.where == "database app on the local socket"
    ipv6 = Fingerprint(host="::1", port=5433, database="app", user="app",
                       search_path="public", server_version="18.1")
    assert ipv6.where == "database app on [::1]:5433"


REFUSED = ("the version table app.alembic_version has more than 32 rows (Alembic writes one "
           "per head)")


@pytest.mark.parametrize("present", [TABLES, TABLES[:1]])
def test_a_version_table_read_no_further_is_a_revision_mismatch_that_says_why(
        present: tuple[str, ...]) -> None:
    seen = Observation(present_tables=frozenset(present), current_revisions=None,
                       found_elsewhere=(), fingerprint=FINGERPRINT,
                       version_table_refused=REFUSED)
    verdict = decide(requirement(expected_revisions={"a1"}), seen)

    assert verdict.reason is Reason.REVISION_MISMATCH and not verdict.verified
    assert verdict.message == (f"{REFUSED}, so which revision database app on 10.0.0.5:5432 "
                               "is at cannot be told (Alembic writes one row per head, each a "
                               "short id)")
    assert verdict.current_revisions is None


def test_a_version_table_read_no_further_does_not_count_without_the_revision_check() -> None:
    seen = Observation(present_tables=frozenset(TABLES), current_revisions=None,
                       found_elsewhere=(), fingerprint=FINGERPRINT,
                       version_table_refused=REFUSED)
    assert decide(requirement(revision_check=False), seen).reason is Reason.VERIFIED
