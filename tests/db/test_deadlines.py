"""Every check ends within its deadline, whatever the server does: a server that
authenticates and then never answers, or one that freezes in the middle of a query.

The stalled server is the real PostgreSQL behind a proxy that stops forwarding
(`tests.stalling`): the TCP connection stays open and the kernel acknowledges every
byte, so neither connect_timeout nor keepalives can see anything wrong."""

from __future__ import annotations

import threading
import time

import psycopg

from schemagate.core.check.verdict import Requirement
from schemagate.core.wire.reasons import Reason
from schemagate.postgres import catalog, connect
from tests.stalling import PLAIN, Mode, stalling_proxy
from tests.support.database import Tenant


def proxied_url(tenant: Tenant, port: int) -> str:
    return tenant.url(query=PLAIN).replace(f":{tenant.server.port}/", f":{port}/")


def test_a_server_that_authenticates_then_never_answers_is_unreachable_in_time(
        tenant: Tenant) -> None:
    tenant.admin("CREATE TABLE t (id int)")
    with stalling_proxy(tenant.server.host, tenant.server.port, Mode.AFTER_AUTH) as proxy:
        url = proxied_url(tenant, proxy.port)
        # Twice: the first connection also runs the driver's set-up queries, the second
        # goes straight to the check.
        for _ in range(2):
            started = time.monotonic()
            verdict = catalog.verify(url, Requirement(tables=("t",)), connect_timeout=2)
            elapsed = time.monotonic() - started

            assert verdict.reason is Reason.DATABASE_UNREACHABLE
            assert "no answer within 5 s" in verdict.message
            assert "the server stopped answering" in verdict.message
            assert tenant.password not in verdict.message
            assert 4.5 < elapsed < 6.5
        assert proxy.connections == proxy.stalled == 2  # each held after authenticating


def test_a_server_that_freezes_mid_query_is_unreachable_in_time(tenant: Tenant) -> None:
    """The check waits on a lock; the server's own statement_timeout answer is lost with
    the rest: only the wall-clock deadline ends it, without a new connection."""
    tenant.admin("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
    tenant.admin(f"ALTER TABLE alembic_version OWNER TO {tenant.role}")
    with stalling_proxy(tenant.server.host, tenant.server.port) as proxy, \
            psycopg.connect(tenant.server.url(database=tenant.database, driver="postgresql")
                            ) as holder:
        url = proxied_url(tenant, proxy.port)
        assert catalog.verify(url, Requirement(tables=()), connect_timeout=2).reason is \
            Reason.NO_REVISION  # a healthy path first
        holder.execute("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE")
        threading.Timer(1.0, proxy.freeze).start()  # while the check waits on the lock
        before = proxy.connections
        started = time.monotonic()
        verdict = catalog.verify(url, Requirement(tables=()), connect_timeout=2)
        elapsed = time.monotonic() - started

    assert verdict.reason is Reason.DATABASE_UNREACHABLE
    assert "no answer within 5 s" in verdict.message
    assert elapsed < 6.5
    assert proxy.connections == before + 1  # no cancel request, no second connection


def test_the_deadline_callers_wait_for_covers_the_whole_check() -> None:
    # connect (rounded up to whole seconds, at least 2), statements, the grace, and the
    # search of other databases: nothing verify does can take longer.
    assert catalog.check_deadline(5) == 5 + 5 + 1 + 3 * (2 + 2 + 1)
    assert catalog.check_deadline(1) == 2 + 1 + 1 + 15


def test_the_check_is_read_only_and_its_statement_timeout_stays_in_its_transaction(
        tenant: Tenant) -> None:
    """Behind a transaction pooler a session setting would outlive the check on another
    client's session; a transaction-local one cannot."""
    tenant.admin("CREATE TABLE t (id int)")
    verdict = catalog.verify(tenant.url(), Requirement(tables=("t",)), connect_timeout=3)
    assert verdict.reason is Reason.NO_REVISION
    with connect.server_for(connect.parse_url(tenant.url()), 3).engine.connect() as conn:
        # The same role's fresh session keeps the server default.
        assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "0"


def test_the_url_chooses_its_own_keepalives() -> None:
    target = connect.parse_url("postgresql://app:pw@db/app?keepalives_idle=30")
    params = connect.own_params(target, 5)
    assert "keepalives_idle" not in params  # the URL's 30 stays
    assert params["tcp_user_timeout"] == 10_000 and params["keepalives"] == 1


def test_verify_takes_its_connect_timeout_from_the_command_line(tenant: Tenant) -> None:
    """A verify pod passes the spec's connectTimeoutSeconds: the deadline follows it
    (3 s to connect, 3 s of statements, 1 s of grace), not the default 5 s."""
    from tests.db.commands import schemagate_verify

    tenant.admin("CREATE TABLE t (id int)")
    with stalling_proxy(tenant.server.host, tenant.server.port, Mode.AFTER_AUTH) as proxy:
        run = schemagate_verify(proxied_url(tenant, proxy.port), "--table", "t",
                                "--connect-timeout", "3", timeout=60)
    assert run.returncode == 3
    assert run.reason == "DatabaseUnreachable"
    assert "no answer within 7 s" in run.document["message"]
    run.assert_never_shows(tenant.password)


def test_verify_refuses_a_connect_timeout_that_is_not_a_number_of_seconds() -> None:
    from tests.db.commands import schemagate_verify

    run = schemagate_verify("postgresql://app@db.internal/app", "--table", "t",
                            "--connect-timeout", "soon", json_output=False)
    assert run.returncode == 2
    assert "not a number of seconds" in run.stderr
