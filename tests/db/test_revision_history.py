"""`status.revision.history` kept for the database a real check reached: the identity
comes from the server itself, and a database that went back closes what it undid."""

from __future__ import annotations

from datetime import UTC, datetime

from schemagate.core.check.verdict import Requirement
from schemagate.core.migration.judge import Step
from schemagate.core.revisions.applied import Graph, missing_revisions
from schemagate.core.status.outcome import from_verdict, next_status
from schemagate.core.wire.models import DatabaseSchemaStatus, GateStatus
from schemagate.postgres import catalog
from schemagate.reconcile.steps import knowledge
from tests.support.database import Tenant

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
GATE = GateStatus(condition_type="schemagate.io/backend-schema")
REQUIREMENT = Requirement(tables=("alembic_version",))


def at(tenant: Tenant, revision: str, *, database_name: str | None = None) -> None:
    """The version table at `revision`, as `upgrade`, `downgrade` or a restore leaves it."""
    tenant.admin("CREATE TABLE IF NOT EXISTS alembic_version (version_num varchar(32) "
                 f'PRIMARY KEY); ALTER TABLE alembic_version OWNER TO "{tenant.role}"',
                 database=database_name)
    tenant.admin("DELETE FROM alembic_version", database=database_name)
    insert = f"INSERT INTO alembic_version VALUES ('{revision}')"  # noqa: S608 (a constant)
    tenant.admin(insert, database=database_name)


CHAIN = {"a": frozenset(), "b": frozenset({"a"}), "c": frozenset({"b"})}


def check(tenant: Tenant, previous: DatabaseSchemaStatus, needs: str, *,
          database_name: str | None = None, graph: Graph | None = None
          ) -> tuple[DatabaseSchemaStatus, str | None]:
    """The next status after one check, and what a pod naming `needs` is told (None:
    it opens)."""
    verdict = catalog.verify(tenant.url(database=database_name), REQUIREMENT)
    assert verdict.verified, verdict.message
    outcome = from_verdict(verdict)
    known = knowledge(outcome, Step(outcome, graph=graph), previous, None)
    return (next_status(previous, outcome=outcome, generation=1, gate=GATE, now=T0,
                        graph=graph),
            missing_revisions(frozenset({needs}), known))


def test_a_database_that_went_back_to_a_revision_never_seen_keeps_c_closed(
        tenant: Tenant) -> None:
    status = DatabaseSchemaStatus()
    for revision in ("a", "c", "b"):  # `upgrade head` from a to c, then `downgrade -1`
        at(tenant, revision)
        status, told = check(tenant, status, "c")
    assert told is not None and "schemagate cannot tell" in told
    assert status.revision is not None and status.revision.history == ["b"]
    fingerprint = catalog.verify(tenant.url(), REQUIREMENT).fingerprint
    assert fingerprint is not None and fingerprint.system_identifier is not None
    assert status.revision.history_of == f"{fingerprint.system_identifier}/{tenant.database}"


def test_the_secret_pointed_at_another_database_of_the_server_starts_a_new_history(
        tenant: Tenant) -> None:
    green = tenant.add_database(f"green_{tenant.suffix}")
    blue = DatabaseSchemaStatus()
    for revision in ("a", "b", "c"):
        at(tenant, revision)
        blue, told = check(tenant, blue, "b", graph=CHAIN)
    assert told is None and blue.revision is not None
    assert blue.revision.history == ["a", "b", "c"]
    # Green is at c too, but the operator never saw it pass b; the scripts in play no
    # longer name b (squashed), so only the history could have opened the pod.
    at(tenant, "c", database_name=green)
    status, told = check(tenant, blue, "b", database_name=green, graph={"c": frozenset()})
    assert told is not None and "schemagate cannot tell" in told
    assert status.revision is not None and status.revision.history == ["c"]
    assert status.revision.history_of is not None and blue.revision.history_of is not None
    assert status.revision.history_of.endswith(f"/{green}")
    # Same server: the system identifier is the same, the database name tells them apart.
    assert status.revision.history_of.split("/")[0] == blue.revision.history_of.split("/")[0]
