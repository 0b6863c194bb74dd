"""Cheap at idle: the pods come from the watch, a pod already right is not patched again,
and a status in which nothing changed is not rewritten. Counted by the operator's own
metric `schemagate_api_requests_total` and by the object's resourceVersion."""

from __future__ import annotations

import re

from localenv import operator as local_operator
from tests.cluster.operator_fixtures import VerifiedBackend
from tests.cluster.scenario import Backend, Database, after_checks
from tests.support.wait import wait_for


def requests(operator: local_operator.OperatorProcess) -> dict[tuple[str, str], float]:
    """The operator's API requests so far, by (verb, resource)."""
    return {(verb, resource): float(value) for resource, verb, value in re.findall(
        r'^schemagate_api_requests_total\{resource="([^"]+)",verb="([^"]+)"\} (\S+)$',
        operator.metrics(), re.MULTILINE)}


def last_verified(operator: local_operator.OperatorProcess, namespace: str) -> float:
    found = re.search(r'^schemagate_last_verified_timestamp_seconds\{name="backend-schema",'
                      rf'namespace="{namespace}"\}} (\S+)$', operator.metrics(), re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_a_pod_created_after_the_check_opens_without_listing_the_namespace(
        backend: Backend, db: Database, operator: local_operator.OperatorProcess) -> None:
    db.migrate()
    backend.secret(db.url())
    backend.schema()
    backend.wait_reason("Verified")
    backend.deployment(replicas=2)
    wait_for("both gates open", lambda: backend.gate_states() == ["True", "True"], timeout=20)
    backend.kubectl("scale", "deployment/backend", "--replicas=3")
    wait_for("the third pod's gate open",
             lambda: backend.gate_states() == ["True"] * 3, timeout=20)
    made = requests(operator)
    assert made.get(("list", "pods"), 0) == 0, made  # the pod watch's index, not a LIST
    assert made.get(("patch", "pods/status"), 0) >= 3


def test_a_pod_whose_condition_is_right_is_not_patched_and_status_not_rewritten_at_idle(
        db: Database, operator: local_operator.OperatorProcess,
        verified_backend: VerifiedBackend) -> None:
    backend = verified_backend(replicas=2)  # verifyIntervalSeconds: 5
    wait_for("status counting both pods open", lambda: backend.get(
        "dbschema", "backend-schema")["status"]["gate"].get("ready") == 2, timeout=15)
    # One more pass, which still may write what it found first: once a second check has
    # ended, the first one's pass has written all it had to.
    after_checks(operator.metrics, 2)
    before = backend.get("dbschema", "backend-schema")
    patched = requests(operator).get(("patch", "pods/status"), 0)
    verified = last_verified(operator, backend.namespace)
    after_checks(operator.metrics, 3)  # three checks of the database

    after = backend.get("dbschema", "backend-schema")
    assert last_verified(operator, backend.namespace) >= verified + 5  # it did look
    assert requests(operator).get(("patch", "pods/status"), 0) == patched
    # Nothing a user sees changed: the object was not written (lastVerifiedTime waits
    # for the heartbeat), so watchers and etcd see nothing either.
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["status"]["lastVerifiedTime"] == before["status"]["lastVerifiedTime"]
    # A change is still written at once: a dropped table.
    db.execute("DROP TABLE subscriptions CASCADE")
    drifted = backend.wait_reason("StampedButMissing", timeout=15)
    assert "subscriptions" in drifted["message"]
    assert backend.gate_states() == ["True", "True"]  # onDrift: Hold
