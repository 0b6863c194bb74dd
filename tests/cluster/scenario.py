"""A backend, its database and its DatabaseSchema on the local control plane, as a user
would set them up; used by the operator's cluster tests."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from localenv.cluster import Cluster
from localenv.postgres import LocalPostgres
from tests.support.database import admin_sql, new_tenant
from tests.support.wait import wait_for

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = ROOT / "examples" / "incident" / "migrations"
# The same project inside the backend's image (localenv/backend.Dockerfile).
IMAGE_MIGRATIONS = "/app/migrations"
BACKEND_IMAGE = "schemagate/backend:dev"
TABLES = ["credit_transactions", "agent_executions", "subscriptions"]
#: What the examples' migrations stamp, and what a backend's next release adds.
V1_REVISION = "3f2a9c"
V2_REVISION = "4b5c6d"
V2_TABLE = "invoices"


def checks(metrics: str) -> float:
    """The checks an operator has ended so far, whatever their reason, from its /metrics."""
    return sum(float(value) for value in re.findall(
        r"^schemagate_checks_total\{[^}]*\} (\S+)$", metrics, re.MULTILINE))


def after_checks(metrics: Callable[[], str], count: int, timeout: float = 60) -> float:
    """Returns once the operator whose /metrics `metrics` reads has ended `count` more
    checks than now. With two, and one schema watched, one whole check of it began and
    ended after the call: what a test asserts then has been looked at, not merely
    waited for."""
    start = checks(metrics())
    return wait_for(f"{count} more checks by the operator", lambda: checks(metrics()),
                    lambda seen: seen >= start + count, timeout=timeout)


class Database:
    """A database of its own and a role with a password, on the session's server: a
    tenant of tests.support.database, with the URL that pods use."""

    def __init__(self, pg: LocalPostgres) -> None:
        self.pg = pg
        # Other tests' databases on this server hold the same tables; each role sees only
        # its own, or every check would rightly answer TablesElsewhere.
        tenant = new_tenant(pg, role_prefix="backend")
        self.name, self.user, self.password = tenant.database, tenant.role, tenant.password

    def admin(self, sql: str, database: str = "postgres") -> None:
        admin_sql(self.pg, sql, database=database)

    def url(self, password: str | None = None, port: int | None = None) -> str:
        # At the cluster's host address: the URL goes into Secrets that pods use.
        url = self.pg.pod_url(database=self.name, user=self.user,
                              password=password or self.password)
        return url if port is None else url.replace(f":{self.pg.port}/", f":{port}/")

    def execute(self, sql: str) -> None:
        """`sql` as the superuser in this database."""
        admin_sql(self.pg, sql, database=self.name)

    def migrate_v2(self) -> None:
        """The next release's migration, as another process would run it."""
        self.execute(f"CREATE TABLE {V2_TABLE} (id int)")
        self.execute(f'ALTER TABLE {V2_TABLE} OWNER TO "{self.user}"')
        self.execute("UPDATE alembic_version SET version_num = '4b5c6d'")  # V2_REVISION

    def migrate(self, ini: str = "alembic.ini") -> int:
        """The backend's real migration: `alembic upgrade head` as the backend's role."""
        alembic = str(Path(sys.executable).with_name("alembic"))
        result = subprocess.run([alembic, "-c", str(MIGRATIONS / ini), "upgrade", "head"],
                                env={"DATABASE_URL": self.url(), "PATH": "/usr/bin:/bin"},
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.returncode


class Backend:
    """kubectl-level view of one namespace: what a user types and reads."""

    def __init__(self, cluster: Cluster, namespace: str, db: Database) -> None:
        self.cluster, self.namespace, self.db = cluster, namespace, db

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        result = self.cluster.kubectl("-n", self.namespace, *args, input=input)
        if check:
            assert result.returncode == 0, f"kubectl {args}: {result.stderr}"
        return result.stdout + result.stderr

    def apply(self, manifest: dict[str, Any]) -> str:
        return self.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))

    def secret(self, url: str, name: str = "backend-db") -> None:
        self.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                    "stringData": {"DATABASE_URL": url}})

    def apply_all(self, *manifests: dict[str, Any]) -> str:
        """One `kubectl apply` of several objects, in order (as Helm or Argo CD send them)."""
        return self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(manifests))

    def schema_manifest(self, name: str = "backend-schema", **spec: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "database": {"urlSecretRef": {"name": "backend-db", "key": "DATABASE_URL"},
                         "connectTimeoutSeconds": 2},
            "tables": TABLES,
            "gate": {"podSelector": {"matchLabels": {"app": name}}},
            "verifyIntervalSeconds": 5,
        }
        body.update(spec)
        return {"apiVersion": "schemagate.io/v1alpha1", "kind": "DatabaseSchema",
                "metadata": {"name": name}, "spec": body}

    def schema(self, name: str = "backend-schema", **spec: Any) -> None:
        self.apply(self.schema_manifest(name, **spec))

    def deployment_manifest(self, name: str = "backend", gate: str = "backend-schema",
                            replicas: int = 2, env: list[dict[str, Any]] | None = None,
                            version: str = "v1", revision: str | None = None,
                            labelled: bool = True, opt_in: bool = True,
                            volumes: list[dict[str, Any]] | None = None,
                            mounts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The backend: real containers of the backend's image on the node, idle.
        `version` changes the pod template (a new ReplicaSet); `revision` is the
        schemagate.io/revision annotation; `labelled` adds the label schemagate.io/schema
        to the pods (and the Deployment); `opt_in` the annotation schemagate.io/clone-for
        to the Deployment itself, its owners' consent that DatabaseSchema `gate` runs
        migration Jobs and verify pods as it. The gate itself is written by hand, so the
        tests do not depend on the chart's gate injection (tested apart)."""
        labels = {"app": gate, "version": version}
        if labelled:
            labels["schemagate.io/schema"] = gate
        metadata: dict[str, Any] = {"labels": labels}
        if revision is not None:
            metadata["annotations"] = {"schemagate.io/revision": revision}
        own: dict[str, Any] = {"labels": {"schemagate.io/schema": gate} if labelled else {}}
        if opt_in:
            own["annotations"] = {"schemagate.io/clone-for": gate}
        pod_spec: dict[str, Any] = {
            "readinessGates": [{"conditionType": f"schemagate.io/{gate}"}],
            "terminationGracePeriodSeconds": 2,
            "containers": [{"name": "app", "image": BACKEND_IMAGE, "imagePullPolicy": "Never",
                            "command": ["sleep", "infinity"], "env": env or [],
                            "volumeMounts": mounts or []}]}
        if volumes:
            pod_spec["volumes"] = volumes
        return {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, **own},
            "spec": {
                "replicas": replicas,
                "strategy": {"type": "RollingUpdate",
                             "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "selector": {"matchLabels": {"app": gate}},
                "template": {"metadata": metadata, "spec": pod_spec}}}

    def deployment(self, name: str = "backend", gate: str = "backend-schema",
                   replicas: int = 2, env: list[dict[str, Any]] | None = None,
                   **template: Any) -> None:
        self.apply(self.deployment_manifest(name, gate, replicas, env, **template))

    def watch_pods(self) -> PodWatch:
        return PodWatch(self)

    def get(self, kind: str, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = json.loads(self.kubectl("get", kind, name, "-o", "json"))
        return obj

    def condition(self, name: str = "backend-schema", type: str = "SchemaVerified"
                  ) -> dict[str, Any]:
        conditions = self.get("dbschema", name).get("status", {}).get("conditions", [])
        return next((c for c in conditions if c["type"] == type), {})

    def wait_reason(self, reason: str, name: str = "backend-schema", timeout: float = 30
                    ) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        def probe() -> dict[str, Any] | None:
            seen.update(self.condition(name))
            return dict(seen) if seen.get("reason") == reason else None

        try:
            return wait_for(f"{name} reason {reason}", probe, timeout=timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; condition: {seen}") from None

    def pods(self, app: str = "backend-schema") -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = json.loads(self.kubectl(
            "get", "pods", "-l", f"app={app}", "-o", "json"))["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    @staticmethod
    def pod_condition(pod: dict[str, Any], type: str) -> dict[str, Any]:
        return next((c for c in pod.get("status", {}).get("conditions", [])
                     if c["type"] == type), {})

    def gate_states(self, app: str = "backend-schema") -> list[str]:
        return [self.pod_condition(p, f"schemagate.io/{app}").get("status", "absent")
                for p in self.pods(app)]

    def ready_states(self, app: str = "backend-schema") -> list[str]:
        return [self.pod_condition(p, "Ready").get("status", "absent") for p in self.pods(app)]

    def reported_ready_states(self, app: str = "backend-schema",
                              timeout: float = 30) -> list[str]:
        """The pods' Ready states once the kubelet has reported one for each: a gate
        the operator closes can reach a pod before the kubelet writes its conditions,
        and an absent Ready says nothing about whether the gate holds."""
        states: list[str] = []

        def reported() -> bool:
            states[:] = self.ready_states(app)
            return bool(states) and "absent" not in states
        wait_for(f"the kubelet to report the Ready of the {app} pods", reported,
                 timeout=timeout)
        return states

    def available(self, name: str = "backend") -> bool:
        conditions = self.get("deployment", name).get("status", {}).get("conditions", [])
        return any(c["type"] == "Available" and c["status"] == "True" for c in conditions)

    def events(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = json.loads(self.kubectl("get", "events", "-o",
                                                              "json"))["items"]
        return items


class PodWatch:
    """Every Ready condition the API server reports for the namespace's pods, from a
    `kubectl get pods --watch` that runs until `stop`: what no test should miss is a pod
    Ready for a moment between two polls."""

    FORMAT = ('jsonpath={.metadata.name}{"\\t"}{.metadata.labels.version}{"\\t"}'
              '{.status.conditions[?(@.type=="Ready")].status}{"\\n"}')

    def __init__(self, backend: Backend) -> None:
        cluster = backend.cluster
        self.events: list[tuple[str, str, str]] = []  # (pod, version label, Ready)
        self._process = subprocess.Popen(
            [str(cluster.bin_dir / "kubectl"), "--kubeconfig", str(cluster.kubeconfig),
             "-n", backend.namespace, "get", "pods", "--watch", "-o", self.FORMAT],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            parts = (line.rstrip("\n").split("\t") + ["", ""])[:3]
            self.events.append((parts[0], parts[1], parts[2]))

    def ever_ready(self, version: str) -> set[str]:
        """The pods of `version` that were Ready at any moment watched."""
        return {pod for pod, v, ready in list(self.events) if v == version and ready == "True"}

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)
        self._reader.join(timeout=10)

    def __enter__(self) -> PodWatch:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
