"""The one module that talks to PostgreSQL (SQLAlchemy and psycopg).

`observe` reads what a `Requirement` asks about, through the backend's own URL: its
host, role, database and query options (`options=-csearch_path=...` included) are
kept; only the driver is switched to psycopg. `verify` turns that into a `Verdict`
and never raises for database errors.

Costs, measured with `bench/verify.py`: every call opens a fresh connection (a cached
engine with `NullPool`), because a pooled connection would go on reporting `Verified`
after the password was rotated or the server moved, which is exactly what must be
seen. `verify_many` answers several requirements on one URL in one such connection
(the operator's schemas that share a database, `reconcile.batch`), equal requirements
with one statement. The declared tables, the fingerprint and the version table's existence come
from one catalog statement with the names bound as one parameter; it returns only the
missing names, so a healthy database sends back one short row.
The version table is then read as Alembic reads it, at most a few short rows of it.
Only when tables are missing do we search further: other schemas come with the same
query, other databases (at most `MAX_DATABASES`) with one short connection each, and
not again while the same tables are missing when the caller passes what was found
(`OtherDatabases`).
Declared columns are checked in the same statement, the same way: one count of the
columns that match as declared, and only when it falls short, which ones do not and what
their tables hold instead. `snapshot` reads the columns of named tables, for
`schemagate snapshot`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import re
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import (
    conninfo_attempts,
    conninfo_to_dict,
    make_conninfo,
    timeout_from_conninfo,
)
from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import NullPool

from schemagate.core.check.columns import ColumnFinding, ColumnRequirement, FoundColumn
from schemagate.core.check.snapshot import Snapshot
from schemagate.core.check.verdict import (
    Fingerprint,
    Observation,
    Place,
    Requirement,
    Verdict,
    connection_failed,
    decide,
)
from schemagate.core.tenancy import limits
from schemagate.core.tenancy import scrub as scrubbing
from schemagate.core.wire.reasons import Reason

log = logging.getLogger(__name__)

DRIVER = "postgresql+psycopg"
#: Other databases of the server searched for missing tables, in name order.
MAX_DATABASES = 20
#: Connect and query budget for each of those other databases (libpq's minimum is 2 s).
OTHER_DATABASE_TIMEOUT = 2.0
#: Threads searching the other databases at once.
SEARCH_WORKERS = 8
#: After the statement timeout, how long a server may take to say so before its socket is
#: shut down: a frozen server (SIGSTOP, a proxy that stopped forwarding) never says anything.
SILENCE_GRACE = 1.0
#: TCP keepalives and TCP_USER_TIMEOUT (libpq's names): a peer gone from the network is
#: noticed by the kernel within about 10 s even mid-read. The URL's own values win.
SOCKET_TIMEOUTS = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2,
                   "keepalives_count": 3, "tcp_user_timeout": 10_000}
#: What `pg_class.relkind` counts as a table, as SQLAlchemy's `has_table` does:
#: ordinary, partitioned, view, materialized view, foreign table.
TABLE_KINDS = "('r', 'p', 'v', 'm', 'f')"

# The declared columns travel as four bound texts split on the same separator (table,
# column, type, nullability 't'/'f'; an empty type or nullability is not checked), zipped
# by ROWS FROM. A column counts only in the target schema's table of that name (never one
# found through search_path), only if not dropped, and its type is what `format_type`
# prints. Names compare as `name`, byte for byte, like the tables.
# Written out in both branches of its CASE rather than as a CTE: a CTE used twice is
# materialized, which spills 100,000 rows to disk before the count can start.
COLUMNS_DECLARED = """ROWS FROM (
      pg_catalog.unnest(pg_catalog.string_to_array(%(column_tables)s, %(separator)s)),
      pg_catalog.unnest(pg_catalog.string_to_array(%(column_names)s, %(separator)s)),
      pg_catalog.unnest(pg_catalog.string_to_array(%(column_types)s, %(separator)s)),
      pg_catalog.unnest(pg_catalog.string_to_array(%(column_nullable)s, %(separator)s))
    ) WITH ORDINALITY AS d(tbl, col, typ, nul, position)"""
COLUMN_MATCHES = """(COALESCE(d.typ, '') = ''
        OR pg_catalog.format_type(a.atttypid, a.atttypmod) = d.typ)
      AND (COALESCE(d.nul, '') = '' OR a.attnotnull = (d.nul = 'f'))"""
COLUMN_FINDINGS = f"""  CASE WHEN %(column_count)s = 0 OR (
    SELECT count(*) FROM {COLUMNS_DECLARED}
    JOIN pg_catalog.pg_class c ON c.relnamespace = (SELECT oid FROM target)
      AND c.relname = d.tbl::name AND c.relkind IN {TABLE_KINDS}
    JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = d.col::name
      AND a.attnum > 0 AND NOT a.attisdropped
    WHERE {COLUMN_MATCHES}
  ) = %(column_count)s THEN '{{{{}}}}'::text[] ELSE ARRAY(
    SELECT ARRAY[d.tbl, d.col, pg_catalog.format_type(a.atttypid, a.atttypmod),
                 (NOT a.attnotnull)::text, (
      SELECT pg_catalog.string_agg(s.attname::text, %(separator)s ORDER BY s.attnum)
      FROM (SELECT s.attname, s.attnum FROM pg_catalog.pg_attribute s
            WHERE a.attname IS NULL AND s.attrelid = c.oid AND s.attnum > 0
              AND NOT s.attisdropped
              AND pg_catalog.lower(s.attname::text) = pg_catalog.lower(d.col)
            ORDER BY s.attnum LIMIT {limits.MAX_SIMILAR}) s)]
    FROM {COLUMNS_DECLARED}
    JOIN pg_catalog.pg_class c ON c.relnamespace = (SELECT oid FROM target)
      AND c.relname = d.tbl::name AND c.relkind IN {TABLE_KINDS}
    LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = d.col::name
      AND a.attnum > 0 AND NOT a.attisdropped
    WHERE a.attname IS NULL OR NOT ({COLUMN_MATCHES})
    ORDER BY d.position
  ) END AS column_findings,"""  # noqa: S608 (only module constants are formatted in)

# Who and where the session is, every text cut by the server one character over the limit
# (the setting a role or database was given can be as long as it was written), so a longer
# one is never transferred and can still be told apart.
_CUT = limits.MAX_DATABASE_TEXT + 1
SERVER_TEXTS = f"""  pg_catalog.left(pg_catalog.current_database()::text, {_CUT}) AS database,
  pg_catalog.host(pg_catalog.inet_server_addr()) AS host,
  pg_catalog.inet_server_port() AS port,
  pg_catalog.left(CURRENT_USER::text, {_CUT}) AS "user",
  pg_catalog.left(pg_catalog.current_setting('search_path'), {_CUT}) AS search_path,
  ARRAY(SELECT pg_catalog.left(s.name, {_CUT})
        FROM pg_catalog.unnest(pg_catalog.current_schemas(true)) WITH ORDINALITY AS s(name, i)
        ORDER BY s.i LIMIT {limits.MAX_SEARCH_PATH}) AS effective_search_path,
  pg_catalog.left(pg_catalog.current_setting('server_version'), {_CUT}) AS server_version,"""  # noqa: S608 (only module constants are formatted in)

# One round trip answers the whole requirement. The names travel as one bound text
# parameter, split on a separator that occurs in none of them (a 10,000-element array
# parameter costs more to encode than the whole query costs to run), and are cast to
# `name` so they compare as PostgreSQL stores them: byte for byte, truncated at 63 bytes
# as identifiers are. The array sits in a sub-select, so the planner does not estimate
# each element. The common case, every table present, is one index scan counting
# matches; only when the count falls short is the rest evaluated (CASE evaluates its
# sub-selects lazily): which names are missing, and in which other schemas they exist.
# Schemas `pg_*` and `information_schema` are the system's own. `{system_identifier}` is
# the function call once the role is known to be allowed it (its privilege is checked
# when the statement starts, so it cannot hide behind a CASE), else NULL.
CATALOG_QUERY = f"""
WITH target AS (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = %(schema)s),
declared AS (SELECT pg_catalog.string_to_array(%(names)s, %(separator)s) AS names)
SELECT
{SERVER_TEXTS}
  pg_catalog.has_function_privilege('pg_catalog.pg_control_system()', 'EXECUTE')
    AS may_read_control,
  {{system_identifier}} AS system_identifier,
  EXISTS (SELECT FROM target) AS schema_exists,
  EXISTS (SELECT FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = %(version_schema)s AND c.relname = %(version_table)s::name
            AND c.relkind IN {TABLE_KINDS}) AS has_version_table,
  CASE WHEN (
    SELECT count(*) FROM pg_catalog.pg_class q
    WHERE q.relnamespace = (SELECT oid FROM target) AND q.relkind IN {TABLE_KINDS}
      AND q.relname = ANY((SELECT names FROM declared)::name[])
  ) = (SELECT pg_catalog.cardinality(names) FROM declared) THEN '{{{{}}}}'::text[] ELSE ARRAY(
    SELECT ARRAY[d.name, e.nspname::text]
    FROM declared, pg_catalog.unnest(declared.names) WITH ORDINALITY AS d(name, position)
    LEFT JOIN LATERAL (
      SELECT n.nspname FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relname = d.name::name AND c.relkind IN {TABLE_KINDS}
        AND n.nspname <> %(schema)s AND n.nspname <> 'information_schema'
        AND n.nspname !~ '^pg_'
      ORDER BY n.nspname LIMIT {limits.MAX_PLACES}
    ) e ON true
    WHERE NOT EXISTS (
      SELECT FROM pg_catalog.pg_class p
      WHERE p.relnamespace = (SELECT oid FROM target) AND p.relname = d.name::name
        AND p.relkind IN {TABLE_KINDS})
    ORDER BY d.position, e.nspname
  ) END AS missing,
{COLUMN_FINDINGS}
  ARRAY(
    SELECT datname::text FROM pg_catalog.pg_database
    WHERE NOT datistemplate AND datallowconn AND datname <> pg_catalog.current_database()
      AND pg_catalog.has_database_privilege(oid, 'CONNECT')
    ORDER BY datname LIMIT {MAX_DATABASES}
  ) AS other_databases
"""  # noqa: S608 (only module constants are formatted in; every value is bound)
# The version table as Alembic reads it (`SELECT version_num`), bounded. The numbers are
# module constants; the table is quoted by the driver.
VERSION_QUERY = "SELECT pg_catalog.left(version_num::text, {cut}) FROM {table} LIMIT {rows}"
READ_SYSTEM_IDENTIFIER = "(SELECT system_identifier::text FROM pg_catalog.pg_control_system())"
SYSTEM_IDENTIFIER_QUERY = f"SELECT {READ_SYSTEM_IDENTIFIER}"  # noqa: S608 (a constant)

ELSEWHERE_QUERY = f"""
SELECT e.nspname::text, d.name
FROM pg_catalog.unnest(pg_catalog.string_to_array(%(names)s, %(separator)s))
  WITH ORDINALITY AS d(name, position)
JOIN LATERAL (
  SELECT n.nspname FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relname = d.name::name AND c.relkind IN {TABLE_KINDS}
    AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
  ORDER BY n.nspname LIMIT {limits.MAX_PLACES}
) e ON true
ORDER BY d.position, e.nspname
"""  # noqa: S608 (only module constants are formatted in)

# `schemagate snapshot`: the named tables' live columns in order, and which are missing.
SNAPSHOT_QUERY = f"""
WITH target AS (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = %(schema)s),
declared AS (
  SELECT d.name, d.position
  FROM pg_catalog.unnest(pg_catalog.string_to_array(%(names)s, %(separator)s))
    WITH ORDINALITY AS d(name, position)
)
SELECT
{SERVER_TEXTS}
  EXISTS (SELECT FROM target) AS schema_exists,
  ARRAY(
    SELECT d.name FROM declared d
    WHERE NOT EXISTS (
      SELECT FROM pg_catalog.pg_class p
      WHERE p.relnamespace = (SELECT oid FROM target) AND p.relname = d.name::name
        AND p.relkind IN {TABLE_KINDS})
    ORDER BY d.position
  ) AS missing,
  ARRAY(
    SELECT ARRAY[d.name, a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod),
                 (NOT a.attnotnull)::text]
    FROM declared d
    JOIN pg_catalog.pg_class c ON c.relnamespace = (SELECT oid FROM target)
      AND c.relname = d.name::name AND c.relkind IN {TABLE_KINDS}
    JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
      AND NOT a.attisdropped
    ORDER BY d.position, a.attnum
  ) AS columns
"""  # noqa: S608 (only module constants are formatted in; every value is bound)

# The server's own words for refusing a role (libpq reports no SQLSTATE for them).
_AUTH_REFUSED = re.compile(
    r"authentication failed|no password supplied|pg_hba\.conf|role \".*\" does not exist",
    re.IGNORECASE)
_BAD_OPTION = re.compile(r"invalid \S+ value|invalid connection option|invalid port",
                         re.IGNORECASE)


class InvalidDatabaseUrl(ValueError):
    """The URL cannot be used as a PostgreSQL URL; the text never holds the password."""


class ConnectionFailed(Exception):
    """The database could not be read. `reason` is `DatabaseUnreachable` or
    `AuthenticationFailed`; the text says why and never holds the password."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def parse_url(url: str) -> URL:
    """The backend's URL with the psycopg driver, its own settings kept.

    Accepts `postgres://`, `postgresql://` and `postgresql+<driver>://`; raises
    `InvalidDatabaseUrl` otherwise.
    """
    text = url.strip()
    if not text:
        raise InvalidDatabaseUrl("the URL is empty")
    try:
        parsed = make_url(text)
    except (ArgumentError, ValueError) as exc:
        detail = "the port is not a number" if isinstance(exc, ValueError) else "not a URL"
        raise InvalidDatabaseUrl(
            f"{detail}; expected postgresql://user:password@host:port/database") from None
    backend = parsed.drivername.partition("+")[0]
    if backend not in ("postgres", "postgresql"):
        raise InvalidDatabaseUrl(
            f"{backend}:// is not a PostgreSQL URL; expected postgresql://...") from None
    if parsed.host and "@" in parsed.host:
        raise InvalidDatabaseUrl(
            "the host part contains '@'; percent-encode '@' in the password as %40") from None
    parsed = parsed.set(drivername=DRIVER)
    try:
        params = _connect_params(parsed, 2)
        make_conninfo("", **params)
    except psycopg.ProgrammingError as exc:
        raise InvalidDatabaseUrl(scrub(_one_line(exc), text, parsed)) from None
    if (too_many := limits.too_many_hosts(_host_count(params))) is not None:
        raise InvalidDatabaseUrl(f"{too_many}; each is tried within the same deadline")
    return parsed


def _host_count(params: dict[str, Any]) -> int:
    """The hosts libpq would try, as the driver's parameters list them (comma-separated
    `host` or `hostaddr`, however the URL spelt them)."""
    return max(len(str(params.get(key) or "").split(",")) for key in ("host", "hostaddr"))


def url_hosts(url: str) -> list[str | None]:
    """The hosts the URL connects to, as libpq reads what psycopg is given: each `host`
    (the URL's, or its `host=` option, which wins; comma-separated for several), or its
    `hostaddr` where one is given (libpq then connects to that address, and the name only
    serves authentication); None: the local socket. Raises `InvalidDatabaseUrl` as
    `parse_url` does."""
    params = _connect_params(parse_url(url), 2)
    hosts, addresses = _listed(params.get("host")), _listed(params.get("hostaddr"))
    return [address or host for host, address in itertools.zip_longest(hosts, addresses)]


def _listed(value: object) -> list[str | None]:
    return [h.strip() or None for h in str(value).split(",")] if value else [None]


@dataclass(frozen=True)
class OtherDatabases:
    """What a previous check found in the server's other databases for these missing
    tables: while the same tables are missing, that search (a connection per database)
    is not made again."""

    missing: frozenset[str]
    places: tuple[Place, ...]


#: One schema's question in a shared pass: its requirement, and what the other databases
#: were last seen to hold for it (None: search them if tables are missing).
Asked = tuple[Requirement, OtherDatabases | None]


def verify(url: str, requirement: Requirement, *, connect_timeout: float = 5.0,
           known: OtherDatabases | None = None) -> Verdict:
    """Verify `requirement` against the database at `url` (blocking).

    Never raises for database errors: they become `DatabaseUnreachable` or
    `AuthenticationFailed` verdicts. Raises `InvalidDatabaseUrl` for a URL that
    cannot be used at all.
    """
    return verify_many(url, [(requirement, known)], connect_timeout=connect_timeout)[0]


def verify_many(url: str, asked: Sequence[Asked], *,
                connect_timeout: float = 5.0) -> list[Verdict]:
    """`verify` for several requirements on one URL, in one connection; one verdict each,
    in order. Equal requirements cost one catalog statement between them."""
    started = time.perf_counter()
    try:
        observations = observe_many(url, asked, connect_timeout=connect_timeout)
    except ConnectionFailed as exc:
        return [connection_failed(requirement, exc.reason, exc.message,
                                  duration_ms=_ms_since(started)) for requirement, _ in asked]
    return [decide(requirement, observation)
            for (requirement, _), observation in zip(asked, observations, strict=True)]


def observe(url: str, requirement: Requirement, *,
            connect_timeout: float = 5.0) -> Observation:
    """What the database at `url` shows for `requirement`.

    Raises `ConnectionFailed` when it cannot be read, `InvalidDatabaseUrl` for a URL
    that cannot be used. `connect_timeout` bounds the connection (libpq rounds it up to
    whole seconds, at least 2) and, separately, the queries.
    """
    return observe_many(url, [(requirement, None)], connect_timeout=connect_timeout)[0]


def observe_many(url: str, asked: Sequence[Asked], *,
                 connect_timeout: float = 5.0) -> list[Observation]:
    """`observe` for each of `asked`, in one connection to `url`."""
    started = time.perf_counter()
    target = parse_url(url)
    server = _server(target, _whole_seconds(connect_timeout))
    seen: dict[Requirement, tuple[dict[str, Any], tuple[frozenset[str] | None, str | None]]] = {}
    with _session(server, url, target, connect_timeout) as conn:
        distinct = list(dict.fromkeys(requirement for requirement, _ in asked))
        for requirement, row in zip(distinct, _read_catalogs(conn, server, distinct),
                                    strict=True):
            current: tuple[frozenset[str] | None, str | None] = (None, None)
            if requirement.revision_check and row["has_version_table"]:
                current = _current_revisions(conn, requirement)
            seen[requirement] = (row, current)
    searched: dict[tuple[str, ...], list[Place]] = {}
    observations = []
    for requirement, known in asked:
        row, current = seen[requirement]
        missing = dict.fromkeys(name for name, _ in row["missing"])
        found_elsewhere = [Place(table=name, schema=schema, database=row["database"])
                           for name, schema in row["missing"] if schema is not None]
        if missing and known is not None and known.missing == frozenset(missing):
            found_elsewhere += known.places
        elif missing and row["other_databases"]:
            names = tuple(missing)
            if names not in searched:
                searched[names] = _search_databases(row["other_databases"], list(names), url,
                                                    target)
            found_elsewhere += searched[names]
        observations.append(Observation(
            present_tables=frozenset(requirement.tables).difference(missing),
            current_revisions=current[0],
            version_table_refused=current[1],
            found_elsewhere=tuple(found_elsewhere),
            fingerprint=_fingerprint(row, target),
            schema_exists=row["schema_exists"],
            duration_ms=_ms_since(started),
            column_findings=tuple(_column_finding(item, row["separator"])
                                  for item in row["column_findings"]),
        ))
    return observations


def in_other_databases(verdict: Verdict) -> OtherDatabases | None:
    """What `verdict` found in other databases of the server, to pass as `known` to the
    next check of the same requirement (None when it read nothing)."""
    if verdict.fingerprint is None:
        return None
    here = verdict.fingerprint.database
    return OtherDatabases(frozenset(verdict.missing_tables),
                          tuple(p for p in verdict.found_elsewhere if p.database != here))


def snapshot(url: str, schema: str, tables: Sequence[str], *, connect_timeout: float = 5.0,
             query_timeout: float = 60.0) -> Snapshot:
    """The columns of `tables` in `schema` at `url`, as `schemagate snapshot` prints them.

    One statement, cancelled after `query_timeout` (a CI step may read 10,000 tables);
    raises `ConnectionFailed` or `InvalidDatabaseUrl` as `observe` does.
    """
    target = parse_url(url)
    server = _server(target, _whole_seconds(connect_timeout))
    asked = tuple(dict.fromkeys(tables))
    joined, separator = _joined(asked)
    with _session(server, url, target, connect_timeout, query_timeout) as conn:
        row = conn.exec_driver_sql(SNAPSHOT_QUERY, {
            "schema": schema, "names": joined, "separator": separator}).one()._asdict()
    row.update(system_identifier=None)
    missing = tuple(row["missing"])
    return Snapshot(
        schema=schema,
        tables=tuple(t for t in asked if t not in set(missing)),
        columns=tuple(ColumnRequirement(table=table, name=name, type=type_,
                                        nullable=nullable == "true")
                      for table, name, type_, nullable in row["columns"]),
        missing_tables=missing,
        fingerprint=_fingerprint(row, target),
        schema_exists=row["schema_exists"],
    )


def scrub(text: str, url: str, parsed: URL | None = None) -> str:
    """`text` without the password of `url`, in any spelling a driver might echo, and
    without any other URL password or DSN password (`schemagate.core.tenancy.scrub`)."""
    passwords = [] if parsed is None else [parsed.password, _query_value(parsed, "password")]
    return scrubbing.scrub(text, url, *(p for p in passwords if isinstance(p, str) and p))


# Connections.

@dataclass
class _Server:
    """A cached engine for one URL (for the dialect's one-time setup queries; NullPool
    still opens a fresh connection per check, see the module's docstring), and whether
    the role may read `pg_control_system()`, learnt on the first check."""

    engine: Engine
    control_readable: bool | None = None


@lru_cache(maxsize=32)
def _server(url: URL, connect_timeout: int) -> _Server:
    engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT",
                           connect_args=_own_params(url, connect_timeout))
    event.listen(engine, "do_connect", _guarded_connect)
    return _Server(engine)


@contextlib.contextmanager
def _session(server: _Server, url: str, target: URL, connect_timeout: float,
             query_timeout: float | None = None) -> Iterator[Connection]:
    """A fresh connection in a read-only transaction whose statements the server cancels
    after `query_timeout` (default: `connect_timeout`), and whose socket is shut down if
    the server has said nothing by the session's wall-clock deadline; driver errors leave
    as `ConnectionFailed` (or `InvalidDatabaseUrl`), without the password."""
    timeout = connect_timeout if query_timeout is None else query_timeout
    with _Silence(_session_budget(connect_timeout, timeout)) as silence:
        try:
            conn = server.engine.connect()
        except DBAPIError as exc:
            if silence.fired:
                raise _silent(silence, target) from None
            raise _connection_failure(exc, url, target, connect_timeout) from None
        try:
            with conn:
                conn.info["statement_timeout"] = timeout
                _begin(conn, timeout)
                yield conn
        except DBAPIError as exc:
            if silence.fired:
                raise _silent(silence, target) from None
            raise _query_failure(exc, url, target, timeout) from None


def _silent(silence: _Silence, target: URL) -> ConnectionFailed:
    return ConnectionFailed(Reason.DATABASE_UNREACHABLE,
                            f"connected to {_endpoint(target)} but no answer within "
                            f"{silence.seconds:g} s: the server stopped answering (frozen, "
                            "or a proxy in between stalled); the connection was closed")


def _fingerprint(row: dict[str, Any], target: URL) -> Fingerprint:
    text = limits.database_text
    return Fingerprint(
        host=row["host"] or target.host or _query_value(target, "host"),
        port=row["port"] or target.port,
        database=row["database"],
        user=row["user"],
        search_path=text(row["search_path"]) or "",
        server_version=text(row["server_version"]) or "",
        system_identifier=row["system_identifier"],
        effective_search_path=tuple(text(name) or "" for name in row["effective_search_path"]),
    )


def _read_catalogs(conn: Connection, server: _Server,
                   requirements: Sequence[Requirement]) -> list[dict[str, Any]]:
    """The catalog rows of several requirements: sent together in one round trip
    (psycopg's pipeline mode) once the role's right to the system identifier is known;
    the first statement to this server learns it."""
    rows: list[dict[str, Any]] = []
    rest = list(requirements)
    if server.control_readable is None or len(rest) == 1:
        rows.append(_read_catalog(conn, server, rest.pop(0)))
    if not rest:
        return rows
    pg: Any = conn.connection.driver_connection
    query = CATALOG_QUERY.format(system_identifier=READ_SYSTEM_IDENTIFIER
                                 if server.control_readable else "NULL::text")
    asked = [_catalog_params(requirement) for requirement in rest]
    try:
        with pg.pipeline():
            cursors = [pg.execute(query, params) for params in asked]
    except psycopg.errors.InsufficientPrivilege:
        server.control_readable = False  # revoked since; ask one by one, without it
        return rows + [_read_catalog(conn, server, requirement) for requirement in rest]
    for cursor, params in zip(cursors, asked, strict=True):
        names = [column.name for column in cursor.description or ()]
        row = dict(zip(names, cursor.fetchone() or (), strict=True))
        row["separator"] = params["separator"]
        rows.append(row)
    return rows


def _read_catalog(conn: Connection, server: _Server,
                  requirement: Requirement) -> dict[str, Any]:
    """The catalog row for `requirement`, with the system identifier when permitted."""
    params = _catalog_params(requirement)
    row = _catalog_row(conn, server, params)
    row["separator"] = params["separator"]
    return row


def _catalog_params(requirement: Requirement) -> dict[str, Any]:
    columns = requirement.columns
    texts = [requirement.tables, [c.table for c in columns], [c.name for c in columns],
             [c.type or "" for c in columns],
             ["" if c.nullable is None else "tf"[not c.nullable] for c in columns]]
    joined, separator = _joined_all(texts)
    params = {
        "schema": requirement.schema,
        "version_schema": requirement.version_table_schema,
        "version_table": requirement.version_table,
        "names": joined[0],
        "column_tables": joined[1],
        "column_names": joined[2],
        "column_types": joined[3],
        "column_nullable": joined[4],
        "column_count": len(columns),
        "separator": separator,
    }
    return params


def _catalog_row(conn: Connection, server: _Server, params: dict[str, Any]) -> dict[str, Any]:
    if server.control_readable:
        try:
            return conn.exec_driver_sql(CATALOG_QUERY.format(
                system_identifier=READ_SYSTEM_IDENTIFIER), params).one()._asdict()
        except DBAPIError as exc:
            if not isinstance(exc.orig, psycopg.errors.InsufficientPrivilege):
                raise
            server.control_readable = False  # revoked since; ask without it
            conn.exec_driver_sql("ROLLBACK")  # the failed statement ended the transaction
            _begin(conn, conn.info["statement_timeout"])
    row = conn.exec_driver_sql(CATALOG_QUERY.format(system_identifier="NULL::text"),
                               params).one()._asdict()
    server.control_readable = bool(row["may_read_control"])
    if server.control_readable:
        row["system_identifier"] = conn.exec_driver_sql(SYSTEM_IDENTIFIER_QUERY).scalar()
    return row


def _column_finding(item: Sequence[str | None], separator: str) -> ColumnFinding:
    """One `column_findings` element: table, column, type, nullable, similar names."""
    table, name, type_, nullable, similar = item
    assert table is not None and name is not None
    found = None if type_ is None else FoundColumn(type=type_, nullable=nullable == "true")
    return ColumnFinding(table=table, name=name, found=found,
                         similar=tuple(similar.split(separator)) if similar else ())


def _joined(names: Sequence[str]) -> tuple[str, str]:
    """`names` joined on a character that occurs in none of them (identifiers may hold
    any character but NUL), and that character."""
    joined, separator = _joined_all([names])
    return joined[0], separator


def _joined_all(lists: Sequence[Sequence[str]]) -> tuple[list[str], str]:
    """Each of `lists` joined on one character that occurs in none of their items."""
    candidates = itertools.chain(map(chr, range(0x1F, 0, -1)), map(chr, itertools.count(0xE000)))
    for separator in candidates:
        joined = [separator.join(items) for items in lists]
        if all(text.count(separator) == max(len(items) - 1, 0)
               for text, items in zip(joined, lists, strict=True)):
            return joined, separator
    raise AssertionError("unreachable: the candidates are endless")


def _own_params(url: URL, connect_timeout: int) -> dict[str, Any]:
    """What we add to the backend's settings: a bound on connecting, and a name in
    pg_stat_activity when the URL gives none. A shorter `connect_timeout` in the URL
    stays; nothing else of the URL is overridden."""
    own = _query_value(url, "connect_timeout")
    with contextlib.suppress(ValueError):
        if own is not None and 0 < float(own) < connect_timeout:
            connect_timeout = _whole_seconds(float(own))
    sockets = {k: v for k, v in SOCKET_TIMEOUTS.items() if _query_value(url, k) is None}
    return {**sockets, "connect_timeout": connect_timeout,
            "fallback_application_name": "schemagate"}


def _connect_params(url: URL, connect_timeout: int) -> dict[str, Any]:
    """psycopg's keyword arguments for `url`, as SQLAlchemy's dialect builds them."""
    _, params = url.get_dialect()().create_connect_args(url)
    return {**params, **_own_params(url, connect_timeout)}


def _query_value(url: URL, key: str) -> str | None:
    value = url.query.get(key)
    if isinstance(value, tuple):
        return value[-1] if value else None
    return value


def _current_revisions(conn: Connection, requirement: Requirement
                       ) -> tuple[frozenset[str] | None, str | None]:
    """The revisions in the version table, or None and why it was not read as such."""
    schema = requirement.version_table_schema or requirement.schema
    rows = read_version_table(conn, schema, requirement.version_table)
    refused = limits.version_rows_refused(f"{schema}.{requirement.version_table}", rows)
    return (None, refused) if refused else (frozenset(rows), None)


def read_version_table(conn: Connection, schema: str, table: str) -> list[str]:
    """The version table's first rows, at most one more than `limits.MAX_VERSION_ROWS`,
    each cut by the server one character over `limits.MAX_REVISION`: a view that returns
    a 300 MB row or ten million rows sends back a few bytes."""
    query = sql.SQL(VERSION_QUERY).format(
        table=sql.Identifier(schema, table), cut=limits.MAX_REVISION + 1,
        rows=limits.MAX_VERSION_ROWS + 1)
    pg: Any = conn.connection.driver_connection
    # Run without parameters, so nothing in the quoted names is read as a placeholder.
    rows = conn.exec_driver_sql(query.as_string(pg)).all()
    return [row[0] for row in rows if row[0] is not None]


def _search_databases(databases: list[str], names: list[str], url: str,
                      target: URL) -> list[Place]:
    """Where `names` exist in the other `databases` the role can connect to. A database
    that refuses or times out is skipped: this only explains a failure, never causes one."""
    joined, separator = _joined(names)
    query_params = {"names": joined, "separator": separator}

    def search(database: str) -> list[Place]:
        params = _connect_params(target.set(database=database),
                                 _whole_seconds(OTHER_DATABASE_TIMEOUT))
        try:
            with _Silence(_session_budget(OTHER_DATABASE_TIMEOUT, OTHER_DATABASE_TIMEOUT)
                          ) as silence, _connect_within(make_conninfo("", **params),
                                                        autocommit=True) as conn:
                silence.attach(conn)
                conn.execute("BEGIN READ ONLY")
                conn.execute("SELECT pg_catalog.set_config('statement_timeout', %s, true)",
                             (f"{round(OTHER_DATABASE_TIMEOUT * 1000)}ms",))
                rows = conn.execute(ELSEWHERE_QUERY, query_params).fetchall()
        except psycopg.Error as exc:
            log.debug("not searching database %s: %s", database,
                      scrub(_one_line(exc), url, target))
            return []
        return [Place(table=table, schema=schema, database=database) for schema, table in rows]

    with ThreadPoolExecutor(max_workers=min(SEARCH_WORKERS, len(databases))) as pool:
        return [place for places in pool.map(search, databases) for place in places]


# Failures, in the user's words and without the password.

def _connection_failure(exc: DBAPIError, url: str, target: URL,
                        connect_timeout: float) -> Exception:
    detail = scrub(_driver_text(exc), url, target)
    if isinstance(exc.orig, psycopg.ProgrammingError) or _BAD_OPTION.search(detail):
        return InvalidDatabaseUrl(detail)
    who = f"{_endpoint(target)} as {target.username or 'the default role'}"
    if getattr(exc.orig, "sqlstate", None) in ("28P01", "28000") or _AUTH_REFUSED.search(detail):
        return ConnectionFailed(Reason.AUTHENTICATION_FAILED,
                                f"{who}: the server refused the credentials ({detail}); "
                                "check the user and password in the URL")
    if "timeout" in detail.lower():
        detail += f" (after {_whole_seconds(connect_timeout)} s)"
    return ConnectionFailed(Reason.DATABASE_UNREACHABLE, f"cannot connect to {who}: {detail}")


def _query_failure(exc: DBAPIError, url: str, target: URL, timeout: float) -> ConnectionFailed:
    detail = scrub(_driver_text(exc), url, target)
    if isinstance(exc.orig, psycopg.errors.QueryCanceled):
        detail = f"no answer within {timeout:g} s, cancelled (a lock on the version table?)"
    return ConnectionFailed(Reason.DATABASE_UNREACHABLE,
                            f"connected to {_endpoint(target)} but the check failed: {detail}")


def _endpoint(url: URL) -> str:
    host = url.host or _query_value(url, "host") or "the local socket"
    port = f":{url.port}" if url.port else ""
    return f"database {url.database or '(default)'} on {host}{port}"


def _driver_text(exc: DBAPIError) -> str:
    return _one_line(exc.orig) if exc.orig is not None else type(exc).__name__


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text.removeprefix("connection failed: ").removeprefix("connection is bad: ")


def _whole_seconds(seconds: float) -> int:
    return max(2, math.ceil(seconds))


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


# Deadlines. libpq's connect_timeout bounds the handshake, a transaction-local
# statement_timeout bounds each statement on a server that still works, keepalives and
# TCP_USER_TIMEOUT bound a peer that left the network. What none of them bounds is a
# server that accepted, authenticated and then froze: its kernel still acknowledges
# every packet. `_Silence` shuts that socket down from a timer thread at the session's
# wall-clock deadline, which wakes the blocked read at once; a cancel request would need
# a new connection to the same frozen server.

def check_deadline(connect_timeout: float) -> float:
    """The most `verify` can take for a `connect_timeout`, other databases searched:
    callers that wait on it from elsewhere give up after this."""
    search_rounds = math.ceil(MAX_DATABASES / SEARCH_WORKERS)
    return (_session_budget(connect_timeout, connect_timeout)
            + search_rounds * _session_budget(OTHER_DATABASE_TIMEOUT, OTHER_DATABASE_TIMEOUT))


def server_of(url: str) -> str:
    """The server a URL reaches ("host:port", or the local socket), for the caller's
    per-server bounds; an unusable URL is its own server."""
    try:
        target = parse_url(url)
    except InvalidDatabaseUrl:
        return "(invalid URL)"
    host = target.host or _query_value(target, "host") or "local socket"
    return f"{host}:{target.port or _query_value(target, 'port') or 5432}"


def _session_budget(connect_timeout: float, query_timeout: float) -> float:
    return _whole_seconds(connect_timeout) + query_timeout + SILENCE_GRACE


class _Silence:
    """Shuts down the socket of the connection attached to it when `seconds` have passed
    since it was armed; `fired` says it did. It holds a duplicate of the socket until it
    is disarmed, so the number it acts on is never one reused by another connection."""

    _current = threading.local()

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.fired = False
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    @classmethod
    def current(cls) -> _Silence | None:
        silence: _Silence | None = getattr(cls._current, "silence", None)
        return silence

    def attach(self, connection: psycopg.Connection[Any]) -> None:
        with self._lock:
            with contextlib.suppress(OSError, psycopg.Error):
                self._sock = socket.socket(fileno=os.dup(connection.pgconn.socket))
            if self.fired:
                self._shut_down()

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            self._shut_down()

    def _shut_down(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> _Silence:
        self._current.silence = self
        self._timer.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._timer.cancel()
        self._current.silence = None
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def _attempts_within(params: dict[str, Any], seconds: float) -> list[dict[str, Any]]:
    """The connection attempts of `params` (each host's addresses), its host names looked
    up within `seconds`: a name server that never answers would otherwise hold the worker
    for the resolver's own timeouts, once per host. A lookup not done by then goes on in
    its own thread until the resolver gives up; nothing waits for it."""
    done = threading.Event()
    found: list[list[dict[str, Any]] | psycopg.Error] = []

    def look_up() -> None:
        try:
            found.append(conninfo_attempts(params))
        except psycopg.Error as exc:
            found.append(exc)
        finally:
            done.set()

    threading.Thread(target=look_up, name="schemagate-resolve", daemon=True).start()
    if not done.wait(seconds):
        raise psycopg.errors.ConnectionTimeout(
            f"connection timeout expired: the URL's host names were not resolved within "
            f"{seconds:g} s")
    if isinstance(found[0], psycopg.Error):
        raise found[0]
    return found[0]


#: What `psycopg.connect` takes besides the connection string.
_CONNECTION_OPTIONS = frozenset({"autocommit", "prepare_threshold", "context", "row_factory",
                                 "cursor_factory"})


def _guarded_connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any
                     ) -> psycopg.Connection[Any]:
    """SQLAlchemy's connect, within one deadline for all the URL's hosts, with the
    connection handed to the session's `_Silence` before the dialect's first queries
    run on it."""
    # SQLAlchemy hands the same dict to every connect: read, never changed.
    options = {key: value for key, value in cparams.items() if key in _CONNECTION_OPTIONS}
    params = {key: value for key, value in cparams.items() if key not in _CONNECTION_OPTIONS}
    connection = _connect_within(make_conninfo(*cargs, **params), **options)
    silence = _Silence.current()
    if silence is not None:
        silence.attach(connection)
    return connection


def _connect_within(conninfo: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """A connection to the first of the conninfo's hosts that answers, all of them tried
    within its `connect_timeout` in total. libpq, and psycopg after it, wait the whole
    `connect_timeout` for each host (and each address a name resolves to), so a URL
    naming several hosts that never answer would hold a worker that many times over:
    here the attempts share the one deadline, in whole seconds (libpq's unit), and none
    starts with less than libpq's minimum of 2 s left."""
    params = conninfo_to_dict(conninfo)
    seconds = timeout_from_conninfo(params)
    deadline = time.monotonic() + seconds
    failed: psycopg.OperationalError | None = None
    attempts = _attempts_within(params, seconds)
    for index, attempt in enumerate(attempts):
        # A quarter second of slack: setting up an attempt costs a little of its budget.
        left = math.floor(deadline - time.monotonic() + 0.25)
        if left < 2:
            raise psycopg.errors.ConnectionTimeout(
                f"connection timeout expired: {seconds} s for all the URL's hosts")
        # An equal share for each attempt still to make: a first host that never answers
        # leaves the next ones their turn.
        share = min(left, max(2, left // (len(attempts) - index)))
        try:
            return psycopg.connect(make_conninfo("", **{**attempt, "connect_timeout": share}),
                                   **kwargs)
        except psycopg.OperationalError as exc:
            failed = exc
    assert failed is not None  # conninfo_attempts raises rather than return no attempt
    raise failed


def _begin(conn: Connection, statement_timeout: float) -> None:
    """A read-only transaction whose statements the server cancels after
    `statement_timeout`. Transaction-local: behind a pooler it never reaches another
    client's session, and poolers that refuse a startup option accept it."""
    conn.exec_driver_sql("BEGIN READ ONLY")
    conn.exec_driver_sql("SELECT pg_catalog.set_config('statement_timeout', %(t)s, true)",
                         {"t": f"{max(1, round(statement_timeout * 1000))}ms"})
