"""The check: what a `Requirement` asks about, read from the database's catalog.

`observe` reads it through the backend's own URL (`connect`); `verify` turns that into a
`Verdict` and never raises for database errors. Costs, measured with `bench/verify.py`:
`verify_many` answers several requirements on one URL in one connection (the operator's
schemas that share a database, `reconcile.batch`), equal requirements with one
statement. The declared tables, the fingerprint and the version table's existence come
from one catalog statement with the names bound as one parameter; it returns only the
missing names, so a healthy database sends back one short row. The version table is
then read as Alembic reads it, at most a few short rows of it. Only when tables are
missing do we search further: other schemas come with the same query, other databases
through `search`. Declared columns are checked in the same statement, the same way: one
count of the columns that match as declared, and only when it falls short, which ones
do not and what their tables hold instead.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import psycopg
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from schemagate.core.check.columns import ColumnFinding, FoundColumn
from schemagate.core.check.verdict import (
    Observation,
    Place,
    Requirement,
    Verdict,
    connection_failed,
    decide,
)
from schemagate.core.tenancy import limits
from schemagate.postgres.connect import (
    ConnectionFailed,
    Server,
    parse_url,
    server_for,
    session,
)
from schemagate.postgres.deadlines import begin, session_budget, whole_seconds
from schemagate.postgres.search import (
    MAX_DATABASES,
    OTHER_DATABASE_TIMEOUT,
    SEARCH_WORKERS,
    OtherDatabases,
    search_databases,
)
from schemagate.postgres.statements import (
    SERVER_TEXTS,
    TABLE_KINDS,
    fingerprint,
    join_lists,
    read_version_table,
)

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
READ_SYSTEM_IDENTIFIER = "(SELECT system_identifier::text FROM pg_catalog.pg_control_system())"
SYSTEM_IDENTIFIER_QUERY = f"SELECT {READ_SYSTEM_IDENTIFIER}"  # noqa: S608 (a constant)


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
    server = server_for(target, whole_seconds(connect_timeout))
    seen: dict[Requirement, tuple[dict[str, Any], tuple[frozenset[str] | None, str | None]]] = {}
    with session(server, url, target, connect_timeout) as conn:
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
                searched[names] = search_databases(row["other_databases"], list(names), url,
                                                   target)
            found_elsewhere += searched[names]
        observations.append(Observation(
            present_tables=frozenset(requirement.tables).difference(missing),
            current_revisions=current[0],
            version_table_refused=current[1],
            found_elsewhere=tuple(found_elsewhere),
            fingerprint=fingerprint(row, target),
            schema_exists=row["schema_exists"],
            duration_ms=_ms_since(started),
            column_findings=tuple(_column_finding(item, row["separator"])
                                  for item in row["column_findings"]),
        ))
    return observations


def check_deadline(connect_timeout: float) -> float:
    """The most `verify` can take for a `connect_timeout`, other databases searched:
    callers that wait on it from elsewhere give up after this."""
    search_rounds = math.ceil(MAX_DATABASES / SEARCH_WORKERS)
    return (session_budget(connect_timeout, connect_timeout)
            + search_rounds * session_budget(OTHER_DATABASE_TIMEOUT, OTHER_DATABASE_TIMEOUT))


def _read_catalogs(conn: Connection, server: Server,
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


def _read_catalog(conn: Connection, server: Server,
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
    joined, separator = join_lists(texts)
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


def _catalog_row(conn: Connection, server: Server, params: dict[str, Any]) -> dict[str, Any]:
    if server.control_readable:
        try:
            return conn.exec_driver_sql(CATALOG_QUERY.format(
                system_identifier=READ_SYSTEM_IDENTIFIER), params).one()._asdict()
        except DBAPIError as exc:
            if not isinstance(exc.orig, psycopg.errors.InsufficientPrivilege):
                raise
            server.control_readable = False  # revoked since; ask without it
            conn.exec_driver_sql("ROLLBACK")  # the failed statement ended the transaction
            begin(conn, conn.info["statement_timeout"])
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


def _current_revisions(conn: Connection, requirement: Requirement
                       ) -> tuple[frozenset[str] | None, str | None]:
    """The revisions in the version table, or None and why it was not read as such."""
    schema = requirement.version_table_schema or requirement.schema
    rows = read_version_table(conn, schema, requirement.version_table)
    refused = limits.version_rows_refused(f"{schema}.{requirement.version_table}", rows)
    return (None, refused) if refused else (frozenset(rows), None)


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
