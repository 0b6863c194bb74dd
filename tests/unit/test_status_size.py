"""The status stays under 64 KiB whatever the database shows: the largest spec the CRD
admits, every table missing and found in many places, every column different, a version
table of thousands of rows. Counts and first names, and the message says how many more."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from schemagate.core.check.columns import ColumnFinding, ColumnRequirement, FoundColumn
from schemagate.core.check.verdict import Fingerprint, Observation, Place, Requirement, decide
from schemagate.core.status import conditions as cond
from schemagate.core.status.outcome import from_verdict, next_status, size
from schemagate.core.wire.models import DatabaseSchemaStatus, GateStatus

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LIMIT = 64 * 1024
FP = Fingerprint(host="10.0.0.5", port=5432, database="d" * 63, user="u" * 63,
                 search_path='"$user", public', server_version="18.1")


def long_name(prefix: str, i: int) -> str:
    return f"{prefix}{i:05d}".ljust(63, "x")


def worst_status(elsewhere_per_table: int) -> DatabaseSchemaStatus:
    tables = tuple(long_name("t", i) for i in range(10_000))
    columns = tuple(ColumnRequirement(table=tables[i], name=long_name("c", i),
                                      type="character varying(64)".ljust(256, "y"),
                                      nullable=False) for i in range(10_000))
    requirement = Requirement(schema="s" * 63, tables=tables, columns=columns,
                              expected_revisions=frozenset(long_name("e", i) for i in range(64)))
    # Each table in schemas of its own, in other databases: every place is another.
    places = tuple(Place(table=t, schema=long_name("schema", i), database=long_name("db", j))
                   for i, t in enumerate(tables) for j in range(elsewhere_per_table))
    observation = Observation(
        present_tables=frozenset(tables[:5_000]), current_revisions=frozenset(
            long_name("r", i) for i in range(5_000)),
        found_elsewhere=places, fingerprint=FP, schema_exists=True, duration_ms=1.0,
        column_findings=tuple(ColumnFinding(table=c.table, name=c.name,
                                            found=FoundColumn("z" * 256, True))
                              for c in columns[:5_000]))
    verdict = decide(requirement, observation)
    gate = GateStatus(condition_type="schemagate.io/" + "n" * 63, pods=3000, ready=0)
    return next_status(DatabaseSchemaStatus(), outcome=from_verdict(verdict), generation=7,
                       gate=gate, now=T0)


def test_the_largest_spec_and_the_worst_database_give_a_status_under_64_kib() -> None:
    status = worst_status(elsewhere_per_table=1)
    assert size(status) < LIMIT
    assert status.missing_summary is not None and status.missing_summary.startswith(
        "5000 tables: ")
    assert status.missing_tables and len(status.missing_tables) <= 100
    verified = cond.find(status.conditions, cond.SCHEMA_VERIFIED)
    assert verified is not None and verified.reason == "TablesElsewhere"
    assert "and 4,990 more" in verified.message


def test_a_2_mb_tables_elsewhere_stays_bounded_and_says_how_many_more_places() -> None:
    # 10,000 missing tables, each found in four other databases: the places alone are
    # about 5 MB, which etcd refuses (1.5 MiB) and no person reads.
    status = worst_status(elsewhere_per_table=4)
    assert size(status) < LIMIT
    assert status.found_elsewhere and len(status.found_elsewhere) <= 100
    verified = cond.find(status.conditions, cond.SCHEMA_VERIFIED)
    assert verified is not None and "more places" in verified.message
    assert all(len(c.message) <= cond.MESSAGE_LIMIT for c in status.conditions)


def test_ten_thousand_tables_in_twenty_thousand_places_are_judged_in_a_moment() -> None:
    """The verdict runs in the database pool's thread, holding the GIL: quadratic work
    over 10,000 names once took 12 s there, and the whole operator waited."""
    tables = tuple(long_name("t", i) for i in range(10_000))
    observation = Observation(
        present_tables=frozenset(), current_revisions=None,
        found_elsewhere=tuple(Place(table=t, schema=s, database="d" * 63)
                              for t in tables for s in ("migrator", "old")),
        fingerprint=FP, schema_exists=True, duration_ms=1.0)
    started = time.monotonic()
    verdict = decide(Requirement(tables=tables), observation)
    assert time.monotonic() - started < 1.0
    assert verdict.reason.value == "TablesElsewhere"
