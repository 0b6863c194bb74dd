"""`make demo`: the incident, replayed on the local cluster's real node, with the operator
installed by its Helm chart from the image built here, and an embedded PostgreSQL.

A user watches: the migration exits 0 and applies nothing; the backend, which exits 3
at start-up without its tables, crash-loops while the readiness gate keeps it out of
the Service, and once the real migration lands it waits out the kubelet's backoff
before the Deployment is Available. The same again with the start-up gate
(`spec.gate.holdStart`): the pods wait unstarted, 0 restarts, and start once the schema
is there. Then an upgrade whose pods need a revision not applied yet is held until its
migration lands, and a dropped table is reported as drift.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from localenv import cluster as local_cluster
from localenv import node as local_node
from localenv import postgres as local_postgres

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "incident"
NAMESPACE = "demo"
OPERATOR_NAMESPACE = "schemagate-system"
RELEASE = "schemagate"
BACKEND_PASSWORD = "demo-backend-password"
SCHEMA_GATE = "schemagate.io/backend-schema"
#: How long the backend's pods wait for their schema before it is fixed, by default:
#: long enough for the kubelet's backoff to reach 80 s (10, 20, 40, 80 ...).
HOLD_SECONDS = 90.0
#: The chart value that has its admission policy add the scheduling gate.
HOLD_START_VALUE = "gateInjection.holdStart"


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

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> str:
        result = self.c.kubectl("-n", NAMESPACE, *args, input=input, timeout=120)
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
        """Every pod v2 and Ready, read from one listing (two would mix moments of the
        rollout)."""
        live = self.backend_pods()
        v2 = [p for p in live if "schemagate.io/revision" in (
            p["metadata"].get("annotations") or {})]
        return len(live) == 2 and len(v2) == 2 and all(
            any(c["type"] == "Ready" and c["status"] == "True"
                for c in p.get("status", {}).get("conditions", [])) for p in live)

    def serving(self) -> bool:
        """Every backend pod has passed its start-up check (Ready says only that its
        process started: the check takes a moment more)."""
        return all("serving on port" in self.kubectl("logs", p["metadata"]["name"],
                                                     check=False)
                   for p in self.backend_pods())

    def backend_pods(self) -> list[dict[str, Any]]:
        pods = json.loads(self.kubectl("get", "pods", "-l", "app=backend", "-o", "json"))
        return [p for p in pods["items"] if not p["metadata"].get("deletionTimestamp")]

    def restarts(self) -> dict[str, int]:
        return {p["metadata"]["name"]: sum(c.get("restartCount", 0) for c in
                                           p.get("status", {}).get("containerStatuses", []))
                for p in self.backend_pods()}

    def new_pod_held(self) -> bool:
        """Whether a pod of the backend, created now, would get the start-up gate (the API
        server's dry run: admission runs, nothing is created)."""
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": "admission-probe", "labels": {"schemagate.io/schema": "backend-schema"}},
            "spec": {"containers": [{"name": "app", "image": "schemagate/backend:dev"}]}}
        admitted = json.loads(self.kubectl("create", "--dry-run=server", "-o", "json", "-f",
                                           "-", input=json.dumps(pod)))
        return any(g["name"] == SCHEMA_GATE for g in admitted["spec"].get("schedulingGates", []))

    def apply(self, *objects: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", input="---\n".join(yaml.safe_dump(o) for o in objects))

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


def prepare_database(pg: local_postgres.LocalPostgres) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(pg.url(), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text("DROP DATABASE IF EXISTS app WITH (FORCE)"))
        conn.execute(sa.text("DROP ROLE IF EXISTS backend"))
        conn.execute(sa.text(f"CREATE ROLE backend LOGIN PASSWORD '{BACKEND_PASSWORD}'"))
        conn.execute(sa.text("CREATE DATABASE app OWNER backend"))
    engine.dispose()


def hold_start_available() -> bool:
    """Whether this checkout's CRD and chart have the start-up gate."""
    crd = (ROOT / "crds" / "databaseschemas.schemagate.io.yaml").read_text()
    values = yaml.safe_load((ROOT / "charts" / "schemagate" / "values.yaml").read_text())
    section, _, key = HOLD_START_VALUE.partition(".")
    return "holdStart" in crd and key in (values.get(section) or {})


def install_operator(c: local_cluster.Cluster, hold_start: bool) -> None:
    """`helm install` of charts/schemagate with schemagate:dev, watching the demo's namespace."""
    extra = ["--set", f"{HOLD_START_VALUE}=true"] if hold_start else []
    helm(c, "uninstall", RELEASE, "-n", OPERATOR_NAMESPACE, "--ignore-not-found", "--wait")
    helm(c, "install", RELEASE, str(ROOT / "charts" / "schemagate"), "-n", OPERATOR_NAMESPACE,
         "--create-namespace", "--set", "image.repository=schemagate", "--set", "image.tag=dev",
         "--set", "image.pullPolicy=Never", "--set", f"watchNamespaces={{{NAMESPACE}}}",
         *extra, "--wait", "--timeout", "3m")


@dataclass(frozen=True)
class Outcome:
    """How one way of holding the backend went, from the fix to Available."""

    held_by: str
    restarts: dict[str, int]
    seconds: float


def apply_backend(demo: Demo, hold_start: bool) -> float:
    """The incident's Deployment and DatabaseSchema (its empty migration first); with
    `hold_start`, the schema asks for the start-up gate and the pods carry the label the
    chart's admission policy looks for. Returns when they were applied."""
    schema = yaml.safe_load((EXAMPLE / "databaseschema.yaml").read_text())
    deployment = yaml.safe_load((EXAMPLE / "deployment.yaml").read_text())
    if hold_start:
        schema["spec"]["gate"]["holdStart"] = True
        deployment["spec"]["template"]["metadata"]["labels"]["schemagate.io/schema"] = (
            "backend-schema")
    demo.apply(schema)
    if hold_start:
        # The admission policy reads the DatabaseSchema from its informer: a pod created
        # before it has seen holdStart would start unheld.
        wait_for("the admission policy to hold new pods", demo.new_pod_held, timeout=60)
    applied = time.monotonic()
    demo.apply(deployment)
    return applied


def wait_out(demo: Demo, since: float, hold: float) -> None:
    """Lets the pods wait for their schema until `hold` seconds after `since`, saying
    each restart as the kubelet makes it (the gaps between them are its backoff)."""
    seen: dict[str, int] = {}
    while (left := since + hold - time.monotonic()) > 0:
        for name, count in sorted(demo.restarts().items()):
            if count > seen.get(name, 0):
                say(f"      {time.monotonic() - since:5.0f}s  {name}: exit 3, "
                    f"restart {count}")
            seen[name] = count
        time.sleep(min(1.0, left))


def show_crash(demo: Demo) -> None:
    """What the backend itself said before it exited: the logs of the container that
    exited last (the current one while it waits for its restart, else the previous)."""
    for pod in demo.backend_pods():
        for status in pod.get("status", {}).get("containerStatuses", []):
            which = ([] if status.get("state", {}).get("terminated") else
                     ["--previous"] if status.get("lastState", {}).get("terminated") else None)
            if which is None:
                continue
            name = pod["metadata"]["name"]
            said = demo.kubectl("logs", name, *which, check=False).strip().splitlines()
            if said:
                say(f"      {name} says: {said[-1]}")
                return


def fix(demo: Demo, held_by: str) -> Outcome:
    """The corrected migration (the Job's alembic.ini), timed to the Deployment Available."""
    started = time.monotonic()
    demo.kubectl("patch", "dbschema", "backend-schema", "--type=json", "-p",
                 '[{"op": "replace", "path": "/spec/migrations/job/command/2", '
                 '"value": "/app/migrations/alembic.ini"}]')
    # The kubelet's backoff reaches 5 minutes: the readiness gate alone may wait as long.
    wait_for("the Deployment to become Available", demo.available, timeout=420)
    return Outcome(held_by, demo.restarts(), time.monotonic() - started)


def say_outcome(outcome: Outcome) -> None:
    counts = ", ".join(str(n) for _, n in sorted(outcome.restarts.items()))
    say(f"      held by {outcome.held_by}: restarts per pod {counts}; the Deployment is "
        f"Available {outcome.seconds:.1f}s after the fix")


def reset(demo: Demo, pg: local_postgres.LocalPostgres) -> None:
    """Back to a fresh deploy: no Deployment, no DatabaseSchema, an empty database."""
    demo.kubectl("delete", "deployment", "backend", "--cascade=foreground", "--wait=true")
    demo.kubectl("delete", "dbschema", "backend-schema", "--wait=true")
    demo.kubectl("delete", "jobs", "--all", "--cascade=foreground", "--wait=true")
    prepare_database(pg)


def readiness_gate_alone(demo: Demo, hold: float, n: int, total: int) -> Outcome:
    step(n, total, "kubectl apply -f examples/incident/: the backend's Secret, its "
                   "Deployment (readiness gate, maxUnavailable: 0), the DatabaseSchema")
    since = apply_backend(demo, hold_start=False)
    say("      schemagate runs the migration as a Job cloned from the backend's "
        "Deployment (same image, same Secret):")
    say("      `alembic -c /app/migrations/alembic-empty.ini upgrade head`, whose versions "
        "folder is empty...")
    held = wait_for("the MigrationNoOp verdict",
                    lambda: (v := demo.verified_condition()) and
                    v["reason"] == "MigrationNoOp" and v, timeout=90)
    say(f"      the Job: {demo.job_outcomes()}: success, says the runner.")
    say(f"      schemagate: {held['reason']}: {held['message']}")
    say("      The backend exits 3 at start-up without its tables; the readiness gate keeps "
        "it out of the Service (no 503), but the kubelet restarts it, backing off each "
        f"time. Waiting {hold:.0f}s from the apply, as a slow fix would:")
    wait_out(demo, since, hold)
    show_crash(demo)
    demo.show("get", "pods", "-o", "wide", "-l", "app=backend")
    step(n + 1, total, "The corrected migration: the Job's alembic.ini is fixed "
                       "(kubectl patch dbschema)")
    outcome = fix(demo, "the readiness gate alone")
    say("      a new Job ran, the schema verified, the gate opened, and each pod served once "
        "its backoff ended:")
    say_outcome(outcome)
    demo.show("get", "dbschema,deploy,jobs")
    demo.show("get", "pods", "-o", "wide", "-l", "app=backend")
    return outcome


def start_up_gate(demo: Demo, pg: local_postgres.LocalPostgres, hold: float, n: int,
                  total: int) -> Outcome:
    step(n, total, "The same with the start-up gate: spec.gate.holdStart: true, the pods "
                   "labelled schemagate.io/schema: backend-schema")
    reset(demo, pg)
    say("      a fresh deploy again (empty database, the empty migration first); the chart's "
        "admission policy adds the scheduling gate schemagate.io/backend-schema to each pod")
    since = apply_backend(demo, hold_start=True)
    wait_for("the MigrationNoOp verdict", lambda: (v := demo.verified_condition())
             and v["reason"] == "MigrationNoOp" and v, timeout=90)
    say(f"      schemagate: MigrationNoOp again. Waiting {hold:.0f}s from the apply, as "
        "before: the pods are not started, so nothing crashes")
    wait_out(demo, since, hold)
    for pod in demo.backend_pods()[:1]:
        gates = ", ".join(g["name"] for g in pod["spec"].get("schedulingGates", []))
        said = next((f"; its readiness gate: {c['reason']}"
                     for c in pod.get("status", {}).get("conditions", [])
                     if c["type"] == SCHEMA_GATE), "")
        say(f"      {pod['metadata']['name']}: {pod['status'].get('phase')}, on no node, "
            f"scheduling gates: {gates}{said}")
    demo.show("get", "pods", "-o", "wide", "-l", "app=backend")
    step(n + 1, total, "The same fix (kubectl patch dbschema)")
    outcome = fix(demo, "the start-up gate")
    say("      a new Job ran, the schema verified, schemagate removed the scheduling gate, and "
        "the pods started with their tables in place:")
    say_outcome(outcome)
    demo.show("get", "pods", "-o", "wide", "-l", "app=backend")
    return outcome


def upgrade(demo: Demo, n: int, total: int) -> None:
    step(n, total, "An upgrade: v2 of the backend needs revision 4b5c6d (table invoices)")
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
              ".status,SCHEDULING-GATES:.spec.schedulingGates[*].name")
    say("      the release's migration lands (the team's pipeline runs it):")
    demo.psql("CREATE TABLE invoices (id bigint primary key)")
    demo.psql("UPDATE alembic_version SET version_num = '4b5c6d'")
    started = time.monotonic()
    wait_for("the v2 rollout", demo.rolled_out_v2, timeout=120)
    say(f"      every pod is v2 and Ready {time.monotonic() - started:.1f}s after the "
        "migration: opened only once its revision was applied")
    # The drift that follows must meet backends that run, not one still checking.
    wait_for("the v2 backends serving", demo.serving, timeout=60)


def drift(demo: Demo, n: int, total: int) -> None:
    step(n, total, "Drift: someone drops agent_executions")
    demo.psql("DROP TABLE agent_executions")
    seen = wait_for("the drift report", lambda: (v := demo.verified_condition())
                    and v["status"] == "False" and v, timeout=60)
    say(f"      schemagate: {seen['reason']}: {seen['message']}")
    say("      onDrift: Hold keeps the running pods in service and reports; "
        "onDrift: Close would take them out.")
    demo.show("get", "dbschema")
    demo.show("get", "pods", "-o", "wide", "-l", "app=backend")


def compare(outcomes: list[Outcome]) -> None:
    say("\nFrom the fix to the Deployment Available (the migration Job included), the "
        "backend exiting 3 without its tables:")
    for outcome in outcomes:
        counts = ", ".join(str(n) for _, n in sorted(outcome.restarts.items()))
        say(f"      {outcome.held_by:26} {outcome.seconds:6.1f}s   restarts per pod: {counts}")


def run(keep: bool, hold: float) -> None:
    hold_start = hold_start_available()
    total = 9 if hold_start else 7
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
        values = f" --set {HOLD_START_VALUE}=true" if hold_start else ""
        step(3, total, f"helm install {RELEASE} charts/schemagate -n {OPERATOR_NAMESPACE} "
                       f"--set image.tag=dev{values} ...: the operator runs in the cluster")
        install_operator(c, hold_start)
        installed = True
        say(f"      its pod is Ready (logs: kubectl -n {OPERATOR_NAMESPACE} logs "
            f"deploy/{RELEASE})")
        secret = (EXAMPLE / "secret.yaml").read_text().replace(
            "postgresql://backend:CHANGE-ME@127.0.0.1:5432/app",
            pg.pod_url(database="app", user="backend", password=BACKEND_PASSWORD))
        demo.kubectl("apply", "-f", "-", input=secret)
        outcomes = [readiness_gate_alone(demo, hold, 4, total)]
        if hold_start:
            outcomes.append(start_up_gate(demo, pg, hold, 6, total))
        else:
            say("\n      (the start-up gate, spec.gate.holdStart, is not in this checkout's "
                "CRD and chart: its half of the demo is left out)")
        compare(outcomes)
        upgrade(demo, total - 1, total)
        drift(demo, total, total)
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
    parser.add_argument("--hold", type=float, default=float(os.environ.get("HOLD") or
                                                            HOLD_SECONDS),
                        help="seconds the pods wait for their schema before the fix "
                             f"(default {HOLD_SECONDS:.0f}; HOLD=...)")
    args = parser.parse_args()
    run(args.keep, args.hold)


if __name__ == "__main__":
    main()
