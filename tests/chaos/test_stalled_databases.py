"""Databases that accept, authenticate and then never answer, beside healthy ones: the
healthy ones go on as if nothing were wrong, the stalled ones say so within their
deadline, and nothing ever takes the whole operator down."""

from __future__ import annotations

import time
from typing import Any

from tests.chaos.conftest import Backend, Database, Operator, healthy, through
from tests.cluster.scenario import TABLES, after_checks
from tests.stalling import StallingProxy
from tests.support.wait import wait_for

STALLED = 50


def stalled_schema(backend: Backend, index: int) -> dict[str, Any]:
    manifest = backend.schema_manifest(f"stalled-{index:02d}")
    manifest["spec"]["database"]["urlSecretRef"]["name"] = "stalled-db"
    return manifest


def first_status_time(backend: Backend, name: str, since: float, timeout: float) -> float:
    wait_for(f"a status on {name}", lambda: backend.condition(name).get("reason"),
             timeout=timeout, interval=0.05)
    return time.monotonic() - since


def test_fifty_schemas_on_a_stalled_database_never_delay_a_healthy_one(
        backend: Backend, db: Database, stalled: StallingProxy,
        chaos_operator: Operator) -> None:
    healthy(backend, db, TABLES)
    backend.secret(through(db, stalled), name="stalled-db")
    backend.apply_all(*(stalled_schema(backend, i) for i in range(STALLED)))
    chaos_operator.start()
    # The stalled checks are in flight: one shared pass per database URL, so one connection.
    wait_for("the stalled checks to start", lambda: stalled.connections >= 1, timeout=30)

    created = time.monotonic()
    backend.schema()
    first = first_status_time(backend, "backend-schema", created, timeout=10)
    assert first < 2.0, f"the healthy schema's first status took {first:.1f} s"
    assert backend.condition()["reason"] == "Verified"

    # The pod names the revision it needs: no settling time for the first pods of a
    # release (gate.NEW_RELEASE_SETTLE), so the first check after it serves it.
    backend.deployment(replicas=1, revision="3f2a9c")
    pod = wait_for("the backend's pod", backend.pods, timeout=60, interval=0.05)[0]
    seen = time.monotonic()
    wait_for("the new pod's gate to open", lambda: backend.gate_states() == ["True"],
             timeout=30, interval=0.05)
    opened = time.monotonic() - seen
    # The pod was seen within a poll of the API server having it; the check it waits for
    # starts on its event, and the gate opens right after that check.
    assert opened < 1.5, f"the new pod {pod['metadata']['name']} opened after {opened:.1f} s"

    # Meanwhile every stalled schema says what is wrong, in time, and fails closed.
    for index in (0, STALLED // 2, STALLED - 1):
        condition = backend.wait_reason("DatabaseUnreachable", name=f"stalled-{index:02d}",
                                        timeout=60)
        assert "no answer within" in condition["message"]
        assert db.password not in condition["message"]
    assert chaos_operator.healthz() == 200  # one database's silence is not the operator's


def test_a_database_that_freezes_closes_the_gate_for_new_pods_and_time_tells_the_truth(
        backend: Backend, db: Database, path: StallingProxy, chaos_operator: Operator) -> None:
    healthy(backend, db, TABLES)
    backend.secret(through(db, path))
    chaos_operator.start()
    backend.schema()
    backend.deployment(replicas=1)
    wait_for("the first pod's gate", lambda: backend.gate_states() == ["True"], timeout=60)
    verified = backend.get("dbschema", "backend-schema")["status"]["lastVerifiedTime"]

    path.freeze()
    frozen = time.monotonic()
    # The stall never ends by itself: a status at all says the check was cut, and its
    # message says by the deadline (connectTimeoutSeconds 2: 2 s to connect, 2 s of
    # statements, 1 s of grace), not by the server. No wall-clock bound here: on the
    # loaded CI machine the write came 15.0 s after the freeze once (interval included).
    condition = backend.wait_reason("DatabaseUnreachable", timeout=40)
    assert "no answer within 5 s" in condition["message"]
    ready = backend.condition(type="Ready")
    assert ready["status"] == "False"

    backend.kubectl("scale", "deployment/backend", "--replicas=2")
    wait_for("the second pod", lambda: len(backend.pods()) == 2, timeout=60)
    assert chaos_operator.process is not None
    after_checks(chaos_operator.process.metrics, 2)  # a whole check with the second pod
    assert sorted(backend.gate_states()) == ["False", "True"], \
        "a pod created while the database is silent must stay closed (the old one holds)"
    status = backend.get("dbschema", "backend-schema")["status"]
    assert status["lastVerifiedTime"] == verified or \
        status["lastVerifiedTime"] <= time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(frozen))

    path.thaw()
    wait_for("both gates once the database answers again",
             lambda: backend.gate_states() == ["True", "True"], timeout=30)
    assert backend.condition()["reason"] == "Verified"
