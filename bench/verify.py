"""How fast is `schemagate verify`, next to the usual ways of asking the same question?

Starts a throw-away PostgreSQL (the embedded one the tests use), creates 10, 1,000
and 10,000 tables plus an Alembic version table, and times, in the same run:

- schemagate: `catalog.verify` over every table and the revision, as the operator
  calls it (a fresh connection each time, see `schemagate.postgres.connect`);
- bare catalog query: a fresh connection and one `relname = ANY(...)` count, the
  floor for any check that connects and asks the catalog (schemagate adds the
  fingerprint, the search for missing tables and two Alembic statements); the same
  query on an open connection, and a bare connect, show where the time goes;
- `Inspector.get_table_names`: SQLAlchemy's reflection of the schema, then a set test;
- `has_table` per table: one SQLAlchemy `has_table` call per declared table;
- `alembic current --check-heads`: the command, as a subprocess.

Then, on 10,000 tables of 10 columns each, with every column declared (name, type as
`format_type` prints it, nullability): schemagate's check next to the bare catalog query
for the same work (one statement joining the declared columns to `pg_attribute` and
counting those that match), as it comes and with parallel workers off (schemagate's
count runs in a sub-select, where PostgreSQL plans none; on 2 busy cores the workers
make the bare query slower, not faster), and on an open connection.

Every contender but one opens its own connection, as a check must. Prints medians and the
ratio to the bare catalog query. Run it with `make bench` (or
`.venv/bin/python bench/verify.py [--reps N]`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from sqlalchemy import create_engine, inspect
from sqlalchemy.pool import NullPool

from localenv.postgres import LocalPostgres, running
from schemagate.core.check.columns import ColumnRequirement
from schemagate.core.check.verdict import Requirement
from schemagate.postgres import catalog

SIZES = (10, 1_000, 10_000)
REVISION = "bench0001"
#: The floor: one statement, the names as one parameter split on a separator (as
#: schemagate binds them; a `text[]` of 10,000 elements costs more to encode than this).
BARE_QUERY = ("SELECT count(*) FROM pg_catalog.pg_class WHERE relnamespace = "
              "'public'::regnamespace AND relname = ANY(string_to_array(%s, chr(31))::name[])")
#: `has_table` makes one round trip per table; repetitions are capped by size so the
#: run finishes in minutes (fewer repetitions make a less steady median).
HAS_TABLE_REPS = {10: 0, 1_000: 5, 10_000: 3}
ALEMBIC_REPS = 5
COLUMN_TABLES = 10_000
#: Each table's columns: name, the type as `format_type` prints it, nullable.
COLUMNS = (("id", "bigint", False), ("account_id", "integer", False), ("note", "text", True),
           ("code", "character varying(64)", True), ("created_at", "timestamp with time zone",
                                                      False),
           ("amount", "numeric(12,2)", True), ("active", "boolean", False),
           ("parent_id", "bigint", True), ("due", "date", True), ("payload", "jsonb", True))
#: The same work as schemagate's column check, as one plain statement: the declared columns
#: (four texts split on one separator) joined to the catalog by name, counting those whose
#: type and nullability match. The type is compared in the count's filter, on joined rows
#: only: in the WHERE clause PostgreSQL makes it a hash key and runs `format_type` over
#: every column of the database, which would make this floor twice as slow as it need be.
BARE_COLUMNS_QUERY = """
SELECT count(*) FILTER (WHERE pg_catalog.format_type(a.atttypid, a.atttypmod) = d.typ
                          AND a.attnotnull = (d.nul = 'f'))
FROM ROWS FROM (unnest(string_to_array(%s, chr(31))), unnest(string_to_array(%s, chr(31))),
                unnest(string_to_array(%s, chr(31))), unnest(string_to_array(%s, chr(31))))
  AS d(tbl, col, typ, nul)
JOIN pg_catalog.pg_class c ON c.relnamespace = 'public'::regnamespace AND c.relname = d.tbl::name
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = d.col::name
  AND a.attnum > 0 AND NOT a.attisdropped
"""

ENV_PY = """\
import os
from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

with create_engine(os.environ["DATABASE_URL"], poolclass=NullPool).connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
"""
VERSION_PY = f"""\
revision = {REVISION!r}
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    pass
"""


def median_ms(call: Callable[[], object], reps: int) -> float:
    call()  # warm: imports, the engine's one-time dialect setup
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def interleaved(calls: list[tuple[str, Callable[[], object]]], reps: int
                ) -> list[tuple[str, float, int]]:
    """Medians of `reps` rounds, each calling every contender once: on a shared machine the
    load drifts over minutes, and timing contenders one after the other would charge that
    drift to whichever ran in the busy minute."""
    for _, call in calls:
        call()  # warm
    times: dict[str, list[float]] = {label: [] for label, _ in calls}
    for _ in range(reps):
        for label, call in calls:
            started = time.perf_counter()
            call()
            times[label].append((time.perf_counter() - started) * 1000)
    rows = [(label, statistics.median(ms), reps) for label, ms in times.items()]
    for label, ms, _ in rows:
        print(f"  {COLUMN_TABLES:>6,} x {len(COLUMNS)} columns  {label:<32} {ms:9.1f} ms",
              file=sys.stderr, flush=True)
    return rows


def create_tables(server: LocalPostgres, database_name: str, count: int) -> list[str]:
    names = [f"table_{i:05d}" for i in range(count)]
    with psycopg.connect(server.url(driver="postgresql"), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database_name}".encode())
    with psycopg.connect(server.url(database=database_name, driver="postgresql")) as conn:
        for start in range(0, count, 1_000):  # commit in batches: one lock per table
            batch = names[start:start + 1_000]
            conn.execute("; ".join(f"CREATE TABLE {n} (id int)" for n in batch).encode())
            conn.commit()
        conn.execute(b"CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
        conn.execute(b"INSERT INTO alembic_version VALUES (%s)", (REVISION,))
        conn.commit()
        conn.execute(b"ANALYZE")
    return names


def create_column_tables(server: LocalPostgres, database_name: str) -> list[ColumnRequirement]:
    names = [f"table_{i:05d}" for i in range(COLUMN_TABLES)]
    body = ", ".join(f"{name} {type_}{'' if nullable else ' NOT NULL'}"
                     for name, type_, nullable in COLUMNS)
    with psycopg.connect(server.url(driver="postgresql"), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database_name}".encode())
    with psycopg.connect(server.url(database=database_name, driver="postgresql")) as conn:
        for start in range(0, len(names), 1_000):
            batch = names[start:start + 1_000]
            conn.execute("; ".join(f"CREATE TABLE {n} ({body})" for n in batch).encode())
            conn.commit()
        conn.execute(b"CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
        conn.execute(b"INSERT INTO alembic_version VALUES (%s)", (REVISION,))
        conn.commit()
        conn.execute(b"ANALYZE")
    return [ColumnRequirement(table, name, type_, nullable)
            for table in names for name, type_, nullable in COLUMNS]


def column_contenders(url: str, columns: list[ColumnRequirement]
                      ) -> list[tuple[str, Callable[[], object]]]:
    tables = tuple(dict.fromkeys(c.table for c in columns))
    with_columns = Requirement(tables=tables, columns=tuple(columns),
                               expected_revisions=frozenset({REVISION}))
    tables_only = Requirement(tables=tables, expected_revisions=frozenset({REVISION}))
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    serial = conninfo + "?options=-cmax_parallel_workers_per_gather%3D0"

    def schemagate(requirement: Requirement) -> Callable[[], None]:
        def check() -> None:
            verdict = catalog.verify(url, requirement)
            assert verdict.verified, verdict.message
        return check

    def bare(info: str) -> Callable[[], None]:
        def check() -> None:
            # Joining the texts is part of the work: schemagate does it on every check.
            params = ["\x1f".join(c.table for c in columns), "\x1f".join(c.name for c in columns),
                      "\x1f".join(c.type or "" for c in columns),
                      "\x1f".join("t" if c.nullable else "f" for c in columns)]
            with psycopg.connect(info) as conn:
                found = conn.execute(BARE_COLUMNS_QUERY.encode(), params).fetchone()
                assert found is not None and found[0] == len(columns), found
        return check

    open_connection = psycopg.connect(serial, autocommit=True)

    def bare_open() -> None:
        params = ["\x1f".join(c.table for c in columns), "\x1f".join(c.name for c in columns),
                  "\x1f".join(c.type or "" for c in columns),
                  "\x1f".join("t" if c.nullable else "f" for c in columns)]
        found = open_connection.execute(BARE_COLUMNS_QUERY.encode(), params).fetchone()
        assert found is not None and found[0] == len(columns), found

    return [
        ("schemagate verify, columns", schemagate(with_columns)),
        ("bare catalog query, columns", bare(conninfo)),
        ("(same, no parallel workers)", bare(serial)),
        ("(same, serial, open connection)", bare_open),
        ("schemagate verify, tables only", schemagate(tables_only)),
    ]


def alembic_project(root: Path) -> Path:
    (root / "migrations" / "versions").mkdir(parents=True)
    (root / "migrations" / "env.py").write_text(ENV_PY)
    (root / "migrations" / "versions" / f"{REVISION}.py").write_text(VERSION_PY)
    ini = root / "alembic.ini"
    ini.write_text("[alembic]\nscript_location = %(here)s/migrations\n")
    return ini


def contenders(url: str, names: list[str], ini: Path, reps: int
               ) -> list[tuple[str, Callable[[], object], int]]:
    requirement = Requirement(tables=tuple(names), expected_revisions=frozenset({REVISION}))
    engine = create_engine(url, poolclass=NullPool)
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    alembic = [str(Path(sys.executable).parent / "alembic"), "-c", str(ini), "current",
               "--check-heads"]
    env = {**os.environ, "DATABASE_URL": url}

    def schemagate() -> None:
        verdict = catalog.verify(url, requirement)
        assert verdict.verified, verdict.message

    def bare() -> None:
        with psycopg.connect(conninfo) as conn:
            found = conn.execute(BARE_QUERY.encode(), ("\x1f".join(names),)).fetchone()
            assert found is not None and found[0] == len(names)

    open_connection = psycopg.connect(conninfo, autocommit=True)

    def bare_open() -> None:
        found = open_connection.execute(BARE_QUERY.encode(), ("\x1f".join(names),)).fetchone()
        assert found is not None and found[0] == len(names)

    def table_names() -> None:
        with engine.connect() as conn:
            assert set(names) <= set(inspect(conn).get_table_names(schema="public"))

    def has_table() -> None:
        with engine.connect() as conn:
            inspector = inspect(conn)
            assert all(inspector.has_table(n, schema="public") for n in names)

    def alembic_current() -> None:
        subprocess.run(alembic, env=env, check=True, capture_output=True)

    has_table_reps = HAS_TABLE_REPS.get(len(names), 0) or reps
    return [
        ("schemagate verify", schemagate, reps),
        ("bare catalog query", bare, reps),
        ("(same, on an open connection)", bare_open, reps),
        ("Inspector.get_table_names", table_names, reps),
        ("has_table per table", has_table, has_table_reps),
        ("alembic current --check-heads", alembic_current, ALEMBIC_REPS),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=31, help="repetitions (default 31)")
    parser.add_argument("--column-reps", type=int, default=11,
                        help="repetitions at 10,000 tables of 10 columns (default 11)")
    parser.add_argument("--only-columns", action="store_true",
                        help="skip the tables-only sizes")
    args = parser.parse_args()
    rows: list[tuple[int, str, float, int]] = []
    with running() as server, tempfile.TemporaryDirectory() as tmp:
        columns = create_column_tables(server, "bench_columns")
        column_rows = interleaved(column_contenders(server.url(database="bench_columns"),
                                                    columns), args.column_reps)
        if args.only_columns:
            report_columns(column_rows)
            return 0
        ini = alembic_project(Path(tmp))
        for size in SIZES:
            name = f"bench_{size}"
            names = create_tables(server, name, size)
            url = server.url(database=name)
            conninfo = url.replace("+psycopg", "")
            connect = median_ms(lambda: psycopg.connect(conninfo).close(),  # noqa: B023
                                args.reps)
            rows.append((size, "(connect only)", connect, args.reps))
            for label, call, reps in contenders(url, names, ini, args.reps):
                rows.append((size, label, median_ms(call, reps), reps))
                print(f"  {size:>6,} tables  {label:<30} {rows[-1][2]:9.1f} ms",
                      file=sys.stderr, flush=True)
    report(rows)
    report_columns(column_rows)
    return 0


def report(rows: list[tuple[int, str, float, int]]) -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n{os.cpu_count()} CPUs, load average {load} (other work skews the medians)")
    print(f"\n{'tables':>7}  {'contender':<30} {'median':>10}  {'vs bare':>8}  reps")
    for size in SIZES:
        bare = next(ms for s, label, ms, _ in rows if s == size and label == "bare catalog query")
        for s, label, ms, reps in rows:
            if s == size:
                print(f"{size:>7,}  {label:<30} {ms:>7.1f} ms  {ms / bare:>7.2f}x  {reps}")
        print()
    ours = next(ms for s, label, ms, _ in rows if s == 10_000 and label == "schemagate verify")
    bare = next(ms for s, label, ms, _ in rows if s == 10_000 and label == "bare catalog query")
    print(f"goal, 10,000 tables: median < 20 ms -> {ours:.1f} ms "
          f"({'met' if ours < 20 else 'NOT met'}); within 2x of the bare catalog query -> "
          f"{ours / bare:.2f}x ({'met' if ours <= 2 * bare else 'NOT met'})")


def report_columns(rows: list[tuple[str, float, int]]) -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n{COLUMN_TABLES:,} tables x {len(COLUMNS)} declared columns "
          f"({os.cpu_count()} CPUs, load average {load})")
    bare = min(ms for label, ms, _ in rows
               if label in ("bare catalog query, columns", "(same, no parallel workers)"))
    print(f"{'contender':<32} {'median':>10}  {'vs bare':>12}  reps")
    for label, ms, reps in rows:
        print(f"{label:<32} {ms:>7.1f} ms  {ms / bare:>11.2f}x  {reps}")
    ours = next(ms for label, ms, _ in rows if label == "schemagate verify, columns")
    print(f"goal: within 1.5x of the bare catalog query (the faster of the two fresh "
          f"connections) -> {ours / bare:.2f}x "
          f"({'met' if ours <= 1.5 * bare else 'NOT met'})")


if __name__ == "__main__":
    sys.exit(main())
