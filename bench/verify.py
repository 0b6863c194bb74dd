"""How fast is `schemagate verify`, next to the usual ways of asking the same question?

Starts a throw-away PostgreSQL (the embedded one the tests use), creates 10, 1,000
and 10,000 tables plus an Alembic version table, and times, in the same run:

- schemagate: `database.verify` over every table and the revision, as the operator
  calls it (a fresh connection each time, see `schemagate.database`);
- bare catalog query: a fresh connection and one `relname = ANY(...)` count, the
  floor for any check that connects and asks the catalog (schemagate adds the
  fingerprint, the search for missing tables and two Alembic statements); the same
  query on an open connection, and a bare connect, show where the time goes;
- `Inspector.get_table_names`: SQLAlchemy's reflection of the schema, then a set test;
- `has_table` per table: one SQLAlchemy `has_table` call per declared table;
- `alembic current --check-heads`: the command, as a subprocess.

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
from schemagate import database
from schemagate.core.verdict import Requirement

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
        verdict = database.verify(url, requirement)
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
    args = parser.parse_args()
    rows: list[tuple[int, str, float, int]] = []
    with running() as server, tempfile.TemporaryDirectory() as tmp:
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


if __name__ == "__main__":
    sys.exit(main())
