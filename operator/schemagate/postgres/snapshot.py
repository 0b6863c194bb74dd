"""`schemagate snapshot`: the named tables' live columns, read from the catalog."""

from __future__ import annotations

from collections.abc import Sequence

from schemagate.core.check.columns import ColumnRequirement
from schemagate.core.check.snapshot import Snapshot
from schemagate.postgres.connect import parse_url, server_for, session
from schemagate.postgres.deadlines import whole_seconds
from schemagate.postgres.statements import SERVER_TEXTS, TABLE_KINDS, fingerprint, join_names

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


def snapshot(url: str, schema: str, tables: Sequence[str], *, connect_timeout: float = 5.0,
             query_timeout: float = 60.0) -> Snapshot:
    """The columns of `tables` in `schema` at `url`, as `schemagate snapshot` prints them.

    One statement, cancelled after `query_timeout` (a CI step may read 10,000 tables);
    raises `ConnectionFailed` or `InvalidDatabaseUrl` as `observe` does.
    """
    target = parse_url(url)
    server = server_for(target, whole_seconds(connect_timeout))
    asked = tuple(dict.fromkeys(tables))
    joined, separator = join_names(asked)
    with session(server, url, target, connect_timeout, query_timeout) as conn:
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
        fingerprint=fingerprint(row, target),
        schema_exists=row["schema_exists"],
    )
