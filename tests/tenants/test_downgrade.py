"""A database that went from A to C in one migration and then back to B (a `downgrade
-1`, or a backup restored at B), B never seen before: a new pod that names C stays
closed with the "cannot tell" message, and a pod that names B opens."""

from __future__ import annotations

from tests.cluster.scenario import V1_REVISION, Backend
from tests.support.wait import wait_for
from tests.tenants.tenancy import (
    Alive,
    Victim,
    pod_gates,
    revision_pod,
    revision_status,
    stamp,
    unharmed,
)

SCHEMA = "downgraded"
B, C = "5d1e0b", "6a9f3c"


def current(backend: Backend) -> list[str]:
    return list(revision_status(backend, SCHEMA).get("current") or [])


def test_a_pod_naming_a_revision_the_database_went_back_from_stays_closed(
        hostile: Backend, victim: Victim, alive: Alive) -> None:
    db = hostile.db
    db.migrate()  # A, with the declared tables
    hostile.secret(db.url())
    hostile.schema(SCHEMA)
    wait_for(f"the operator to see the database at A ({V1_REVISION})", lambda: current(hostile),
             lambda seen: seen == [V1_REVISION], timeout=60)

    # A to C in one `alembic upgrade head`: B's and C's tables, stamped C.
    db.execute("CREATE TABLE b_things (id int)")
    db.execute("CREATE TABLE c_things (id int)")
    stamp(db, C)
    wait_for(f"the operator to see the database at C ({C})", lambda: current(hostile),
             lambda seen: seen == [C], timeout=30)
    # Back to B, which the operator never saw: C's table dropped, stamped B.
    db.execute("DROP TABLE c_things")
    stamp(db, B)
    wait_for(f"the operator to see the database back at B ({B})", lambda: current(hostile),
             lambda seen: seen == [B], timeout=30)

    hostile.apply_all(revision_pod(SCHEMA, "names-c", C), revision_pod(SCHEMA, "names-b", B))
    judged = wait_for("the pod naming B open, the pod naming C judged",
                      lambda: pod_gates(hostile, SCHEMA), lambda seen: seen.get(
                          "names-b", {}).get("status") == "True" and seen.get(
                          "names-c", {}).get("status") in ("True", "False"), timeout=60)
    assert judged["names-c"]["status"] == "False", \
        f"a pod naming {C} opened on a database without {C}: {judged['names-c']}"
    assert "cannot tell" in judged["names-c"].get("message", ""), judged["names-c"]
    assert hostile.ready_states(SCHEMA).count("True") <= 1
    unharmed(victim, alive)
