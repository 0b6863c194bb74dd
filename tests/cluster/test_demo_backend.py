"""The demo backend's image runs its own CMD on the node (schemagate/backend:dev, no
`command`): without its tables it exits 3 and says which are missing, as the incident's
backend did; with them it serves."""

from __future__ import annotations

import json
from typing import Any

from tests.cluster.scenario import TABLES, Backend, Database, wait_for


def backend_pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
        "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "app", "image": "schemagate/backend:dev",
                        "imagePullPolicy": "Never",
                        "envFrom": [{"secretRef": {"name": "backend-db"}}]}]}}


def state(backend: Backend, name: str) -> dict[str, Any]:
    pod = json.loads(backend.kubectl("get", "pod", name, "-o", "json"))
    statuses = pod.get("status", {}).get("containerStatuses") or [{}]
    return dict(statuses[0].get("state", {}))


def test_the_backend_image_exits_3_without_its_tables_and_serves_with_them(
        backend: Backend, db: Database) -> None:
    backend.secret(db.url())
    backend.apply(backend_pod("before"))
    ended = wait_for("the backend to exit", lambda: state(backend, "before").get("terminated"),
                     timeout=120)
    assert ended["exitCode"] == 3
    said = backend.kubectl("logs", "before")
    assert "DeterministicStartupError: tables missing: " + ", ".join(TABLES) in said
    assert db.password not in said

    db.migrate()
    backend.apply(backend_pod("after"))
    wait_for("the backend to serve", lambda: state(backend, "after").get("running")
             and "serving on port 8000" in backend.kubectl("logs", "after"), timeout=120)
    assert "terminated" not in state(backend, "after")
