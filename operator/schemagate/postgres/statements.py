"""What the catalog check, the snapshot and the migration Job read alike: who and where
the session is, the version table, and names bound as one text."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from psycopg import sql
from sqlalchemy.engine import URL, Connection

from schemagate.core.check.verdict import Fingerprint
from schemagate.core.tenancy import limits
from schemagate.postgres.connect import query_value

#: What `pg_class.relkind` counts as a table, as SQLAlchemy's `has_table` does:
#: ordinary, partitioned, view, materialized view, foreign table.
TABLE_KINDS = "('r', 'p', 'v', 'm', 'f')"

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


# The version table as Alembic reads it (`SELECT version_num`), bounded. The numbers are
# module constants; the table is quoted by the driver.
VERSION_QUERY = "SELECT pg_catalog.left(version_num::text, {cut}) FROM {table} LIMIT {rows}"


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


def fingerprint(row: dict[str, Any], target: URL) -> Fingerprint:
    text = limits.database_text
    return Fingerprint(
        host=row["host"] or target.host or query_value(target, "host"),
        port=row["port"] or target.port,
        database=row["database"],
        user=row["user"],
        search_path=text(row["search_path"]) or "",
        server_version=text(row["server_version"]) or "",
        system_identifier=row["system_identifier"],
        effective_search_path=tuple(text(name) or "" for name in row["effective_search_path"]),
    )


def join_names(names: Sequence[str]) -> tuple[str, str]:
    """`names` joined on a character that occurs in none of them (identifiers may hold
    any character but NUL), and that character."""
    joined, separator = join_lists([names])
    return joined[0], separator


def join_lists(lists: Sequence[Sequence[str]]) -> tuple[list[str], str]:
    """Each of `lists` joined on one character that occurs in none of their items."""
    candidates = itertools.chain(map(chr, range(0x1F, 0, -1)), map(chr, itertools.count(0xE000)))
    for separator in candidates:
        joined = [separator.join(items) for items in lists]
        if all(text.count(separator) == max(len(items) - 1, 0)
               for text, items in zip(joined, lists, strict=True)):
            return joined, separator
    raise AssertionError("unreachable: the candidates are endless")
