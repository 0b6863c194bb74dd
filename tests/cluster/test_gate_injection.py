"""The chart's MutatingAdmissionPolicy on the real API server: a pod created with the
label schemagate.io/schema gets its readiness gate, without a webhook server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from localenv.cluster import Cluster
from tests.chart import of_kind, render
from tests.support.wait import wait_for

GATE = {"conditionType": "schemagate.io/backend-schema"}


def pod(name: str, labels: dict[str, str], gates: list[dict[str, str]] | None = None
        ) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": "schemagate/backend:dev"}]}
    if gates is not None:
        spec["readinessGates"] = gates
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": spec}


@pytest.fixture
def injection(cluster: Cluster, namespace: str) -> Iterator[list[dict[str, Any]]]:
    """The chart's policy and binding, bound to this test's namespace only."""
    manifests = render({"watchNamespaces": f"{{{namespace}}}"}, release=namespace,
                       namespace=namespace)
    objects = [*of_kind(manifests, "MutatingAdmissionPolicy"),
               *of_kind(manifests, "MutatingAdmissionPolicyBinding")]
    assert len(objects) == 2
    text = yaml.safe_dump_all(objects)
    applied = cluster.kubectl("apply", "-f", "-", input=text)
    assert applied.returncode == 0, applied.stderr
    yield objects
    cluster.kubectl("delete", "-f", "-", "--ignore-not-found", input=text)


def admitted(cluster: Cluster, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """The pod as the API server would store it (admission runs; nothing is created)."""
    result = cluster.kubectl("-n", namespace, "create", "--dry-run=server", "-o", "json",
                             "-f", "-", input=json.dumps(manifest))
    assert result.returncode == 0, result.stderr
    stored: dict[str, Any] = json.loads(result.stdout)
    return stored


def test_a_labelled_pod_gets_the_gate_and_others_are_untouched(
        cluster: Cluster, namespace: str, injection: list[dict[str, Any]]) -> None:
    labelled = pod("labelled", {"app": "backend", "schemagate.io/schema": "backend-schema"})
    # The policy takes effect once the API server's informer has it: poll, never sleep.
    gates = wait_for("the injected readiness gate", lambda: admitted(
        cluster, namespace, labelled)["spec"].get("readinessGates"), timeout=30)
    assert gates == [GATE]

    plain = admitted(cluster, namespace, pod("plain", {"app": "backend"}))
    assert "readinessGates" not in plain["spec"]

    by_hand = admitted(cluster, namespace, pod(
        "by-hand", {"schemagate.io/schema": "backend-schema"}, gates=[GATE]))
    assert by_hand["spec"]["readinessGates"] == [GATE], "a hand-written gate is not doubled"

    other = {"conditionType": "example.com/warm"}
    beside = admitted(cluster, namespace, pod(
        "beside", {"schemagate.io/schema": "backend-schema"}, gates=[other]))
    assert beside["spec"]["readinessGates"] == [other, GATE]


def test_a_pod_outside_the_watched_namespaces_is_untouched(
        cluster: Cluster, namespace: str, injection: list[dict[str, Any]], kube: Any) -> None:
    labelled = pod("labelled", {"schemagate.io/schema": "backend-schema"})
    wait_for("the injected readiness gate",
             lambda: admitted(cluster, namespace, labelled)["spec"].get("readinessGates"),
             timeout=30)
    elsewhere = f"{namespace}-x"
    kube.core.create_namespace({"metadata": {"name": elsewhere}})
    try:
        wait_for("the default ServiceAccount",
                 lambda: kube.core.read_namespaced_service_account("default", elsewhere),
                 timeout=30)
        assert "readinessGates" not in admitted(cluster, elsewhere, labelled)["spec"]
    finally:
        kube.core.delete_namespace(elsewhere)
