"""Where missing tables are found in the server's other databases: only an explanation
of a failure, never a cause of one.

At most `MAX_DATABASES` are searched, with one short connection each, and not again
while the same tables are missing when the caller passes what was found
(`OtherDatabases`).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psycopg
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import URL

from schemagate.core.check.verdict import Place, Verdict
from schemagate.core.tenancy import limits
from schemagate.postgres.connect import connect_params, one_line, scrub
from schemagate.postgres.deadlines import Silence, connect_within, session_budget, whole_seconds
from schemagate.postgres.statements import TABLE_KINDS, join_names

log = logging.getLogger(__name__)

#: Other databases of the server searched for missing tables, in name order.
MAX_DATABASES = 20
#: Connect and query budget for each of those other databases (libpq's minimum is 2 s).
OTHER_DATABASE_TIMEOUT = 2.0
#: Threads searching the other databases at once.
SEARCH_WORKERS = 8

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


@dataclass(frozen=True)
class OtherDatabases:
    """What a previous check found in the server's other databases for these missing
    tables: while the same tables are missing, that search (a connection per database)
    is not made again."""

    missing: frozenset[str]
    places: tuple[Place, ...]


def in_other_databases(verdict: Verdict) -> OtherDatabases | None:
    """What `verdict` found in other databases of the server, to pass as `known` to the
    next check of the same requirement (None when it read nothing)."""
    if verdict.fingerprint is None:
        return None
    here = verdict.fingerprint.database
    return OtherDatabases(frozenset(verdict.missing_tables),
                          tuple(p for p in verdict.found_elsewhere if p.database != here))


def search_databases(databases: list[str], names: list[str], url: str,
                     target: URL) -> list[Place]:
    """Where `names` exist in the other `databases` the role can connect to. A database
    that refuses or times out is skipped: this only explains a failure, never causes one."""
    joined, separator = join_names(names)
    query_params = {"names": joined, "separator": separator}

    def search(database: str) -> list[Place]:
        params = connect_params(target.set(database=database),
                                whole_seconds(OTHER_DATABASE_TIMEOUT))
        try:
            with Silence(session_budget(OTHER_DATABASE_TIMEOUT, OTHER_DATABASE_TIMEOUT)
                         ) as silence, connect_within(make_conninfo("", **params),
                                                      autocommit=True) as conn:
                silence.attach(conn)
                conn.execute("BEGIN READ ONLY")
                conn.execute("SELECT pg_catalog.set_config('statement_timeout', %s, true)",
                             (f"{round(OTHER_DATABASE_TIMEOUT * 1000)}ms",))
                rows = conn.execute(ELSEWHERE_QUERY, query_params).fetchall()
        except psycopg.Error as exc:
            log.debug("not searching database %s: %s", database,
                      scrub(one_line(exc), url, target))
            return []
        return [Place(table=table, schema=schema, database=database) for schema, table in rows]

    with ThreadPoolExecutor(max_workers=min(SEARCH_WORKERS, len(databases))) as pool:
        return [place for places in pool.map(search, databases) for place in places]
