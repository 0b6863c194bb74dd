"""The installed chart on a kind cluster in CI (.github/workflows/e2e.yaml).

It runs when SCHEMAGATE_E2E_KUBECONFIG names a cluster where the chart is installed,
its operator watching every namespace, and whose nodes have the image
SCHEMAGATE_E2E_IMAGE. There nothing is simulated: PostgreSQL runs in a pod, the
backend's pods wait behind a real kubelet's readiness gates, and the migrations are
Jobs running `alembic` from the image, the incident's empty one first.

Elsewhere the same manifests pass a server-side dry-run on the local API server, and
the same scenario runs on the local cluster's real node in test_in_cluster.py, with the
chart installed by the test itself and PostgreSQL outside the cluster.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from localenv.cluster import Cluster
from tests.cluster.scenario import after_checks
from tests.support.wait import wait_for

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = ROOT / "examples" / "incident" / "migrations"
E2E_KUBECONFIG = os.environ.get("SCHEMAGATE_E2E_KUBECONFIG")
IMAGE = os.environ.get("SCHEMAGATE_E2E_IMAGE", "schemagate:e2e")
OPERATOR_NAMESPACE = os.environ.get("SCHEMAGATE_E2E_OPERATOR_NAMESPACE", "schemagate-system")
TABLES = ["credit_transactions", "agent_executions", "subscriptions"]
Manifest = dict[str, Any]
RESTRICTED = {"runAsNonRoot": True, "allowPrivilegeEscalation": False,
              "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def scenario(namespace: str, image: str, password: str,
             database_url: str | None = None) -> list[Manifest]:
    """PostgreSQL, the backend's Secret, its migrations, its DatabaseSchema and its
    gated Deployment, as a platform team would write them. With `database_url`, the
    database is that one (outside the cluster) and no PostgreSQL pod is made."""
    labels = {"app": "db"}
    url = database_url or (
        f"postgresql://postgres:{password}@db.{namespace}.svc.cluster.local:5432/postgres")
    files = {p.name: p.read_text() for p in (
        MIGRATIONS / "alembic.ini", MIGRATIONS / "alembic-empty.ini", MIGRATIONS / "env.py",
        *sorted((MIGRATIONS / "versions").glob("*.py")))}
    database: list[Manifest] = [] if database_url else [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "db"},
         "spec": {"selector": {"matchLabels": labels}, "template": {
             "metadata": {"labels": labels},
             "spec": {"containers": [{
                 "name": "postgres", "image": "postgres:16-alpine",
                 "env": [{"name": "POSTGRES_PASSWORD", "value": password}],
                 "ports": [{"containerPort": 5432}],
                 "readinessProbe": {"exec": {"command": ["pg_isready", "-U", "postgres"]},
                                    "periodSeconds": 2}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
         "spec": {"selector": labels, "ports": [{"port": 5432}]}}]
    return [
        *database,
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "backend-db"},
         "stringData": {"DATABASE_URL": url}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "migrations"},
         "data": files},
        {"apiVersion": "schemagate.io/v1alpha1", "kind": "DatabaseSchema",
         "metadata": {"name": "backend-schema"},
         "spec": {"database": {"urlSecretRef": {"name": "backend-db", "key": "DATABASE_URL"}},
                  "tables": TABLES, "gate": {"podSelector": {"matchLabels": {"app": "backend"}}},
                  "verifyIntervalSeconds": 5}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "backend"},
         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "backend"}}, "template": {
             "metadata": {"labels": {"app": "backend"}},
             "spec": {"readinessGates": [{"conditionType": "schemagate.io/backend-schema"}],
                      "containers": [{"name": "app", "image": image,
                                      "imagePullPolicy": "IfNotPresent",
                                      "command": ["python", "-m", "http.server", "8000"],
                                      "envFrom": [{"secretRef": {"name": "backend-db"}}],
                                      "securityContext": RESTRICTED}]}}}},
    ]


def migration_job(name: str, ini: str, image: str) -> Manifest:
    """`alembic upgrade head` from the image, as the backend's own migration Job."""
    versions = sorted(p.name for p in (MIGRATIONS / "versions").glob("*.py"))
    items = [{"key": k, "path": k} for k in ("alembic.ini", "alembic-empty.ini", "env.py")]
    items += [{"key": v, "path": f"versions/{v}"} for v in versions]
    # The ConfigMap's volume is read-only, and alembic-empty.ini wants an empty folder.
    script = ("cp -rL /migrations /tmp/m && mkdir -p /tmp/m/empty-versions && "
              f"exec alembic -c /tmp/m/{ini} upgrade head")
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "migrate", "image": image,
                                "imagePullPolicy": "IfNotPresent",
                                "command": ["sh", "-c", script],
                                "envFrom": [{"secretRef": {"name": "backend-db"}}],
                                "volumeMounts": [{"name": "migrations",
                                                  "mountPath": "/migrations"}],
                                "securityContext": RESTRICTED}],
                "volumes": [{"name": "migrations",
                             "configMap": {"name": "migrations", "items": items}}]}}}}


def everything(namespace: str, image: str) -> list[Manifest]:
    return [*scenario(namespace, image, "e2e-" + secrets.token_hex(8)),
            migration_job("migrate-empty", "alembic-empty.ini", image),
            migration_job("migrate", "alembic.ini", image)]


def test_the_e2e_manifests_pass_a_server_side_dry_run(cluster: Cluster, namespace: str
                                                      ) -> None:
    crd = cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f",
                          str(ROOT / "crds"))
    assert crd.returncode == 0, crd.stderr
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=30s",
                    "crd/databaseschemas.schemagate.io")
    documents = "---\n".join(yaml.safe_dump(m) for m in everything(namespace, IMAGE))
    result = cluster.kubectl("-n", namespace, "apply", "--dry-run=server", "-f", "-",
                             input=documents)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("(server dry run)") == len(everything(namespace, IMAGE))


# On a real cluster, with the chart installed.

class Kubectl:
    def __init__(self, kubeconfig: str, namespace: str) -> None:
        self.kubeconfig, self.namespace = kubeconfig, namespace

    def __call__(self, *args: str, input: str | None = None, check: bool = True,
                 timeout: float = 180) -> str:
        result = subprocess.run(["kubectl", "--kubeconfig", self.kubeconfig, "-n",
                                 self.namespace, *args], input=input, capture_output=True,
                                text=True, timeout=timeout, check=False)
        if check:
            assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
        return result.stdout

    def apply(self, *manifests: Manifest) -> None:
        self("apply", "-f", "-", input="---\n".join(yaml.safe_dump(m) for m in manifests))

    def json(self, *args: str) -> Any:
        return json.loads(self("get", *args, "-o", "json"))


@pytest.fixture
def e2e_namespace() -> Iterator[Kubectl]:
    assert E2E_KUBECONFIG
    name = f"e2e-{secrets.token_hex(3)}"
    admin = Kubectl(E2E_KUBECONFIG, "default")
    admin("create", "namespace", name)
    yield Kubectl(E2E_KUBECONFIG, name)
    admin("delete", "namespace", name, "--wait=false")


@pytest.mark.skipif(not E2E_KUBECONFIG, reason="needs SCHEMAGATE_E2E_KUBECONFIG: a cluster "
                    "with the chart installed (kind in CI); test_in_cluster.py runs it here")
def test_the_installed_operator_holds_the_incident_and_opens_on_the_real_migration(
        e2e_namespace: Kubectl) -> None:
    kubectl = e2e_namespace
    kubectl.apply(*scenario(kubectl.namespace, IMAGE, "e2e-" + secrets.token_hex(8)))
    kubectl("rollout", "status", "deployment/db", "--timeout=180s")

    def reason() -> str:
        conditions = kubectl.json("dbschema", "backend-schema").get("status", {}).get(
            "conditions", [])
        return next((c["reason"] for c in conditions if c["type"] == "SchemaVerified"), "")

    def ready() -> list[str]:
        pods = kubectl.json("pods", "-l", "app=backend")["items"]
        return [next((c["status"] for c in p.get("status", {}).get("conditions", [])
                      if c["type"] == "Ready"), "absent") for p in pods]

    kubectl.apply(migration_job("migrate-empty", "alembic-empty.ini", IMAGE))
    kubectl("wait", "--for=condition=Complete", "job/migrate-empty", "--timeout=180s")
    wait_for("NoRevision", reason, lambda seen: seen == "NoRevision", timeout=180, interval=2)
    wait_for("two running, unready backend pods", ready,
             lambda seen: seen == ["False", "False"], timeout=180, interval=2)
    operator = Kubectl(E2E_KUBECONFIG or "", OPERATOR_NAMESPACE)
    # The chart's metrics Service, through the API server's proxy.
    after_checks(lambda: operator("get", "--raw", f"/api/v1/namespaces/{OPERATOR_NAMESPACE}"
                                  "/services/schemagate-metrics:metrics/proxy/metrics"), 2,
                 timeout=120)
    assert ready() == ["False", "False"]  # two checks later, still held

    kubectl.apply(migration_job("migrate", "alembic.ini", IMAGE))
    kubectl("wait", "--for=condition=Complete", "job/migrate", "--timeout=180s")
    kubectl("wait", "--for=condition=Ready", "dbschema/backend-schema", "--timeout=120s")
    kubectl("wait", "--for=condition=Available", "deployment/backend", "--timeout=120s")
    assert ready() == ["True", "True"]

    pods = operator.json("pods", "-l", "app.kubernetes.io/name=schemagate")["items"]
    assert [s["restartCount"] for p in pods for s in p["status"]["containerStatuses"]] == [0]
    log = operator("logs", "deployment/schemagate")
    assert "403" not in log and "Forbidden" not in log, log
