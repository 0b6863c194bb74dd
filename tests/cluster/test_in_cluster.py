"""The operator as users run it: the image built from our Dockerfile, installed with the
chart, Ready under the chart's restricted security context on the local cluster's
real node, replaying the incident end to end.

The chart watches only the test's namespace (other tests run operators of their own
in theirs). The namespace enforces Pod Security `restricted`, so every pod in it,
the operator's included, is admitted only as such. PostgreSQL is the session's, at
the cluster's host address. The operator reaches the API server with its
ServiceAccount's own token, through the `kubernetes` Service; its metrics are scraped
through the metrics Service's ClusterIP from another pod on the node.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from localenv.cluster import Cluster
from localenv.postgres import LocalPostgres
from tests.chart import CHART, helm
from tests.cluster.fixtures import Kube
from tests.cluster.scenario import Database, after_checks
from tests.cluster.test_kind import RESTRICTED, migration_job, scenario
from tests.support.wait import wait_for

IMAGE = "schemagate:dev"


class Namespaced:
    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.cluster, self.namespace = cluster, namespace

    def __call__(self, *args: str, input: str | None = None, check: bool = True,
                 timeout: float = 180) -> str:
        result = self.cluster.kubectl("-n", self.namespace, *args, input=input,
                                      timeout=timeout)
        if check:
            assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
        return result.stdout

    def apply(self, *manifests: dict[str, Any]) -> None:
        self("apply", "-f", "-", input="---\n".join(yaml.safe_dump(m) for m in manifests))

    def json(self, *args: str) -> Any:
        return json.loads(self("get", *args, "-o", "json"))


@pytest.fixture
def restricted_namespace(kube: Kube) -> Iterator[str]:
    name = f"incident-{secrets.token_hex(3)}"
    kube.core.create_namespace({"metadata": {"name": name, "labels": {
        "schemagate.io/test": "true", "pod-security.kubernetes.io/enforce": "restricted"}}})
    yield name
    kube.core.delete_namespace(name)


@pytest.fixture
def release(cluster: Cluster, restricted_namespace: str) -> Iterator[str]:
    """The chart installed into the namespace it watches, with the image built here."""
    name = f"schemagate-{secrets.token_hex(3)}"
    kubeconfig = ("--kubeconfig", str(cluster.kubeconfig))
    result = helm("install", name, str(CHART), "--namespace", restricted_namespace,
                  *kubeconfig, "--set", "image.repository=schemagate", "--set", "image.tag=dev",
                  "--set", "image.pullPolicy=Never",
                  "--set", f"watchNamespaces={{{restricted_namespace}}}",
                  "--wait", "--timeout", "3m", timeout=240)
    try:
        assert result.returncode == 0, result.stderr
        yield name
    finally:
        # The DatabaseSchemas go first, while the operator still runs to lift its finalizer.
        cluster.kubectl("-n", restricted_namespace, "delete", "dbschema", "--all",
                        "--timeout=60s")
        helm("uninstall", name, "--namespace", restricted_namespace, *kubeconfig, "--wait")


def _ready(kubectl: Namespaced) -> list[str]:
    pods = kubectl.json("pods", "-l", "app=backend")["items"]
    return [next((c["status"] for c in p.get("status", {}).get("conditions", [])
                  if c["type"] == "Ready"), "absent") for p in pods
            if not p["metadata"].get("deletionTimestamp")]


def _reason(kubectl: Namespaced) -> str:
    conditions = kubectl.json("dbschema", "backend-schema").get("status", {}).get(
        "conditions", [])
    return next((c["reason"] for c in conditions if c["type"] == "SchemaVerified"), "")


def _scrape(kubectl: Namespaced, address: str) -> str:
    """GET /metrics from a pod on the node, through the Service's ClusterIP."""
    name = f"scrape-{secrets.token_hex(3)}"
    fetch = ("import sys, urllib.request; "
             "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())")
    kubectl.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
        "restartPolicy": "Never",
        "containers": [{"name": "scrape", "image": IMAGE, "imagePullPolicy": "Never",
                        "command": ["python", "-c", fetch, address],
                        "securityContext": RESTRICTED}]}})
    wait_for(f"pod {name} to finish", lambda: kubectl.json("pod", name)["status"].get(
        "phase") in ("Succeeded", "Failed"), timeout=60)
    phase = kubectl.json("pod", name)["status"]["phase"]
    out = kubectl("logs", name)
    assert phase == "Succeeded", out
    return out


def test_the_chart_installed_operator_holds_the_incident_and_opens_on_the_real_migration(
        cluster: Cluster, postgres: LocalPostgres, restricted_namespace: str,
        release: str) -> None:
    kubectl = Namespaced(cluster, restricted_namespace)
    # Ready under the chart's restricted context, admitted by Pod Security `restricted`.
    (pod,) = kubectl.json("pods", "-l", "app.kubernetes.io/name=schemagate")["items"]
    assert pod["spec"]["containers"][0]["image"] == IMAGE
    assert next(c["status"] for c in pod["status"]["conditions"] if c["type"] == "Ready") \
        == "True"
    context = pod["spec"]["containers"][0]["securityContext"]
    assert context["readOnlyRootFilesystem"] and context["capabilities"]["drop"] == ["ALL"]
    assert pod["spec"]["serviceAccountName"] == release

    db = Database(postgres)
    kubectl.apply(*scenario(restricted_namespace, IMAGE, "", database_url=db.url()))
    kubectl.apply(migration_job("migrate-empty", "alembic-empty.ini", IMAGE))
    kubectl("wait", "--for=condition=Complete", "job/migrate-empty", "--timeout=180s")
    seen: list[str] = []
    try:
        wait_for("NoRevision", lambda: seen.append(_reason(kubectl)) or seen[-1] == "NoRevision",
                 timeout=60)
    except AssertionError:
        raise AssertionError(f"reason {seen[-1:]}; operator log:\n"
                             + kubectl("logs", f"deployment/{release}")[-3000:]) from None
    wait_for("two running, unready backend pods",
             lambda: _ready(kubectl) == ["False", "False"], timeout=120)
    # The metrics Service, through its ClusterIP (kube-proxy on the node).
    service = kubectl.json("service", f"{release}-metrics")
    address = f"http://{service['spec']['clusterIP']}:{service['spec']['ports'][0]['port']}" \
              "/metrics"
    after_checks(lambda: _scrape(kubectl, address), 2, timeout=120)
    assert _ready(kubectl) == ["False", "False"]  # two checks later, still held

    kubectl.apply(migration_job("migrate", "alembic.ini", IMAGE))
    kubectl("wait", "--for=condition=Complete", "job/migrate", "--timeout=180s")
    kubectl("wait", "--for=condition=Ready", "dbschema/backend-schema", "--timeout=120s")
    kubectl("wait", "--for=condition=Available", "deployment/backend", "--timeout=120s")
    assert _ready(kubectl) == ["True", "True"]

    metrics = _scrape(kubectl, address)
    gate = re.search(r'^schemagate_gate_open\{[^}]*name="backend-schema"[^}]*\} (\S+)$',
                     metrics, re.MULTILINE)
    assert gate and float(gate.group(1)) == 1.0, metrics[-2000:]

    # Its ServiceAccount's own token did all that: no refusal, no restart.
    log = kubectl("logs", f"deployment/{release}")
    assert not re.search(r"\b403\b|Forbidden", log), log[-3000:]
    (pod,) = kubectl.json("pods", "-l", "app.kubernetes.io/name=schemagate")["items"]
    assert [s["restartCount"] for s in pod["status"]["containerStatuses"]] == [0]


def test_the_service_accounts_own_token_may_do_what_the_chart_grants_and_no_more(
        cluster: Cluster, restricted_namespace: str, release: str, tmp_path: Path) -> None:
    kubectl = Namespaced(cluster, restricted_namespace)
    token = kubectl("create", "token", release, "--duration=10m").strip()
    # A kubeconfig with that token only: no client certificate to fall back on.
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    admin["users"] = [{"name": "sa", "user": {"token": token}}]
    admin["contexts"][0]["context"]["user"] = "sa"
    as_sa = tmp_path / "token.kubeconfig"
    as_sa.write_text(yaml.safe_dump(admin))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(cluster.bin_dir / "kubectl"), "--kubeconfig", str(as_sa),
                               *args], capture_output=True, text=True, timeout=30, check=False)

    def can_i(*question: str) -> bool:
        result = run("-n", restricted_namespace, "auth", "can-i", *question)
        answer = result.stdout.strip()
        assert answer in ("yes", "no"), f"can-i {question}: {result.stdout}{result.stderr}"
        return answer == "yes"

    who = run("auth", "whoami", "-o", "json")
    assert who.returncode == 0, who.stderr
    assert json.loads(who.stdout)["status"]["userInfo"]["username"] == \
        f"system:serviceaccount:{restricted_namespace}:{release}"
    assert can_i("patch", "pods", "--subresource=status")
    assert can_i("watch", "databaseschemas.schemagate.io")
    assert can_i("create", "jobs.batch")
    assert can_i("create", "pods")  # the verify pods of verifyFrom: Pod
    assert not can_i("update", "pods") and not can_i("patch", "pods")
    assert not can_i("update", "deployments.apps")
    assert not can_i("get", "secrets", "-n", "default")
