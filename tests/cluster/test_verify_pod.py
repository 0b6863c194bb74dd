"""verifyFrom: Pod on the real node: a backend whose only way to its database is a proxy
sidecar on 127.0.0.1 inside its own pod, its role logging in without a password (as
with IAM database authentication), is verified from a pod cloned from it.

The proxy is a small TCP forwarder (`localenv.proxy`) run from the operator's image as a
native sidecar with a startup probe, the way GKE runs the Cloud SQL Auth Proxy; it
forwards 127.0.0.1:5432 to the session's PostgreSQL at the cluster's host address.
pg_hba trusts the backend's role from the pods' networks and the role has no password:
the Secret's URL is `postgresql://role@127.0.0.1:5432/db`, which reaches nothing from
the operator (here a process on the host). The namespace enforces Pod Security
`restricted`, so the verify pod is admitted only as such.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localenv import node as local_node
from localenv import operator as local_operator
from localenv import proxy
from localenv.cluster import Cluster
from localenv.postgres import LocalPostgres
from tests.cluster.scenario import Backend, Database, after_checks
from tests.support.wait import wait_for

IMAGE = "schemagate:dev"
VERIFY_LABEL = "schemagate.io/verify-of"
RESTRICTED = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


@contextlib.contextmanager
def trusted_without_password(pg: LocalPostgres, db: Database) -> Iterator[str]:
    """The backend's role with no password, trusted from the pods' networks (first in
    pg_hba, as IAM authentication would let it in); yields its password-less URL
    through the proxy on 127.0.0.1."""
    hba = pg.pgdata / "pg_hba.conf"
    before = hba.read_text()
    trust = "".join(f'host all "{db.user}" {net} trust\n' for net in local_node.CLIENT_NETWORKS)
    hba.write_text(trust + before)
    db.admin("SELECT pg_reload_conf()")
    db.admin(f'ALTER ROLE "{db.user}" PASSWORD NULL')
    try:
        yield f"postgresql://{db.user}@127.0.0.1:5432/{db.name}"
    finally:
        hba.write_text(before)
        db.admin("SELECT pg_reload_conf()")


def proxied_deployment(backend: Backend, pg: LocalPostgres, replicas: int = 2
                       ) -> dict[str, Any]:
    """The backend with its proxy as a native sidecar; restricted, as on GKE Autopilot."""
    manifest = backend.deployment_manifest(replicas=replicas, env=[{
        "name": "DATABASE_URL",
        "valueFrom": {"secretKeyRef": {"name": "backend-db", "key": "DATABASE_URL"}}}])
    pod = manifest["spec"]["template"]["spec"]
    pod["securityContext"] = {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                              "seccompProfile": {"type": "RuntimeDefault"}}
    pod["containers"][0]["securityContext"] = RESTRICTED
    pod["initContainers"] = [proxy.sidecar(str(pg.pod_host), pg.port, IMAGE)]
    return manifest


def verify_pods(backend: Backend) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(backend.kubectl(
        "get", "pods", "-l", f"{VERIFY_LABEL}=backend-schema", "-o", "json"))["items"]
    return items


def in_pod(**database: Any) -> dict[str, Any]:
    return {"urlSecretRef": {"name": "backend-db", "key": "DATABASE_URL"},
            "connectTimeoutSeconds": 2, "verifyFrom": "Pod",
            "verifyPod": {"fromDeployment": {"name": "backend", "container": "app"}},
            **database}


@pytest.fixture
def restricted(cluster: Cluster, namespace: str) -> str:
    result = cluster.kubectl("label", "namespace", namespace,
                             "pod-security.kubernetes.io/enforce=restricted")
    assert result.returncode == 0, result.stderr
    return namespace


def start(cluster: Cluster, namespace: str, tmp_path: Path, image: str = IMAGE
          ) -> local_operator.OperatorProcess:
    return local_operator.start(cluster.kubeconfig, [namespace], tmp_path / "operator.log",
                                extra_args=["--verify-image", image])


def test_a_backend_reached_only_through_its_proxy_is_verified_from_a_pod_cloned_from_it(
        cluster: Cluster, restricted: str, tmp_path: Path, backend: Backend, db: Database,
        postgres: LocalPostgres) -> None:
    db.migrate()
    operator = start(cluster, restricted, tmp_path)
    try:
        with trusted_without_password(postgres, db) as url:
            backend.secret(url)
            backend.apply(proxied_deployment(backend, postgres))
            applied = time.monotonic()
            backend.schema(database=in_pod())

            try:
                verified = backend.wait_reason("Verified", timeout=90)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n" + backend.kubectl(
                    "get", "pods", "-o", "wide") + backend.kubectl(
                    "describe", "pods", "-l", VERIFY_LABEL)[-4000:]) from None
            wait_for("both gates open", lambda: backend.gate_states() == ["True", "True"],
                     timeout=30)
            opened = time.monotonic() - applied
            status = backend.get("dbschema", "backend-schema")["status"]
            assert status["database"]["verifiedFrom"] == "Pod"
            assert status["database"]["user"] == db.user and db.name in verified["message"]
            checked_by = status["database"]["verifyPod"]

            # The verify pod: the backend's service account and proxy, our restricted
            # check, no token, no URL, and a label no Service selects.
            (pod,) = [p for p in verify_pods(backend) if p["metadata"]["name"] == checked_by]
            spec = pod["spec"]
            assert pod["metadata"]["labels"] == {VERIFY_LABEL: "backend-schema"}
            assert spec["serviceAccountName"] == "default"
            assert [c["name"] for c in spec["initContainers"]] == ["db-proxy"]
            (verify,) = spec["containers"]
            assert verify["image"] == IMAGE and verify["securityContext"]["runAsNonRoot"]
            mounts = {m["mountPath"]: m["name"] for m in verify["volumeMounts"]}
            assert mounts["/var/run/secrets/kubernetes.io/serviceaccount"] == \
                "schemagate-no-token"
            assert not any(name.startswith("kube-api-access") for name in mounts.values())
            terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
            assert json.loads(terminated["message"])["reason"] == "Verified"
            assert url not in json.dumps(pod), "the URL stays in the backend's Secret"

            # A dropped table: new pods stay closed (onDrift: Hold keeps the open ones).
            db.execute("DROP TABLE agent_executions")
            backend.wait_reason("StampedButMissing", timeout=60)
            backend.kubectl("scale", "deployment/backend", "--replicas=3")
            wait_for("a third pod, closed", lambda: sorted(backend.gate_states()) ==
                     ["False", "True", "True"], timeout=60)
            after_checks(operator.metrics, 2)  # a whole check later, still closed
            assert sorted(backend.gate_states()) == ["False", "True", "True"]
            assert backend.condition()["reason"] == "StampedButMissing"

            # Never two at once; the finished ones beyond the last three are deleted.
            pods = verify_pods(backend)
            running = [p for p in pods if p["status"].get("phase") in ("Pending", "Running")
                       and not p["metadata"].get("deletionTimestamp")]
            assert len(running) <= 1 and len(pods) <= 4, [p["metadata"]["name"] for p in pods]

            # The same schema checked from the operator: at once, naming verifyFrom: Pod.
            backend.kubectl("patch", "dbschema/backend-schema", "--type=json", "-p", json.dumps(
                [{"op": "replace", "path": "/spec/database/verifyFrom", "value": "Operator"}]))
            switched = time.monotonic()
            loopback = backend.wait_reason("InvalidSpec", timeout=30)
            # The check in a pod under way ends first; the refusal itself makes no
            # connection attempt (tests/unit/test_verify_pod.py times it).
            assert time.monotonic() - switched < 15
            assert "127.0.0.1" in loopback["message"] and "verifyFrom: Pod" in \
                loopback["message"]
            assert backend.condition(type="Stalled")["status"] == "True"

            # Deleting the schema leaves no verify pod behind.
            backend.kubectl("patch", "dbschema/backend-schema", "--type=json", "-p", json.dumps(
                [{"op": "replace", "path": "/spec/database/verifyFrom", "value": "Pod"}]))
            backend.wait_reason("StampedButMissing", timeout=30)
            backend.kubectl("delete", "dbschema/backend-schema", "--timeout=30s")
            wait_for("no verify pod left", lambda: verify_pods(backend) == [] or None,
                     timeout=30)
        print(f"schema applied to gate open: {opened:.1f} s")
    finally:
        operator.stop()


def test_a_verify_pod_that_cannot_start_says_why_in_bounded_time(
        cluster: Cluster, restricted: str, tmp_path: Path, backend: Backend, db: Database,
        postgres: LocalPostgres) -> None:
    db.migrate()
    operator = start(cluster, restricted, tmp_path, image="schemagate:no-such-image")
    try:
        with trusted_without_password(postgres, db) as url:
            backend.secret(url)
            backend.apply(proxied_deployment(backend, postgres, replicas=1))
            applied = time.monotonic()
            backend.schema(database=in_pod())
            failed = backend.wait_reason("VerifyPodFailed", timeout=150)
            took = time.monotonic() - applied
            assert "cannot start: container verify is" in failed["message"]
            assert "schemagate:no-such-image" in failed["message"]
            assert took < 130, f"{took:.0f} s"
            assert backend.gate_states() == ["False"]
            backend.kubectl("delete", "dbschema/backend-schema", "--timeout=30s")
            wait_for("no verify pod left", lambda: verify_pods(backend) == [] or None,
                     timeout=30)
    finally:
        operator.stop()
