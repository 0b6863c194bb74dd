"""`schemagate.postgres` in process, against the real server: what `observe` sees, how
many statements it takes, and how it fails."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from schemagate.core.check.verdict import Requirement
from schemagate.core.wire.reasons import Reason
from schemagate.postgres import catalog, connect, search
from tests.support.database import Tenant


@pytest.fixture
def statements() -> Iterator[list[str]]:
    """Every statement any engine sends while the test runs."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    yield seen
    event.remove(Engine, "before_cursor_execute", record)


def test_observe_reports_what_the_database_shows(tenant: Tenant) -> None:
    tenant.admin("CREATE TABLE a (id int); CREATE VIEW b AS SELECT 1 AS x; "
                 "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY); "
                 "INSERT INTO alembic_version VALUES ('r1'), ('r2')")
    tenant.admin(f"GRANT SELECT ON alembic_version TO {tenant.role}")
    observation = catalog.observe(tenant.url(), Requirement(tables=("a", "b", "c")))

    assert observation.present_tables == frozenset({"a", "b"})
    assert observation.current_revisions == frozenset({"r1", "r2"})
    assert observation.found_elsewhere == ()
    fp = observation.fingerprint
    assert (fp.host, fp.port) == ("127.0.0.1", tenant.server.port)
    assert (fp.database, fp.user) == (tenant.database, tenant.role)
    assert fp.search_path == '"$user", public'
    assert fp.effective_search_path == ("pg_catalog", "public")
    assert fp.server_version.startswith("18")
    assert fp.system_identifier is not None and fp.system_identifier.isdigit()


def test_all_tables_take_one_catalog_statement_however_many(tenant: Tenant,
                                                             statements: list[str]) -> None:
    tables = [f"t{i:04d}" for i in range(2000)]
    tenant.admin("; ".join(f"CREATE TABLE {name} (id int)" for name in tables))
    catalog.verify(tenant.url(), Requirement(tables=("t0000",), revision_check=False))

    statements.clear()
    verdict = catalog.verify(tenant.url(), Requirement(tables=tuple(tables),
                                                        revision_check=False))
    assert verdict.reason is Reason.VERIFIED
    assert len([s for s in statements if "pg_class" in s]) == 1
    assert all(name not in s for s in statements for name in ("t0000", "t1999"))

    verdict = catalog.verify(tenant.url(), Requirement(tables=(*tables, "t2000"),
                                                        revision_check=False))
    assert verdict.missing_tables == ("t2000",)


def test_names_longer_than_postgresql_keeps_match_as_the_backend_would(tenant: Tenant) -> None:
    long_name = "a" * 70  # PostgreSQL truncates identifiers to 63 bytes, here and in the backend
    tenant.admin(f"CREATE TABLE {long_name} (id int)")
    verdict = catalog.verify(tenant.url(), Requirement(tables=(long_name,),
                                                        revision_check=False))
    assert verdict.reason is Reason.VERIFIED


def test_names_holding_the_separator_characters_still_match(tenant: Tenant) -> None:
    odd = ["a\x1fb", "c\x1ed", "plain"]
    for name in odd:
        tenant.admin(f'CREATE TABLE "{name}" (id int)')
    verdict = catalog.verify(tenant.url(), Requirement(tables=(*odd, "a"),
                                                        revision_check=False))
    assert verdict.missing_tables == ("a",)


def test_no_declared_tables_is_not_an_error(tenant: Tenant) -> None:
    verdict = catalog.verify(tenant.url(), Requirement(tables=(), revision_check=False))
    assert verdict.reason is Reason.VERIFIED
    assert verdict.message.startswith("no tables declared for schema public")


def test_a_hostile_schema_name_is_only_a_name(tenant: Tenant) -> None:
    tenant.admin("CREATE TABLE a (id int)")
    verdict = catalog.verify(tenant.url(), Requirement(
        schema="public'; DROP TABLE a; --", tables=("a",), revision_check=False))
    assert verdict.reason is Reason.TABLES_ELSEWHERE
    assert "does not exist there" in verdict.message
    assert catalog.verify(tenant.url(), Requirement(tables=("a",), revision_check=False)
                           ).verified


def test_system_identifier_is_none_when_the_role_may_not_read_it(tenant: Tenant) -> None:
    requirement = Requirement(tables=(), revision_check=False)
    identifier = catalog.observe(tenant.url(), requirement).fingerprint.system_identifier
    assert identifier is not None
    assert catalog.observe(tenant.url(), requirement).fingerprint.system_identifier == (
        identifier)  # now read within the catalog statement

    # Function privileges live in each database's catalog: this touches only the tenant's.
    tenant.admin("REVOKE EXECUTE ON FUNCTION pg_catalog.pg_control_system() FROM PUBLIC")
    observation = catalog.observe(tenant.url(), requirement)
    assert observation.fingerprint.system_identifier is None
    assert catalog.observe(tenant.url(), requirement).fingerprint.system_identifier is None


def test_a_lock_on_the_version_table_cannot_hold_the_check(tenant: Tenant) -> None:
    tenant.admin("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
    with psycopg.connect(tenant.server.url(database=tenant.database, driver="postgresql")
                         ) as holder:
        holder.execute("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        verdict = catalog.verify(tenant.url(), Requirement(tables=()), connect_timeout=2)
        elapsed = time.monotonic() - started
    assert verdict.reason is Reason.DATABASE_UNREACHABLE
    assert "no answer within 2 s" in verdict.message
    assert elapsed < 4


def test_connecting_to_a_silent_server_gives_up_at_the_timeout() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        started = time.monotonic()
        verdict = catalog.verify(f"postgresql://app:pw@127.0.0.1:{port}/app",
                                  Requirement(tables=("t",)), connect_timeout=2)
        elapsed = time.monotonic() - started
    assert verdict.reason is Reason.DATABASE_UNREACHABLE
    assert 1.5 < elapsed < 3.5


@pytest.mark.parametrize("password", ["p@ss:word/with?odd&chars", "plain-Secret-123"])
def test_refused_credentials_never_show_the_password(tenant: Tenant, password: str) -> None:
    url = tenant.url(password=password)
    verdict = catalog.verify(url, Requirement(tables=("t",)))
    assert verdict.reason is Reason.AUTHENTICATION_FAILED
    text = str(verdict.to_json())
    assert password not in text and url not in text
    assert tenant.role in verdict.message


def test_scrub_removes_every_spelling_of_the_password() -> None:
    url = "postgresql://app:p%40ss%2Fx@db:5432/app"
    parsed = connect.parse_url(url)
    text = f"failed for p@ss/x, p%40ss%2Fx and {url}"
    assert connect.scrub(text, url, parsed) == "failed for ***, *** and ***"


def test_urls_are_switched_to_psycopg_and_keep_their_options() -> None:
    parsed = connect.parse_url(
        "postgres://app:pw@db:5433/app?options=-csearch_path%3Dapp&sslmode=disable")
    assert parsed.drivername == "postgresql+psycopg"
    assert (parsed.host, parsed.port, parsed.database) == ("db", 5433, "app")
    assert dict(parsed.query) == {"options": "-csearch_path=app", "sslmode": "disable"}
    with pytest.raises(connect.InvalidDatabaseUrl):
        connect.parse_url("sqlite:///app.db")


def test_the_search_of_other_databases_is_bounded(tenant: Tenant) -> None:
    """At most MAX_DATABASES other databases are searched (in name order), so a server
    with hundreds of tenants cannot turn one failed check into hundreds of connections."""
    others = [tenant.add_database(f"{tenant.database}_o{i:02d}")
              for i in range(1, search.MAX_DATABASES + 3)]
    for name in (others[0], others[-1]):  # the first and one past the bound
        tenant.admin("CREATE TABLE ledger (id int)", database=name)
    verdict = catalog.verify(tenant.url(), Requirement(tables=("ledger",),
                                                        revision_check=False))
    assert verdict.reason is Reason.TABLES_ELSEWHERE
    assert [p.database for p in verdict.found_elsewhere] == [others[0]]
