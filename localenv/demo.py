"""`make demo`: the incident, replayed on the local cluster's real node, with the operator
installed by its Helm chart from the image built here, and an embedded PostgreSQL.

A user watches: the migration exits 0 and applies nothing, the gate holds the backend
NotReady with `NoRevision` (no 503: the old world keeps serving), the real migration
lands and the Deployment becomes Available; an upgrade whose pods need a revision not
applied yet is held until its migration lands; then a table is dropped and the drift
is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from localenv import cluster as local_cluster
from localenv import node as local_node
from localenv import postgres as local_postgres

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "incident"
NAMESPACE = "demo"
OPERATOR_NAMESPACE = "schemagate-system"
RELEASE = "schemagate"
BACKEND_PASSWORD = "demo-backend-password"


def say(text: str = "") -> None:
    print(text, flush=True)


def step(n: int, total: int, text: str) -> None:
    say(f"\n[{n}/{total}] {text}")


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := probe():
            return result
        time.sleep(0.25)
    raise SystemExit(f"demo: gave up waiting for {what} after {timeout:.0f}s")


class Demo:
    def __init__(self, c: local_cluster.Cluster, pg: local_postgres.LocalPostgres) -> None:
        self.c, self.pg = c, pg

    def kubectl(self, *args: str, check: bool = True) -> str:
        result = self.c.kubectl("-n", NAMESPACE, *args)
        if check and result.returncode != 0:
            raise SystemExit(f"demo: kubectl {' '.join(args)} failed:\n{result.stderr}")
        return str(result.stdout)

    def show(self, *args: str) -> None:
        for line in self.kubectl(*args).rstrip().splitlines():
            say("      " + line)

    def schema(self) -> dict[str, Any]:
        obj: dict[str, Any] = json.loads(self.kubectl("get", "dbschema", "backend-schema",
                                                      "-o", "json"))
        return obj

    def verified_condition(self) -> dict[str, Any] | None:
        for c in self.schema().get("status", {}).get("conditions", []):
            if c["type"] == "SchemaVerified":
                return dict(c)
        return None

    def available(self) -> bool:
        deploy = json.loads(self.kubectl("get", "deploy", "backend", "-o", "json"))
        return any(c["type"] == "Available" and c["status"] == "True"
                   for c in deploy.get("status", {}).get("conditions", []))

    def v2_pods(self) -> list[dict[str, Any]]:
        pods = json.loads(self.kubectl("get", "pods", "-l", "app=backend", "-o", "json"))
        return [p for p in pods["items"] if not p["metadata"].get("deletionTimestamp")
                and "schemagate.io/revision" in (p["metadata"].get("annotations") or {})]

    def v2_gate(self, reason: str) -> dict[str, Any] | None:
        for pod in self.v2_pods():
            for c in pod.get("status", {}).get("conditions", []):
                if c["type"] == "schemagate.io/backend-schema" and c["reason"] == reason:
                    return dict(c)
        return None

    def rolled_out_v2(self) -> bool:
        pods = json.loads(self.kubectl("get", "pods", "-l", "app=backend", "-o", "json"))
        live = [p for p in pods["items"] if not p["metadata"].get("deletionTimestamp")]
        return len(live) == 2 and len(self.v2_pods()) == 2 and all(
            any(c["type"] == "Ready" and c["status"] == "True"
                for c in p.get("status", {}).get("conditions", [])) for p in live)

    def job_outcomes(self) -> str:
        jobs = json.loads(self.kubectl("get", "jobs", "-o", "json"))["items"]
        return ", ".join(f"{j['metadata']['name']} succeeded={j['status'].get('succeeded', 0)}"
                         for j in jobs)

    def psql(self, sql: str) -> None:
        import sqlalchemy as sa

        engine = sa.create_engine(self.pg.url(database="app"))
        with engine.begin() as conn:
            conn.execute(sa.text(sql))
        engine.dispose()


def helm(c: local_cluster.Cluster, *args: str, timeout: float = 300) -> None:
    binary = subprocess.run(["bash", str(ROOT / "hack" / "build-control-plane.sh"), "helm"],
                            stdout=subprocess.PIPE, text=True, check=True).stdout.split()[-1]
    result = subprocess.run([binary, "--kubeconfig", str(c.kubeconfig), *args],
                            capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise SystemExit(f"demo: helm {' '.join(args[:2])} failed:\n{result.stderr}")


def install_operator(c: local_cluster.Cluster) -> None:
    """`helm install` of charts/schemagate with schemagate:dev, watching the demo's namespace."""
    helm(c, "uninstall", RELEASE, "-n", OPERATOR_NAMESPACE, "--ignore-not-found", "--wait")
    helm(c, "install", RELEASE, str(ROOT / "charts" / "schemagate"), "-n", OPERATOR_NAMESPACE,
         "--create-namespace", "--set", "image.repository=schemagate", "--set", "image.tag=dev",
         "--set", "image.pullPolicy=Never", "--set", f"watchNamespaces={{{NAMESPACE}}}",
         "--wait", "--timeout", "3m")


def prepare_database(pg: local_postgres.LocalPostgres) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(pg.url(), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text("DROP DATABASE IF EXISTS app WITH (FORCE)"))
        conn.execute(sa.text("DROP ROLE IF EXISTS backend"))
        conn.execute(sa.text(f"CREATE ROLE backend LOGIN PASSWORD '{BACKEND_PASSWORD}'"))
        conn.execute(sa.text("CREATE DATABASE app OWNER backend"))
    engine.dispose()


def run(keep: bool) -> None:
    total = 7
    say("schemagate demo: a migration that exits 0 and applies nothing, replayed")
    step(1, total, "Local cluster: kube-apiserver, etcd, kube-controller-manager, "
                   "kube-scheduler, and a real node (containerd, runc, kubelet, kube-proxy)")
    say("      " + local_cluster.build_notice(ROOT).strip())
    say("      images schemagate:dev (our Dockerfile) and schemagate/backend:dev, built with "
        "buildah when their inputs changed")
    was_up = local_cluster.is_up(ROOT)
    c = local_cluster.ensure_up(ROOT)
    say(f"      API server at {c.server}; kubeconfig {c.kubeconfig}")
    step(2, total, "Embedded PostgreSQL")
    pg = local_postgres.start(ROOT / ".cluster" / "demo-postgres", pod_host=c.host_address,
                              pod_networks=local_node.CLIENT_NETWORKS)
    prepare_database(pg)
    say(f"      {c.host_address}:{pg.port} (where pods reach the host), database app, "
        "role backend: empty, as after a fresh deploy")
    demo = Demo(c, pg)
    installed = False
    try:
        c.kubectl("delete", "namespace", NAMESPACE, "--wait=true", "--ignore-not-found",
                  timeout=120)
        c.kubectl("create", "namespace", NAMESPACE)
        step(3, total, f"helm install {RELEASE} charts/schemagate -n {OPERATOR_NAMESPACE} "
                       "--set image.tag=dev ...: the operator runs in the cluster")
        install_operator(c)
        installed = True
        say(f"      its pod is Ready (logs: kubectl -n {OPERATOR_NAMESPACE} logs "
            f"deploy/{RELEASE})")
        step(4, total, "kubectl apply -f examples/incident/: the backend's Secret, its "
                       "Deployment (readiness gate, maxUnavailable: 0), the DatabaseSchema")
        secret = (EXAMPLE / "secret.yaml").read_text().replace(
            "postgresql://backend:CHANGE-ME@127.0.0.1:5432/app",
            pg.pod_url(database="app", user="backend", password=BACKEND_PASSWORD))
        subprocess.run([str(c.bin_dir / "kubectl"), "--kubeconfig", str(c.kubeconfig), "-n",
                        NAMESPACE, "apply", "-f", "-"], input=secret, text=True, check=True,
                       capture_output=True)
        demo.kubectl("apply", "-f", str(EXAMPLE / "deployment.yaml"), "-f",
                     str(EXAMPLE / "databaseschema.yaml"))
        say("      schemagate runs the migration as a Job cloned from the backend's "
            "Deployment (same image, same Secret):")
        say("      `alembic -c /app/migrations/alembic-empty.ini upgrade head`, whose versions "
            "folder is empty...")
        held = wait_for("the MigrationNoOp verdict",
                        lambda: (v := demo.verified_condition()) and
                        v["reason"] == "MigrationNoOp" and v, timeout=90)
        say(f"      the Job: {demo.job_outcomes()}: success, says the runner.")
        say(f"      schemagate: {held['reason']}: {held['message']}")
        demo.show("get", "dbschema,deploy,jobs")
        demo.show("get", "pods", "-o", "wide", "-l", "app=backend")
        say("      The backend's pods stay NotReady and out of the Service: no 503, "
            "the gate holds.")
        step(5, total, "The corrected migration: the Job's alembic.ini is fixed "
                       "(kubectl patch dbschema)")
        started = time.monotonic()
        demo.kubectl("patch", "dbschema", "backend-schema", "--type=json", "-p",
                     '[{"op": "replace", "path": "/spec/migrations/job/command/2", '
                     '"value": "/app/migrations/alembic.ini"}]')
        wait_for("the Deployment to become Available", demo.available, timeout=120)
        say(f"      a new Job ran, the schema verified, the gate opened and the Deployment "
            f"is Available {time.monotonic() - started:.1f}s after the fix")
        demo.show("get", "dbschema,deploy,jobs")
        demo.show("get", "pods", "-o", "wide", "-l", "app=backend")
        step(6, total, "An upgrade: v2 of the backend needs revision 4b5c6d (table invoices)")
        demo.kubectl("patch", "deployment", "backend", "--type=merge", "-p", json.dumps(
            {"spec": {"template": {"metadata": {
                "labels": {"schemagate.io/schema": "backend-schema"},
                "annotations": {"schemagate.io/revision": "4b5c6d"}}}}}))
        gate = wait_for("a v2 pod held", lambda: demo.v2_gate("RevisionNotApplied"))
        say(f"      the v2 pod: {gate['reason']}: {gate['message']}")
        say(f"      the v1 pods keep serving (Deployment Available: {demo.available()})")
        demo.show("get", "pods", "-l", "app=backend", "-o",
                  "custom-columns=POD:.metadata.name,REVISION:.metadata.annotations."
                  "schemagate\\.io/revision,READY:.status.conditions[?(@.type=='Ready')]"
                  ".status")
        say("      the release's migration lands (the team's pipeline runs it):")
        demo.psql("CREATE TABLE invoices (id bigint primary key)")
        demo.psql("UPDATE alembic_version SET version_num = '4b5c6d'")
        started = time.monotonic()
        wait_for("the v2 rollout", demo.rolled_out_v2, timeout=120)
        say(f"      every pod is v2 and Ready {time.monotonic() - started:.1f}s after the "
            "migration: opened only once its revision was applied")
        step(7, total, "Drift: someone drops agent_executions")
        demo.psql("DROP TABLE agent_executions")
        drift = wait_for("the drift report", lambda: (v := demo.verified_condition())
                         and v["status"] == "False" and v, timeout=60)
        say(f"      schemagate: {drift['reason']}: {drift['message']}")
        say("      onDrift: Hold keeps the running pods in service and reports; "
            "onDrift: Close would take them out.")
        demo.show("get", "dbschema")
        demo.show("get", "pods", "-o", "wide", "-l", "app=backend")
    finally:
        if installed and not keep:
            # While the operator runs, so it can release the gates it holds.
            c.kubectl("-n", NAMESPACE, "delete", "dbschema", "--all", "--timeout=30s")
            helm(c, "uninstall", RELEASE, "-n", OPERATOR_NAMESPACE, "--wait")
        if keep:
            say(f"\nKept running: KUBECONFIG={c.kubeconfig}; stop with `make cluster-down`.")
        else:
            say("\nStopping what the demo started (keep it with `make demo KEEP=1`).")
            c.kubectl("delete", "namespace", NAMESPACE, "--wait=false")
            local_postgres.stop(pg)
            if not was_up:  # a cluster someone else started is theirs to stop
                local_cluster.down(ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", action="store_true",
                        default=os.environ.get("KEEP", "") not in ("", "0"),
                        help="leave the cluster, database and namespace running")
    run(parser.parse_args().keep)


if __name__ == "__main__":
    main()
