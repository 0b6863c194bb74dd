"""Schemas on one database share one connection per pass, and the other databases are
searched once for the same missing tables (real PostgreSQL, counted by the server)."""

from __future__ import annotations

import psycopg

from schemagate.core.check.verdict import Requirement
from schemagate.core.wire.reasons import Reason
from schemagate.postgres import catalog, search
from tests.support.database import Tenant
from tests.support.wait import wait_for


def sessions(tenant: Tenant, name: str) -> int:
    """Connections the server has seen to database `name` (pg_stat_database.sessions)."""
    with psycopg.connect(tenant.server.url(database="postgres", driver="postgresql"),
                         autocommit=True) as conn:

        def row() -> tuple[int] | None:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            return conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s",
                                (name,)).fetchone()

        # A session's stats reach the view when it ends, within a moment.
        found = wait_for(f"statistics for database {name}", row, timeout=5, interval=0.1)
        return int(found[0])


def settled_sessions(tenant: Tenant, name: str) -> int:
    """`sessions`, once two readings a moment apart agree."""
    seen: list[int] = []

    def last_two() -> list[int]:
        seen.append(sessions(tenant, name))
        return seen[-2:]

    return wait_for(f"the sessions of {name} to settle", last_two,
                    lambda two: len(two) == 2 and two[0] == two[1], timeout=6, interval=0.2)[0]


def test_many_schemas_on_one_url_cost_one_connection(tenant: Tenant) -> None:
    tenant.admin("CREATE TABLE a (id int); CREATE TABLE b (id int)")
    url = tenant.url()
    asked = [(Requirement(tables=("a", "b"), revision_check=False), None)] * 50 + [
        (Requirement(tables=("a", "missing"), revision_check=False), None)]
    before = settled_sessions(tenant, tenant.database)
    verdicts = catalog.verify_many(url, asked, connect_timeout=5)
    assert settled_sessions(tenant, tenant.database) - before == 1
    assert [v.reason for v in verdicts[:50]] == [Reason.VERIFIED] * 50
    assert verdicts[50].reason is Reason.TABLES_MISSING
    assert verdicts[50].missing_tables == ("missing",)
    # Once the server is known, distinct requirements travel together (one round trip).
    tenant.admin("CREATE TABLE missing (id int)")
    again = catalog.verify_many(url, list(reversed(asked)), connect_timeout=5)
    assert [v.reason for v in again] == [Reason.VERIFIED] * 51
    assert again[0].fingerprint is not None and again[0].fingerprint.database == tenant.database


def test_the_other_databases_are_searched_again_only_when_the_missing_tables_change(
        tenant: Tenant) -> None:
    other = tenant.add_database(f"other_{tenant.suffix}")
    tenant.admin("CREATE TABLE credit_transactions (id int)", database=other)
    url = tenant.url()
    requirement = Requirement(tables=("credit_transactions",), revision_check=False)
    first = catalog.verify(url, requirement, connect_timeout=5)
    assert first.reason is Reason.TABLES_ELSEWHERE
    known = search.in_other_databases(first)
    assert known is not None and [p.database for p in known.places] == [other]

    before = settled_sessions(tenant, other)
    again = catalog.verify(url, requirement, connect_timeout=5, known=known)
    assert settled_sessions(tenant, other) == before  # not searched: same missing tables
    assert (again.reason, again.message) == (first.reason, first.message)

    wider = Requirement(tables=("credit_transactions", "subscriptions"), revision_check=False)
    catalog.verify(url, wider, connect_timeout=5, known=known)
    assert settled_sessions(tenant, other) == before + 1  # other tables missing: searched
