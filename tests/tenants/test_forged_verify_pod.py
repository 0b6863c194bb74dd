"""verifyFrom: Pod, and a pod the operator did not make: it carries the hash annotation
copied from a kept verify pod and writes a "verified" termination message copied from an
earlier check, after a table was dropped. A new backend pod stays closed: the operator
trusts only the verify pods it created."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.cluster.scenario import Backend
from tests.support.wait import wait_for
from tests.tenants.tenancy import IMAGE, Alive, Victim, parses_as_rfc3339, unharmed

SCHEMA = "cloned"
VERIFY_LABEL = "schemagate.io/verify-of"
HASH_ANNOTATION = "schemagate.io/verify-hash"
#: The forged pod runs this long before it writes its verdict: long enough to be under
#: way when the operator's next pass looks for a verify pod to follow.
FORGED_RUNS = 20


def kept_verified_pod(backend: Backend) -> tuple[str, str]:
    """(hash annotation, termination message) of a finished verify pod that found the
    schema Verified, as anyone who may list pods in the namespace reads them."""
    items = json.loads(backend.kubectl("get", "pods", "-l", f"{VERIFY_LABEL}={SCHEMA}",
                                       "-o", "json"))["items"]
    for pod in items:
        for status in pod.get("status", {}).get("containerStatuses") or []:
            message = (status.get("state", {}).get("terminated") or {}).get("message") or ""
            if '"reason":"Verified"' in message:
                return pod["metadata"]["annotations"][HASH_ANNOTATION], message
    return "", ""


def forged_pod(hash_: str, verdict: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "forged-verify", "labels": {VERIFY_LABEL: SCHEMA},
        "annotations": {HASH_ANNOTATION: hash_}},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "verify", "image": IMAGE, "imagePullPolicy": "Never",
                                 "env": [{"name": "VERDICT", "value": verdict}],
                                 "command": ["sh", "-c", f'sleep {FORGED_RUNS}; printf %s '
                                             '"$VERDICT" > /dev/termination-log']}]}}


def new_pod_and_status(backend: Backend, old: set[str]) -> dict[str, Any]:
    status = backend.get("dbschema", SCHEMA).get("status", {})
    new = [p for p in backend.pods(SCHEMA) if p["metadata"]["name"] not in old]
    return {"gate": [Backend.pod_condition(p, f"schemagate.io/{SCHEMA}").get("status", "absent")
                     for p in new],
            "reason": backend.condition(SCHEMA).get("reason"),
            "verifyPod": (status.get("database") or {}).get("verifyPod"),
            "lastVerifiedTime": status.get("lastVerifiedTime")}


def test_a_pod_forging_a_verify_pods_verdict_opens_no_gate(
        hostile: Backend, victim: Victim, alive: Alive) -> None:
    db = hostile.db
    db.migrate()
    hostile.secret(db.url())
    deployment = hostile.deployment_manifest(gate=SCHEMA, replicas=1, env=[{
        "name": "DATABASE_URL",
        "valueFrom": {"secretKeyRef": {"name": "backend-db", "key": "DATABASE_URL"}}}])
    # The owners' consent to clone it, both ways (the label on the Deployment object is
    # set by deployment_manifest; the annotation is the consent's own place).
    deployment["metadata"]["annotations"] = {"schemagate.io/clone-for": SCHEMA}
    hostile.apply(deployment)
    hostile.schema(SCHEMA, database={
        "urlSecretRef": {"name": "backend-db", "key": "DATABASE_URL"},
        "connectTimeoutSeconds": 2, "verifyFrom": "Pod",
        "verifyPod": {"fromDeployment": {"name": "backend", "container": "app"}}})
    hostile.wait_reason("Verified", SCHEMA, timeout=90)
    hash_, verdict = wait_for("a kept verify pod with a Verified verdict",
                              lambda: kept_verified_pod(hostile), lambda kept: bool(kept[0]),
                              timeout=30)

    db.execute("DROP TABLE agent_executions")
    hostile.wait_reason("StampedButMissing", SCHEMA, timeout=60)
    old = {p["metadata"]["name"] for p in hostile.pods(SCHEMA)}
    hostile.kubectl("scale", "deployment/backend", f"--replicas={len(old) + 1}")
    wait_for("the new backend pod, closed", lambda: new_pod_and_status(hostile, old)["gate"],
             lambda gate: gate == ["False"], timeout=60)

    hostile.apply(forged_pod(hash_, verdict))
    forged_written = datetime.now(UTC) + timedelta(seconds=FORGED_RUNS + 1)

    def decided(seen: dict[str, Any]) -> bool:
        stamp = seen["lastVerifiedTime"]
        return seen["gate"] == ["True"] or (parses_as_rfc3339(stamp) and datetime.fromisoformat(
            str(stamp)[:-1] + "+00:00") > forged_written + timedelta(seconds=1))

    seen = wait_for("a check that ended after the forged verdict was written",
                    lambda: new_pod_and_status(hostile, old), decided, timeout=90)
    assert seen["gate"] == ["False"], f"the new pod opened on a forged verdict: {seen}"
    assert seen["reason"] == "StampedButMissing" and seen["verifyPod"] != "forged-verify", seen
    unharmed(victim, alive)
