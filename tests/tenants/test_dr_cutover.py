"""A DR cutover: a schema verified on database X, which went from A to C, then its
Secret pointed at database Y on the same server, restored at B (a revision never seen
on X). The history starts again for Y (`historyOf` names Y), and a new pod that names
X's C, which Y lacks, stays closed with the "cannot tell" message; a pod naming B
opens."""

from __future__ import annotations

from typing import Any

from tests.cluster.scenario import V1_REVISION, V2_REVISION, Backend, Database
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

SCHEMA = "cutover"
#: Y's revision: between X's A and C, never seen on X.
B = "5d1e0b"


def at(backend: Backend, heads: list[str]) -> dict[str, Any]:
    return wait_for(f"the operator to see the database at {heads}",
                    lambda: revision_status(backend, SCHEMA),
                    lambda seen: seen.get("current") == heads, timeout=60)


def test_a_secret_pointed_at_another_database_starts_its_history_anew(
        hostile: Backend, victim: Victim, alive: Alive) -> None:
    x = hostile.db
    x.migrate()  # A
    hostile.secret(x.url())
    hostile.schema(SCHEMA)
    at(hostile, [V1_REVISION])
    x.migrate_v2()  # C
    on_x = at(hostile, [V2_REVISION])
    assert str(on_x.get("historyOf")).endswith(f"/{x.name}"), on_x
    assert on_x.get("history", [])[-1:] == [V2_REVISION], on_x

    y = Database(x.pg)  # the same server: only the database name tells them apart
    y.migrate()
    stamp(y, B)
    hostile.secret(y.url())
    on_y = at(hostile, [B])
    server = str(on_x["historyOf"]).rsplit("/", 1)[0]
    assert on_y.get("historyOf") == f"{server}/{y.name}", on_y
    assert on_y.get("history") == [B], f"X's history carried over to Y: {on_y}"

    hostile.apply_all(revision_pod(SCHEMA, "names-c", V2_REVISION),
                      revision_pod(SCHEMA, "names-b", B))
    judged = wait_for("the pod naming B open, the pod naming C judged",
                      lambda: pod_gates(hostile, SCHEMA), lambda seen: seen.get(
                          "names-b", {}).get("status") == "True" and seen.get(
                          "names-c", {}).get("status") in ("True", "False"), timeout=60)
    assert judged["names-c"]["status"] == "False", \
        f"a pod naming {V2_REVISION} opened on a database without it: {judged['names-c']}"
    assert "cannot tell" in judged["names-c"].get("message", ""), judged["names-c"]
    unharmed(victim, alive)
