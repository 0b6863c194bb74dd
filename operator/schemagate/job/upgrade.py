"""Alembic run by `schemagate migrate`, in the `run: Alembic` Job's pod (never in the
operator), one migrator at a time.

`upgrade` runs `upgrade heads` of the revision files `job.scripts` laid out, on one
dedicated connection that first takes a session-level advisory lock, so that
several operators, replicas or a restarted operator never migrate one database at once:
whoever gets the lock second finds the heads applied and runs nothing. The whole run is
one transaction (PostgreSQL's DDL is transactional), so a failing revision leaves the
database as it was. If the migrating process dies, `client_connection_check_interval`
makes the server notice the closed socket within about a second, even mid-statement,
and roll back and free the lock; without it a long statement would hold both.

Blocking. Alembic's `op` and `context` are module-level proxies, so within one process
the revisions of only one run may execute at a time; `_ALEMBIC` sees to that. Revision
files are Python, run in this process: it must be one without rights (the Job's pod:
no token, no Service links), never the operator, which `.importlinter` keeps from
importing this package.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from alembic import command
from alembic.runtime.migration import MigrationInfo
from alembic.script.revision import ResolutionError
from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from schemagate.core.tenancy import limits
from schemagate.core.tenancy.scrub import scrub_patterns
from schemagate.core.wire.reasons import Reason
from schemagate.job.scripts import Scripts, alembic_config, error_text, failing_file
from schemagate.postgres.connect import (
    ConnectionFailed,
    connection_failure,
    driver_text,
    endpoint,
    own_params,
    parse_url,
    scrub,
)
from schemagate.postgres.deadlines import whole_seconds
from schemagate.postgres.statements import read_version_table

log = logging.getLogger(__name__)

APPLICATION_NAME = "schemagate-migrator"
#: How often the server checks that the migrator is still there while a statement runs.
CLIENT_CHECK_INTERVAL = "1s"
#: Failures that may pass on a later attempt: a table lock not granted within
#: lock_timeout, a deadlock, a serialization failure.
RETRYABLE_SQLSTATES = frozenset({"55P03", "40P01", "40001"})

SESSION_SETTINGS = """
SELECT pg_catalog.set_config('application_name', %(application_name)s, false),
       pg_catalog.set_config('search_path', pg_catalog.quote_ident(%(schema)s), false),
       pg_catalog.set_config('lock_timeout', %(lock_timeout)s, false),
       pg_catalog.set_config('statement_timeout', %(statement_timeout)s, false),
       pg_catalog.set_config('client_connection_check_interval', %(check)s, false)
"""
VERSION_TABLE_EXISTS = """
SELECT EXISTS (SELECT FROM pg_catalog.pg_class c
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = %(schema)s AND c.relname = %(table)s::name)
"""
# A bigint advisory key shows in pg_locks as classid (high half) and objid (low half).
LOCK_HOLDER_QUERY = """
SELECT a.pid, a.application_name, a.client_addr::text AS client, a.backend_start
FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_catalog.pg_database
                    WHERE datname = pg_catalog.current_database())
  AND ((l.classid::int8 << 32) | l.objid::int8) = %(key)s
"""

_ALEMBIC = threading.Lock()  # see the module's docstring
class MigrationError(Exception):
    """The migration did not run to the end; the text never holds a password."""


class MigrationLockBusy(MigrationError):
    """Another migrator held the database's migration lock for the whole wait: retry later."""


class MigrationFailed(MigrationError):
    """The run failed and rolled back as a whole. `retryable` when a later attempt may
    pass (a table lock not granted in time, a deadlock). The text never holds a password."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True)
class UpgradeResult:
    applied: bool
    before: frozenset[str]
    after: frozenset[str]
    message: str


@dataclass(frozen=True)
class _Settings:
    schema: str
    version_table: str
    version_table_schema: str
    lock_wait_seconds: float
    lock_timeout: str
    statement_timeout: str


def upgrade(url: str, scripts: Scripts, *, schema: str, version_table: str,
            version_table_schema: str, connect_timeout: float = 5,
            lock_wait_seconds: float = 10, lock_timeout: str = "5s",
            statement_timeout: str = "15min") -> UpgradeResult:
    """Run `upgrade heads` of `scripts` on the database at `url` (blocking), unless the
    version table already holds those heads.

    Raises `MigrationLockBusy` when another migrator holds the lock for
    `lock_wait_seconds`, `MigrationFailed` when the run fails (nothing is applied),
    `ConnectionFailed` when the database cannot be reached or refuses the credentials,
    `InvalidDatabaseUrl` for a URL that cannot be used.
    """
    settings = _Settings(schema, version_table, version_table_schema, lock_wait_seconds,
                         lock_timeout, statement_timeout)
    target = parse_url(url)
    engine = create_engine(target, poolclass=NullPool,
                           connect_args=own_params(target, whole_seconds(connect_timeout)))
    try:
        try:
            conn = engine.connect()
        except DBAPIError as exc:
            raise connection_failure(exc, url, target, connect_timeout) from None
        with conn:
            try:
                return _upgrade_on(conn, scripts, settings, target)
            except (MigrationLockBusy, MigrationFailed):
                raise
            except Exception as exc:
                raise _failure(exc, url, target, scripts, settings) from None
    finally:
        engine.dispose()


def lock_key(version_table_schema: str, version_table: str) -> int:
    """The advisory lock key of one version table: the same for every migrator, stable
    across processes and releases (Python's `hash` is neither; PostgreSQL's `hashtext`
    is internal and only 32 bits). Advisory locks are per database already."""
    name = f"schemagate migrations\0{version_table_schema}\0{version_table}".encode()
    return int.from_bytes(hashlib.blake2b(name, digest_size=8).digest(), "big", signed=True)


# The run, on the dedicated connection.

def _upgrade_on(conn: Connection, scripts: Scripts, settings: _Settings,
                target: URL) -> UpgradeResult:
    conn.exec_driver_sql(SESSION_SETTINGS, {
        "application_name": APPLICATION_NAME, "schema": settings.schema,
        "lock_timeout": settings.lock_timeout,
        "statement_timeout": settings.statement_timeout, "check": CLIENT_CHECK_INTERVAL})
    conn.commit()  # session settings outlive the transaction that set them only if committed
    where = (f"{endpoint(target)}, version table "
             f"{settings.version_table_schema}.{settings.version_table}")
    with _migration_lock(conn, lock_key(settings.version_table_schema, settings.version_table),
                         settings.lock_wait_seconds, where), conn.begin():
        before = _current_heads(conn, settings)
        if before == scripts.heads:
            return UpgradeResult(False, before, before,
                                 f"{where} is already at {_names(before)}: nothing to run")
        applied = _run_alembic(conn, scripts, settings)
        after = _current_heads(conn, settings)
    unexpected = "" if after == scripts.heads else f" (the scripts' heads: {_names(scripts.heads)})"
    return UpgradeResult(True, before, after,
                         f"applied {_names(applied)} to {where}: now at {_names(after)}"
                         f"{unexpected}")


@contextlib.contextmanager
def _migration_lock(conn: Connection, key: int, wait_seconds: float,
                    where: str) -> Iterator[None]:
    """Hold the session-level advisory lock `key`, polling for at most `wait_seconds`
    (a blocking `pg_advisory_lock` would wait beyond any bound we could report on)."""
    deadline = time.monotonic() + wait_seconds
    pause = 0.05
    while not _try_lock(conn, key):
        if time.monotonic() >= deadline:
            # application_name is whatever the lock holder chose to call itself.
            raise MigrationLockBusy(scrub_patterns(_lock_busy(conn, key, wait_seconds, where)))
        log.debug("migration lock of %s busy, waiting", where)
        time.sleep(max(0.0, min(pause, deadline - time.monotonic())))
        pause = min(pause * 2, 0.5)
    try:
        yield
    finally:
        # Closing the connection frees the lock as well; unlocking first still matters
        # behind a pooler that keeps the server session open.
        with contextlib.suppress(SQLAlchemyError):
            conn.rollback()
            conn.exec_driver_sql("SELECT pg_catalog.pg_advisory_unlock(%(key)s)", {"key": key})
            conn.commit()


def _try_lock(conn: Connection, key: int) -> bool:
    got = conn.exec_driver_sql("SELECT pg_catalog.pg_try_advisory_lock(%(key)s)",
                               {"key": key}).scalar()
    conn.commit()
    return bool(got)


def _lock_busy(conn: Connection, key: int, waited: float, where: str) -> str:
    """Who holds the lock, as far as pg_stat_activity shows this role (other roles'
    sessions show only their pid and application_name)."""
    holders = conn.exec_driver_sql(LOCK_HOLDER_QUERY, {"key": key}).all()
    conn.commit()
    who = "; ".join(_holder(**row._asdict()) for row in holders)
    return (f"the migration lock of {where} is held by {who or 'a session gone since'}; "
            f"still busy after {waited:g} s, retry later")


def _holder(pid: int, application_name: str | None, client: str | None,
            backend_start: datetime | None) -> str:
    parts = [f"pid {pid}"]
    if application_name:
        parts.append(f"application_name {application_name!r}")
    if client:
        parts.append(f"from {client}")
    if backend_start:
        parts.append(f"connected since {backend_start.isoformat(timespec='seconds')}")
    return ", ".join(parts)


def _current_heads(conn: Connection, settings: _Settings) -> frozenset[str]:
    """The version table's revisions (none while it does not exist), read as the operator
    reads them: a few short rows at most, whatever the table or a view by its name holds."""
    schema, table = settings.version_table_schema, settings.version_table
    if not conn.exec_driver_sql(VERSION_TABLE_EXISTS, {"schema": schema, "table": table}
                                ).scalar():
        return frozenset()
    rows = read_version_table(conn, schema, table)
    if (refused := limits.version_rows_refused(f"{schema}.{table}", rows)) is not None:
        raise MigrationFailed(f"{refused}; nothing was run")
    return frozenset(rows)


def _run_alembic(conn: Connection, scripts: Scripts, settings: _Settings) -> list[str]:
    """`alembic upgrade heads` through our env.py, inside the caller's transaction; the
    revisions applied, in order."""
    applied: list[str] = []

    def record(*, step: MigrationInfo, **_: Any) -> None:
        applied.extend(step.up_revision_ids)

    config = alembic_config(scripts.directory)
    config.attributes["connection"] = conn
    config.attributes["configure"] = {
        "version_table": settings.version_table,
        "version_table_schema": settings.version_table_schema,
        "transaction_per_migration": False,
        "on_version_apply": record,
    }
    if not _ALEMBIC.acquire(timeout=settings.lock_wait_seconds):
        raise MigrationLockBusy("another migration is running in this process; retry later")
    try:
        command.upgrade(config, "heads")
    finally:
        _ALEMBIC.release()
    return applied


# Failures, in the user's words and without the password.

def _failure(exc: Exception, url: str, target: URL, scripts: Scripts,
             settings: _Settings) -> Exception:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return ConnectionFailed(Reason.DATABASE_UNREACHABLE, scrub(
            f"lost the connection to {endpoint(target)} during the migration: "
            f"{driver_text(exc)}; the server rolls back what was not committed", url, target))
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
    hint = {"55P03": f" (not granted within lock_timeout {settings.lock_timeout}: a long "
                     "transaction holds the table?)",
            "57014": f" (statement_timeout is {settings.statement_timeout})",
            "3F000": f" (does schema {settings.schema} exist?)"}.get(sqlstate or "", "")
    if isinstance(exc.__cause__, ResolutionError):
        hint = (" (the version table names a revision these scripts do not contain: did a "
                "newer release migrate this database?)")
    where = failing_file(exc, scripts.directory / "versions")
    text = (f"{where + ': ' if where else ''}{error_text(exc)}{hint}; "
            "nothing was applied (the run rolled back as a whole)")
    return MigrationFailed(scrub(text, url, target), retryable=sqlstate in RETRYABLE_SQLSTATES)


def _names(revisions: frozenset[str] | list[str]) -> str:
    ordered = revisions if isinstance(revisions, list) else sorted(revisions)
    return ", ".join(ordered) if ordered else "no revision"
