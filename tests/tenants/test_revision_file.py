"""One 900 KB revision file (`x=[0,0,0,…]`) in a tenant's `run: Alembic` ConfigMap,
the operator under the chart's 384Mi memory limit: no OOMKill, the hostile schema gets a
reason of its own, the victim's new pod opens."""

from __future__ import annotations

import yaml

from tests.cluster.scenario import Backend
from tests.support.wait import wait_for
from tests.tenants.tenancy import Alive, Victim, reasons, taken, unharmed

SIZE = 900 * 1024
SCHEMA = "bomb"


def revision_file(size: int) -> str:
    head = 'revision = "b0mb00"\ndown_revision = None\n\nx = ['
    zeros = (size - len(head) - 2) // 2
    return head + "0," * zeros + "0]\n"


def test_a_900_kb_revision_file_costs_the_operator_no_restart(
        hostile: Backend, victim: Victim, alive: Alive) -> None:
    hostile.secret(hostile.db.url())
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "migrations"},
              "data": {"b0mb00_bomb.py": revision_file(SIZE)}}
    # `create`, not `apply`: apply would copy the file into an annotation (256 KiB at most).
    hostile.kubectl("create", "-f", "-", input=yaml.safe_dump(config))
    hostile.schema(SCHEMA, migrations={"run": "Alembic",
                                       "alembic": {"configMapRef": {"name": "migrations"}}})
    taken(hostile, [SCHEMA])

    wait_for("the hostile schema's reason (or the operator's restart)",
             lambda: (reasons(hostile)[SCHEMA], alive.operator.restarts()),
             lambda seen: bool(seen[0]) or seen[1] != alive.before, timeout=60)
    unharmed(victim, alive)
    assert reasons(hostile)[SCHEMA], "the hostile schema has no reason"
