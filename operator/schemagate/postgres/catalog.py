"""The check: what a `Requirement` asks about, read from the database's catalog.

`observe` reads it through the backend's own URL (`connect`); `verify` turns that into a
`Verdict` and never raises for database errors. Costs, measured with `bench/verify.py`:
`verify_many` answers several requirements on one URL in one connection (the operator's
schemas that share a database, `reconcile.batch`), equal requirements with one
statement. The declared tables, the fingerprint and the version table's existence come
from one catalog statement with the names bound as one parameter; it counts them, so a
healthy database sends back one short row. The version table is read as Alembic reads
it, at most a few short rows of it, and the declared columns' catalog rows are fetched;
all of these statements go in one round trip (psycopg's pipeline mode). Only when tables
are missing do we search further: other schemas with a second statement, other
databases through `search`. The declared columns' rows are
compared in Python (`all_columns_match`); only when one differs does a second statement
say which and what their tables hold instead.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import psycopg
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from schemagate.core.check.columns import ColumnFinding, FoundColumn, all_columns_match
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
    version_query,
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
# Which declared columns of present tables differ, and what their tables hold instead:
# asked only once the fetched rows showed that one does.
COLUMN_FINDINGS_QUERY = f"""
WITH target AS (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = %(schema)s)
SELECT ARRAY(
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
  ) AS column_findings
"""  # noqa: S608 (only module constants are formatted in)

# The declared columns as the catalog has them: the declared tables that have declared
# columns, by name as the tables are matched, joined to their columns whose names are
# declared (for any table), so a table of 1,600 columns sends back only those. This is
# the plain fetch of those rows, the cheapest way to read them; comparing 100,000 of them
# in Python costs less than any comparison PostgreSQL plans for them (docs/benchmarks.md).
# At most `column_rows` rows (twice the declared columns): rows beyond the declared ones
# are only columns declared for another table, and a cut list can only make the
# comparison fall short, which the findings statement then settles.
COLUMN_ROWS_QUERY = f"""
SELECT d.name, a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod),
       NOT a.attnotnull
FROM pg_catalog.unnest(pg_catalog.string_to_array(%(column_tables)s, %(separator)s)) AS d(name)
JOIN pg_catalog.pg_class c ON c.relnamespace = (
    SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = %(schema)s)
  AND c.relname = d.name::name AND c.relkind IN {TABLE_KINDS}
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  AND a.attname = ANY(pg_catalog.string_to_array(%(column_names)s, %(separator)s)::name[])
LIMIT %(column_rows)s
"""  # noqa: S608 (only module constants are formatted in; every value is bound)


# One statement answers the common case. The names travel as one bound text parameter,
# split on a separator that occurs in none of them (a 10,000-element array parameter
# costs more to encode than the whole query costs to run), and are cast to `name` so
# they compare as PostgreSQL stores them: byte for byte, truncated at 63 bytes as
# identifiers are. The array sits in a sub-select, so the planner does not estimate each
# element. Every table present is one index scan counting matches. Only when the count
# falls short does `MISSING_QUERY` say which names are missing and in which other
# schemas they exist; it is a statement of its own because a fresh server process pays
# for parsing and planning every part of a statement, run or not. `{system_identifier}`
# is the function call once the role is known to be allowed it (its privilege is checked
# when the statement starts, so it cannot hide behind a CASE), else NULL.
CATALOG_QUERY = f"""
WITH target AS (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = %(schema)s),
declared AS (SELECT pg_catalog.string_to_array(%(names)s, %(separator)s) AS names)
SELECT
{SERVER_TEXTS}
  {{may_read_control}} AS may_read_control,
  {{system_identifier}} AS system_identifier,
  EXISTS (SELECT FROM target) AS schema_exists,
  EXISTS (SELECT FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = %(version_schema)s AND c.relname = %(version_table)s::name
            AND c.relkind IN {TABLE_KINDS}) AS has_version_table,
  (SELECT count(*) FROM pg_catalog.pg_class q
   WHERE q.relnamespace = (SELECT oid FROM target) AND q.relkind IN {TABLE_KINDS}
     AND q.relname = ANY((SELECT names FROM declared)::name[])
  ) = (SELECT pg_catalog.cardinality(names) FROM declared) AS all_present
"""  # noqa: S608 (only module constants are formatted in; every value is bound)

# Which declared names are missing from the schema, in declared order, each with the
# other schemas that hold a table of that name (`pg_*` and `information_schema` are the
# system's own), and the other databases this role may search.
MISSING_QUERY = f"""
WITH target AS (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = %(schema)s),
declared AS (SELECT pg_catalog.string_to_array(%(names)s, %(separator)s) AS names)
SELECT
  ARRAY(
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
  ) AS missing,
  ARRAY(
    SELECT datname::text FROM pg_catalog.pg_database
    WHERE NOT datistemplate AND datallowconn AND datname <> pg_catalog.current_database()
      AND pg_catalog.has_database_privilege(oid, 'CONNECT')
    ORDER BY datname LIMIT {MAX_DATABASES}
  ) AS other_databases
"""  # noqa: S608 (only module constants are formatted in; every value is bound)
READ_SYSTEM_IDENTIFIER = "(SELECT system_identifier::text FROM pg_catalog.pg_control_system())"
MAY_READ_CONTROL = "pg_catalog.has_function_privilege('pg_catalog.pg_control_system()', 'EXECUTE')"


def catalog_query(readable: bool | None) -> str:
    """The catalog statement: with the system identifier once the role is known to be
    allowed it (then whether it may is not asked again), else asking whether it may."""
    if readable:
        return CATALOG_QUERY.format(system_identifier=READ_SYSTEM_IDENTIFIER,
                                    may_read_control="true")
    return CATALOG_QUERY.format(system_identifier="NULL::text", may_read_control=MAY_READ_CONTROL)
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
    with session(server, url, target, connect_timeout) as conn:
        distinct = list(dict.fromkeys(requirement for requirement, _ in asked))
        seen = dict(zip(distinct, _read_all(conn, server, distinct), strict=True))
    searched: dict[tuple[str, ...], list[Place]] = {}
    observations = []
    for requirement, known in asked:
        read = seen[requirement]
        row = read.row
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
        present = frozenset(requirement.tables)
        observations.append(Observation(
            present_tables=present.difference(missing) if missing else present,
            current_revisions=read.revisions,
            version_table_refused=read.refused,
            found_elsewhere=tuple(found_elsewhere),
            fingerprint=fingerprint(row, target),
            schema_exists=row["schema_exists"],
            duration_ms=_ms_since(started),
            column_findings=read.findings,
        ))
    return observations


def check_deadline(connect_timeout: float) -> float:
    """The most `verify` can take for a `connect_timeout`, other databases searched:
    callers that wait on it from elsewhere give up after this."""
    search_rounds = math.ceil(MAX_DATABASES / SEARCH_WORKERS)
    return (session_budget(connect_timeout, connect_timeout)
            + search_rounds * session_budget(OTHER_DATABASE_TIMEOUT, OTHER_DATABASE_TIMEOUT))


@dataclass
class _Read:
    """What one requirement's statements returned: the catalog row, the version table
    (`revisions`, or why it was `refused`), the column findings."""

    row: dict[str, Any]
    revisions: frozenset[str] | None = None
    refused: str | None = None
    findings: tuple[ColumnFinding, ...] = ()


def _read_all(conn: Connection, server: Server,
              requirements: Sequence[Requirement]) -> list[_Read]:
    """Each requirement's catalog row, version table and declared columns' rows, all sent
    in one round trip (psycopg's pipeline mode) once the role's right to the system
    identifier is known; the first statement to a server learns it on its own. A lone
    statement goes as it is. The version table is read before its existence is known:
    when it is absent that statement fails, which costs more round trips only then."""
    pg: Any = conn.connection.driver_connection
    known: list[dict[str, Any]] = []
    if server.control_readable is None:
        known.append(_catalog_row(conn, server, _catalog_params(requirements[0])))
    query = catalog_query(server.control_readable)
    statements: list[tuple[str, dict[str, Any] | None]] = [
        (query, _catalog_params(requirement)) for requirement in requirements[len(known):]]
    columns = [i for i, requirement in enumerate(requirements) if requirement.columns]
    statements += [(COLUMN_ROWS_QUERY, _column_params(requirements[i])) for i in columns]
    versions = [i for i, requirement in enumerate(requirements) if requirement.revision_check
                and (i >= len(known) or known[i]["has_version_table"])]
    statements += [(version_query(pg, _version_schema(requirements[i]),
                                  requirements[i].version_table), None) for i in versions]
    if len(statements) == 1 and not known:  # the catalog statement alone
        known.append(_catalog_row(conn, server, _catalog_params(requirements[0])))
        statements = []
    answers, failed = _pipelined(pg, statements)
    versions_from = len(statements) - len(versions)
    if failed is not None and len(answers) < versions_from:
        if server.control_readable and isinstance(failed, psycopg.errors.InsufficientPrivilege):
            server.control_readable = False  # revoked since; ask again, without it
            _restart(conn)
            return _read_all(conn, server, requirements)
        raise _wrapped(statements[len(answers)], failed)
    reads = [_Read(row=row) for row in known]
    reads += [_Read(row=dict(zip(names, rows[0], strict=True)))
              for names, rows in answers[:len(requirements) - len(known)]]
    if failed is not None:
        _restart(conn)  # an absent version table failed its statement, and the transaction
    for position, index in enumerate(versions):
        requirement, read = requirements[index], reads[index]
        if not read.row["has_version_table"]:
            continue
        if versions_from + position < len(answers):
            found = [row[0] for row in answers[versions_from + position][1]]
        elif versions_from + position == len(answers):
            raise _wrapped(statements[len(answers)], failed)  # it is there: reading failed
        else:  # not run: a version table before it was absent
            found = read_version_table(conn, _version_schema(requirement),
                                       requirement.version_table)
        revisions = [revision for revision in found if revision is not None]
        place = f"{_version_schema(requirement)}.{requirement.version_table}"
        read.refused = limits.version_rows_refused(place, revisions)
        read.revisions = None if read.refused else frozenset(revisions)
    for requirement, read in zip(requirements, reads, strict=True):
        if read.row["all_present"]:
            read.row.update(missing=[], other_databases=[])
        else:
            read.row.update(conn.exec_driver_sql(
                MISSING_QUERY, _catalog_params(requirement)).one()._asdict())
    first_columns = len(requirements) - len(known)
    for position, index in enumerate(columns):
        if not all_columns_match(requirements[index].columns,
                                 answers[first_columns + position][1]):
            reads[index].findings = _column_findings(conn, requirements[index])
    return reads


def _pipelined(pg: Any, statements: Sequence[tuple[str, dict[str, Any] | None]]
               ) -> tuple[list[tuple[list[str], list[Any]]], psycopg.Error | None]:
    """The column names and rows of each statement up to the first that failed, and its
    error; all are sent before any answer is read. A statement with no values is sent
    without parameters, so nothing in it is read as a placeholder."""
    if not statements:
        return [], None
    cursors: list[Any] = []
    failed: psycopg.Error | None = None
    try:
        with pg.pipeline():
            cursors += [pg.execute(statement, values) for statement, values in statements]
    except psycopg.Error as exc:
        failed = exc
    answered: list[tuple[list[str], list[Any]]] = []
    for cursor in cursors:
        if cursor.pgresult is None:
            break
        answered.append(([column.name for column in cursor.description or ()],
                         cursor.fetchall()))
    return answered, failed


def _catalog_row(conn: Connection, server: Server, params: dict[str, Any]) -> dict[str, Any]:
    """The catalog row, with the system identifier when permitted."""
    if server.control_readable:
        try:
            return conn.exec_driver_sql(catalog_query(True), params).one()._asdict()
        except DBAPIError as exc:
            if not isinstance(exc.orig, psycopg.errors.InsufficientPrivilege):
                raise
            server.control_readable = False  # revoked since; ask without it
            _restart(conn)  # the failed statement ended the transaction
    row = conn.exec_driver_sql(catalog_query(False), params).one()._asdict()
    server.control_readable = bool(row["may_read_control"])
    if server.control_readable:
        row["system_identifier"] = conn.exec_driver_sql(SYSTEM_IDENTIFIER_QUERY).scalar()
    return row


def _wrapped(statement: tuple[str, dict[str, Any] | None], failed: BaseException | None
             ) -> DBAPIError:
    """A driver error as SQLAlchemy raises it, for `session` to report."""
    assert isinstance(failed, Exception)
    wrapped = DBAPIError.instance(statement[0], statement[1], failed, psycopg.Error)
    assert isinstance(wrapped, DBAPIError)
    return wrapped


def _restart(conn: Connection) -> None:
    """A new transaction, as `session` began it, after a statement failed the last."""
    conn.exec_driver_sql("ROLLBACK")
    begin(conn, conn.info["statement_timeout"])


def _version_schema(requirement: Requirement) -> str:
    return requirement.version_table_schema or requirement.schema


_TABLE, _NAME = attrgetter("table"), attrgetter("name")


def _catalog_params(requirement: Requirement) -> dict[str, Any]:
    joined, separator = join_lists([requirement.tables])
    return {
        "schema": requirement.schema,
        "version_schema": requirement.version_table_schema,
        "version_table": requirement.version_table,
        "names": joined[0],
        "separator": separator,
    }


def _column_params(requirement: Requirement) -> dict[str, Any]:
    columns = requirement.columns
    joined, separator = join_lists([list(dict.fromkeys(map(_TABLE, columns))),
                                    list(dict.fromkeys(map(_NAME, columns)))])
    return {"schema": requirement.schema, "column_tables": joined[0],
            "column_names": joined[1], "column_rows": 2 * len(columns),
            "separator": separator}


def _column_findings(conn: Connection, requirement: Requirement) -> tuple[ColumnFinding, ...]:
    """The declared columns of present tables that do not match, from the catalog."""
    columns = requirement.columns
    texts = [[c.table for c in columns], [c.name for c in columns],
             [c.type or "" for c in columns],
             ["" if c.nullable is None else "tf"[not c.nullable] for c in columns]]
    joined, separator = join_lists(texts)
    found = conn.exec_driver_sql(COLUMN_FINDINGS_QUERY, {
        "schema": requirement.schema, "column_tables": joined[0], "column_names": joined[1],
        "column_types": joined[2], "column_nullable": joined[3], "separator": separator,
    }).scalar()
    return tuple(_column_finding(item, separator) for item in found or ())


def _column_finding(item: Sequence[str | None], separator: str) -> ColumnFinding:
    """One `column_findings` element: table, column, type, nullable, similar names."""
    table, name, type_, nullable, similar = item
    assert table is not None and name is not None
    found = None if type_ is None else FoundColumn(type=type_, nullable=nullable == "true")
    return ColumnFinding(table=table, name=name, found=found,
                         similar=tuple(similar.split(separator)) if similar else ())


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
