"""The start-up gate (spec.gate.holdStart, the chart's gateInjection.holdStart) on the
real node, with the operator running as the chart's ServiceAccount, by that account's own
token: a pod is held before it starts, so a backend that exits when its tables are
missing never crash-loops, and starts once the schema is right."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from localenv import operator as local_operator
from localenv.cluster import Cluster
from localenv.postgres import LocalPostgres
from schemagate import kube as kube_api
from tests.cluster.fixtures import Kube
from tests.cluster.identities import Identity
from tests.cluster.scenario import TABLES, V2_TABLE, Backend, Database, wait_for
from tests.cluster.strict_backend import container, held, restarts
from tests.cluster.test_rbac import Release, installed, release_namespace  # noqa: F401

pytestmark = pytest.mark.cluster
GATE = "schemagate.io/backend-schema"
HOLD = {"podSelector": {"matchLabels": {"app": "backend-schema"}}, "holdStart": True}


def token_identity(cluster: Cluster, release: Release, directory: Path) -> Identity:
    """A kubeconfig holding a token of the chart's ServiceAccount (TokenRequest)."""
    made = cluster.kubectl("-n", release.namespace, "create", "token", release.name,
                           "--duration=1h")
    assert made.returncode == 0, made.stderr
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    admin["users"] = [{"name": "sa", "user": {"token": made.stdout.strip()}}]
    for context in admin["contexts"]:
        context["context"]["user"] = "sa"
    directory.mkdir(parents=True, exist_ok=True)
    kubeconfig = directory / "token.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(admin))
    kubeconfig.chmod(0o600)
    return Identity(f"system:serviceaccount:{release.namespace}:{release.name}", kubeconfig,
                    cluster.bin_dir / "kubectl")


@pytest.fixture
def holding(cluster: Cluster, namespace: str, release_namespace: str,  # noqa: F811
            tmp_path: Path, crd: None) -> Iterator[tuple[Release, Identity]]:
    """The chart with gateInjection.holdStart, watching the test's namespace (and this
    tree's CRD, which knows spec.gate.holdStart); the ServiceAccount's token."""
    values = {"watchNamespaces": f"{{{namespace}}}", "gateInjection.holdStart": "true"}
    with installed(cluster, release_namespace, values, tmp_path / "identity") as release:
        yield release, token_identity(cluster, release, tmp_path / "token")


def deployment(backend: Backend, version: str, tables: list[str]) -> None:
    """The backend of `version`, exiting 3 unless `tables` exist; its pods carry the
    label schemagate.io/schema only: both gates come from the chart's policies."""
    # The policies take effect once the API server's informers have them and the schema.
    probe = {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "probe", "labels": {"schemagate.io/schema": "backend-schema"}},
        "spec": {"containers": [{"name": "app", "image": "schemagate/backend:dev"}]}}
    wait_for("both gates injected", lambda: (spec := admitted(
        backend.cluster, backend.namespace, probe)["spec"]).get("schedulingGates")
        and spec.get("readinessGates"), timeout=30)
    manifest = backend.deployment_manifest(version=version)
    spec = manifest["spec"]["template"]["spec"]
    del spec["readinessGates"]
    spec["containers"] = [container(tables)]
    backend.apply(manifest)


def pods_of(backend: Backend, version: str) -> list[dict[str, Any]]:
    return [p for p in backend.pods() if p["metadata"]["labels"].get("version") == version]


def gate_reason(pod: dict[str, Any]) -> str | None:
    return Backend.pod_condition(pod, GATE).get("reason")


def start(identity: Identity, namespace: str, log: Path) -> local_operator.OperatorProcess:
    return local_operator.start(identity.kubeconfig, [namespace], log)


def refusals(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines()
            if "403" in line or "orbidden" in line or "422" in line]


def test_a_rolling_update_serves_from_the_old_pods_while_the_new_ones_are_held(
        cluster: Cluster, namespace: str, holding: tuple[Release, Identity],
        postgres: LocalPostgres, tmp_path: Path) -> None:
    _, token = holding
    db = Database(postgres)
    backend = Backend(cluster, namespace, db)
    log = tmp_path / "operator.log"
    operator = start(token, namespace, log)
    try:
        backend.secret(db.url())
        db.migrate()
        backend.schema(gate=HOLD)
        backend.wait_reason("Verified", timeout=60)
        deployment(backend, "v1", TABLES)
        wait_for("the Deployment Available", backend.available, timeout=90)
        v1 = pods_of(backend, "v1")
        assert len(v1) == 2 and not any(held(p) for p in v1)
        assert restarts(v1) == 0

        # The next release needs a table the database does not have yet.
        backend.schema(gate=HOLD, tables=[*TABLES, V2_TABLE])
        backend.wait_reason("StampedButMissing", timeout=30)
        deployment(backend, "v2", [*TABLES, V2_TABLE])
        # The operator has answered the new pod (its gate condition) and left it held.
        new = wait_for("the new pod held and answered", lambda: [
            p for p in pods_of(backend, "v2") if gate_reason(p) == "StampedButMissing"],
            timeout=60)
        assert held(new[0]), new[0]["spec"]
        assert new[0]["status"].get("phase") == "Pending"
        assert not new[0]["spec"].get("nodeName"), "a held pod is never scheduled"
        assert not new[0]["status"].get("containerStatuses"), "nor started"
        assert backend.available(), "the old pods serve through the rollout"
        assert backend.ready_states("backend-schema").count("True") == 2

        db.migrate_v2()
        wait_for("the rollout done", lambda: len(pods_of(backend, "v2")) == 2
                 and not pods_of(backend, "v1") and backend.available(), timeout=120)
        v2 = pods_of(backend, "v2")
        assert restarts(v2) == 0, "started only once its tables were there"
        assert all(Backend.pod_condition(p, GATE)["observedGeneration"]
                   == p["metadata"]["generation"] for p in v2)
    finally:
        backend.kubectl("delete", "dbschema", "--all", "--timeout=30s", check=False)
        operator.stop()
    assert refusals(log) == []


def test_held_pods_stay_held_through_a_restart_of_the_operator_then_start(
        cluster: Cluster, namespace: str, holding: tuple[Release, Identity],
        postgres: LocalPostgres, tmp_path: Path) -> None:
    _, token = holding
    db = Database(postgres)
    backend = Backend(cluster, namespace, db)
    first = start(token, namespace, tmp_path / "first.log")
    second = None
    try:
        backend.secret(db.url())
        backend.schema(gate=HOLD)
        backend.wait_reason("NoRevision", timeout=60)
        deployment(backend, "v1", TABLES)
        wait_for("both pods held and answered", lambda: [
            gate_reason(p) for p in backend.pods()] == ["NoRevision"] * 2, timeout=60)
        first.stop()

        second = start(token, namespace, tmp_path / "second.log")
        # Two checks of the new process have gone by over the held pods.
        wait_for("two checks by the new operator", lambda: checks(second) >= 2, timeout=60)
        pods = backend.pods()
        assert len(pods) == 2 and all(held(p) for p in pods), [p["spec"] for p in pods]

        db.migrate()
        wait_for("the Deployment Available", backend.available, timeout=90)
        pods = backend.pods()
        assert not any(held(p) for p in pods)
        assert restarts(pods) == 0
    finally:
        backend.kubectl("delete", "dbschema", "--all", "--timeout=30s", check=False)
        first.stop()
        if second is not None:
            second.stop()
    assert refusals(tmp_path / "first.log") == [] and refusals(tmp_path / "second.log") == []


def checks(operator: local_operator.OperatorProcess) -> float:
    """Checks the operator has finished (its schemagate_checks_total)."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in operator.metrics().splitlines()
               if line.startswith("schemagate_checks_total{"))


def refusal(api: kube_api.Kube, namespace: str, pod: str, patch: list[dict[str, Any]]
            ) -> str:
    """The API server's answer to a JSON patch of the pod: "" when it took it. (kubectl
    patch would first get the pod, which the ServiceAccount may not.)"""
    try:
        api.core.patch_namespaced_pod(pod, namespace, patch, _preload_content=False)
    except kube_api.ApiError as exc:
        return f"{exc.status} {exc.body}"
    return ""


def test_the_service_account_may_remove_schemagate_scheduling_gates_and_nothing_else(
        cluster: Cluster, namespace: str, holding: tuple[Release, Identity], kube: Kube
        ) -> None:
    _, token = holding
    # The operator's own client, with the ServiceAccount's token.
    operator_api = kube_api.Kube(kube_api.connect(str(token.kubeconfig)))
    kube.core.create_namespaced_pod(namespace, {
        "metadata": {"name": "held", "labels": {"app": "x"}},
        "spec": {"schedulingGates": [{"name": "example.com/other"}, {"name": GATE}],
                 "containers": [{"name": "app", "image": "schemagate/backend:dev"}]}})
    tries = itertools.count()

    def relabel() -> str:
        """A label change, a new value each time (the same one again would be no change)."""
        return refusal(operator_api, namespace, "held", [
            {"op": "add", "path": "/metadata/labels/extra", "value": f"y{next(tries)}"}])

    # The chart's policy takes effect once the API server's informer has it.
    refused = wait_for("the label change refused", relabel, timeout=30)
    assert "may not change a pod's metadata" in refused, refused
    other = refusal(operator_api, namespace, "held",
                    [{"op": "remove", "path": "/spec/schedulingGates/0"}])
    assert "only remove schemagate.io/" in other, other
    image = refusal(operator_api, namespace, "held", [
        {"op": "replace", "path": "/spec/containers/0/image", "value": "busybox"}])
    assert "may not change a pod's spec" in image, image
    # The operator's release: another pod of that name is left alone.
    uid = kube.core.read_namespaced_pod("held", namespace).metadata.uid
    assert operator_api.release_start_gate(namespace, "held", "0" * 8 + uid[8:], GATE) is None
    generation = operator_api.release_start_gate(namespace, "held", uid, GATE)
    pod = kube.core.read_namespaced_pod("held", namespace)
    assert [g.name for g in pod.spec.scheduling_gates] == ["example.com/other"]
    assert generation == pod.metadata.generation
    assert not token.can_i("update", "pods", "-n", namespace)
    assert not token.can_i("patch", "pods", "-n", "default")


def test_the_policy_adds_the_scheduling_gate_only_for_a_schema_that_holds_start(
        cluster: Cluster, namespace: str, holding: tuple[Release, Identity],
        backend: Backend) -> None:
    backend.schema(gate=HOLD)
    backend.schema("other-schema")
    labelled = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "labels": {"schemagate.io/schema": "backend-schema"}},
                "spec": {"containers": [{"name": "app", "image": "schemagate/backend:dev"}]}}
    gates = wait_for("the injected scheduling gate", lambda: admitted(
        cluster, namespace, labelled)["spec"].get("schedulingGates"), timeout=30)
    assert gates == [{"name": GATE}]
    other = json.loads(json.dumps(labelled))
    other["metadata"]["labels"]["schemagate.io/schema"] = "other-schema"
    assert "schedulingGates" not in admitted(cluster, namespace, other)["spec"]
    nameless = json.loads(json.dumps(labelled))
    nameless["metadata"]["labels"]["schemagate.io/schema"] = "no-such-schema"
    assert "schedulingGates" not in admitted(cluster, namespace, nameless)["spec"]


def admitted(cluster: Cluster, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
    result = cluster.kubectl("-n", namespace, "create", "--dry-run=server", "-o", "json",
                             "-f", "-", input=json.dumps(manifest))
    assert result.returncode == 0, result.stderr
    stored: dict[str, Any] = json.loads(result.stdout)
    return stored
