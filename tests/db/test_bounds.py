"""What the tenant's database and URL can cost the operator is bounded: one deadline
for all of a URL's hosts, and a bounded read of whatever the database returns."""

from __future__ import annotations

import contextlib
import resource
import socket
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from schemagate.core.check.verdict import Requirement
from schemagate.core.wire.reasons import Reason
from schemagate.postgres import catalog, connect
from tests.support.database import Tenant

T = TypeVar("T")


@contextlib.contextmanager
def silent_listeners(count: int) -> Iterator[list[int]]:
    """Ports on which the kernel completes every TCP handshake and nothing ever answers
    (nobody calls accept): a server that never answers the startup packet."""
    listeners = [socket.create_server(("127.0.0.1", 0), backlog=16) for _ in range(count)]
    try:
        yield [listener.getsockname()[1] for listener in listeners]
    finally:
        for listener in listeners:
            listener.close()


def test_a_url_naming_four_silent_hosts_is_unreachable_within_one_connect_timeout(
        tenant: Tenant) -> None:
    """libpq waits connect_timeout once per host: 4 hosts held a worker 4 times over."""
    with silent_listeners(4) as ports:
        hosts = ",".join("127.0.0.1" for _ in ports)
        url = (f"postgresql://{tenant.role}:{tenant.password}@/{tenant.database}"
               f"?host={hosts}&port={','.join(map(str, ports))}&sslmode=disable"
               "&gssencmode=disable")
        started = time.monotonic()
        verdict = catalog.verify(url, Requirement(tables=("t",)), connect_timeout=2)
        elapsed = time.monotonic() - started

    assert verdict.reason is Reason.DATABASE_UNREACHABLE
    assert "timeout" in verdict.message
    assert tenant.password not in verdict.message
    assert elapsed < 5.0  # one connect_timeout of 2 s, not 4 x 2 s (loose for a loaded machine)


def test_a_silent_host_before_the_real_one_leaves_it_the_rest_of_the_deadline(
        tenant: Tenant) -> None:
    tenant.admin("CREATE TABLE t (id int)")
    tenant.admin(f"ALTER TABLE t OWNER TO {tenant.role}")
    with silent_listeners(1) as (silent,):
        url = (f"postgresql://{tenant.role}:{tenant.password}@/{tenant.database}"
               f"?host=127.0.0.1,{tenant.server.host}&port={silent},{tenant.server.port}"
               "&sslmode=disable&gssencmode=disable")
        started = time.monotonic()
        verdict = catalog.verify(url, Requirement(tables=("t",), revision_check=False),
                                  connect_timeout=5)
        elapsed = time.monotonic() - started

    assert verdict.reason is Reason.VERIFIED, verdict.message
    assert elapsed < 5.8


def test_a_url_naming_too_many_hosts_is_refused_before_any_connection() -> None:
    url = "postgresql://app:pw@/app?host=" + ",".join(f"h{i}" for i in range(9))
    try:
        catalog.verify(url, Requirement(tables=("t",)))
    except connect.InvalidDatabaseUrl as exc:
        assert str(exc) == ("the URL names 9 hosts, over the limit of 4; each is tried "
                            "within the same deadline")
    else:
        raise AssertionError("a URL naming 9 hosts was used")


def peak_rss_growth(action: Callable[[], T]) -> tuple[T, int]:
    """What `action` returns and how much the process's peak RSS grew meanwhile (bytes)."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = action()
    return result, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024


def owned_view(tenant: Tenant, body: str) -> None:
    tenant.admin(f"CREATE VIEW alembic_version AS {body}")
    tenant.admin(f"ALTER VIEW alembic_version OWNER TO {tenant.role}")


def test_a_version_table_returning_a_200_mb_row_costs_nothing(tenant: Tenant) -> None:
    owned_view(tenant, "SELECT pg_catalog.repeat('x', 200000000) AS version_num")
    url = tenant.url()
    catalog.verify(url, Requirement(tables=()))  # the driver's one-time set-up, not measured
    verdict, grown = peak_rss_growth(lambda: catalog.verify(url, Requirement(tables=())))

    assert verdict.reason is Reason.REVISION_MISMATCH
    assert verdict.message.startswith(
        "the version table public.alembic_version holds a revision longer than 64 "
        "characters, so which revision database ")
    assert verdict.current_revisions is None
    # The server still builds the row; only 65 characters travel. Read whole: 200 MB.
    assert grown < 20 * 1024 * 1024


def test_a_version_table_of_ten_million_rows_costs_nothing(tenant: Tenant) -> None:
    # In the select list, the series streams: the server makes only the rows fetched.
    owned_view(tenant, "SELECT 'r' || pg_catalog.generate_series(1, 10000000) AS version_num")
    url = tenant.url()
    catalog.verify(url, Requirement(tables=()))  # the driver's one-time set-up, not measured
    verdict, grown = peak_rss_growth(lambda: catalog.verify(url, Requirement(tables=())))

    assert verdict.reason is Reason.REVISION_MISMATCH
    assert verdict.message.startswith(
        "the version table public.alembic_version has more than 32 rows (Alembic writes "
        "one per head), so which revision database ")
    assert grown < 20 * 1024 * 1024  # ten million rows read whole: hundreds of MB


def test_a_version_table_of_32_revisions_of_64_characters_is_read(tenant: Tenant) -> None:
    owned_view(tenant, "SELECT pg_catalog.lpad(g::text, 64, 'a') AS version_num "
                       "FROM pg_catalog.generate_series(1, 32) AS g")
    heads = frozenset(str(g).rjust(64, "a") for g in range(1, 33))
    verdict = catalog.verify(tenant.url(), Requirement(tables=(), expected_revisions=heads))

    assert verdict.reason is Reason.VERIFIED, verdict.message
    assert verdict.current_revisions == heads


def test_long_settings_of_the_database_are_cut_by_the_server(tenant: Tenant) -> None:
    # 18 KB: libpq itself refuses a reported setting over 30,000 bytes.
    tenant.admin(f"ALTER ROLE {tenant.role} SET search_path = "
                 + ", ".join(f"s{i:06d}" for i in range(2_000)))
    verdict = catalog.verify(tenant.url(), Requirement(tables=(), revision_check=False))

    assert verdict.fingerprint is not None, verdict.message
    assert verdict.fingerprint.search_path == (", ".join(f"s{i:06d}" for i in range(40))[:256]
                                               + "... (cut)")
    assert verdict.reason is Reason.VERIFIED


def test_a_missing_table_found_in_many_schemas_reports_a_bounded_number(
        tenant: Tenant) -> None:
    tenant.admin("; ".join(f"CREATE SCHEMA s{i:02d}; CREATE TABLE s{i:02d}.t (id int)"
                           for i in range(40)))
    verdict = catalog.verify(tenant.url(), Requirement(tables=("t",)))

    assert verdict.reason is Reason.TABLES_ELSEWHERE
    assert [p.schema for p in verdict.found_elsewhere] == [f"s{i:02d}" for i in range(16)]
