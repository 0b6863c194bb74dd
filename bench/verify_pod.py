"""What does a check from a pod (verifyFrom: Pod) cost, next to one from the operator?

On the local cluster's real node and an embedded PostgreSQL, a backend Deployment whose
pods reach the database only through a proxy sidecar on 127.0.0.1 (a TCP forwarder, as
`localenv.proxy`), its role logging in without a password:

- the time from `kubectl apply` of its DatabaseSchema to every gated pod open, with
  `verifyFrom: Pod` and, as the baseline, `verifyFrom: Operator` against the same
  database at an address the operator reaches (median and maximum of `--reps`, each on
  a fresh Deployment whose pods already wait);
- the verify pods created at steady state (schema verified, nothing changing) over
  `--steady` seconds with `verifyIntervalSeconds` `--interval`, counted from a watch
  (every pod created, even those deleted since), and per hour.

Run: `flock /tmp/schemagate-turn.lock .venv/bin/python bench/verify_pod.py [--reps 3]
[--steady 60] [--interval 10]`. It starts the cluster if none runs, and stops what it
started.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes import client, watch
from kubernetes.config import kube_config

from bench.gate_latency import CREATE, TABLES, Bench
from localenv import cluster as local_cluster
from localenv import node as local_node
from localenv import operator as local_operator
from localenv import postgres as local_postgres
from localenv import proxy

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "bench-verifypod"
DATABASE = "bench_verifypod"
ROLE = "bench_iam"
VERIFY_LABEL = "schemagate.io/verify-of"
IMAGE = "schemagate:dev"
RESTRICTED = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def deployment(name: str, gate: str, pg: local_postgres.LocalPostgres) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        # Its owners' consent to the verify pods cloned from it.
        "metadata": {"name": name, "annotations": {"schemagate.io/clone-for": gate}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}}, "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {
                "readinessGates": [{"conditionType": f"schemagate.io/{gate}"}],
                "terminationGracePeriodSeconds": 1,
                "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
                "initContainers": [proxy.sidecar(str(pg.pod_host), pg.port, IMAGE)],
                "containers": [{"name": "app", "image": "schemagate/backend:dev",
                                "imagePullPolicy": "Never", "command": ["sleep", "infinity"],
                                "securityContext": RESTRICTED}]}}}}


def schema(name: str, deployment_name: str, from_pod: bool, interval: int) -> dict[str, Any]:
    database: dict[str, Any] = {"urlSecretRef": {"name": "db-pod" if from_pod else "db-host",
                                                 "key": "url"}}
    if from_pod:
        database.update(verifyFrom="Pod", verifyPod={"fromDeployment": {
            "name": deployment_name, "container": "app"}})
    return {"apiVersion": "schemagate.io/v1alpha1", "kind": "DatabaseSchema",
            "metadata": {"name": name},
            "spec": {"database": database, "tables": list(TABLES),
                     "verifyIntervalSeconds": interval}}


def gates_open(core: client.CoreV1Api, app: str, gate: str) -> int:
    pods = core.list_namespaced_pod(NAMESPACE, label_selector=f"app={app}").items
    return sum(any(c.type == f"schemagate.io/{gate}" and c.status == "True"
                   for c in p.status.conditions or ()) for p in pods
               if not p.metadata.deletion_timestamp)


def time_to_open(bench: Bench, core: client.CoreV1Api, pg: local_postgres.LocalPostgres,
                 rep: int, from_pod: bool, interval: int) -> float:
    kind = "pod" if from_pod else "op"
    name, gate = f"backend-{kind}-{rep}", f"schema-{kind}-{rep}"
    bench.apply(NAMESPACE, deployment(name, gate, pg))
    bench.wait(f"{name}'s pods running", lambda: sum(
        p.status.phase == "Running" for p in core.list_namespaced_pod(
            NAMESPACE, label_selector=f"app={name}").items) == 2, timeout=120)
    started = time.monotonic()
    bench.apply(NAMESPACE, schema(gate, name, from_pod, interval))
    bench.wait(f"{gate}'s gates open", lambda: gates_open(core, name, gate) == 2, timeout=180)
    return time.monotonic() - started


class Created:
    """Counts the verify pods created while it runs: a watch from the resourceVersion of a
    list taken first, so the finished pods kept for `kubectl logs` are not counted."""

    def __init__(self, core: client.CoreV1Api, schema_name: str) -> None:
        self.count = 0
        self._stopped = threading.Event()
        self._watch = watch.Watch()
        selector = f"{VERIFY_LABEL}={schema_name}"
        listed = core.list_namespaced_pod(NAMESPACE, label_selector=selector)
        self.kept = len(listed.items)
        self._thread = threading.Thread(
            target=self._run, args=(core, selector, listed.metadata.resource_version),
            daemon=True)
        self._thread.start()

    def _run(self, core: client.CoreV1Api, selector: str, since: str) -> None:
        try:
            for event in self._watch.stream(core.list_namespaced_pod, NAMESPACE,
                                            label_selector=selector, resource_version=since,
                                            timeout_seconds=3600):
                if event["type"] == "ADDED" and not self._stopped.is_set():
                    self.count += 1
        except Exception:  # the stream ends with the cluster: the count is taken by then
            if not self._stopped.is_set():
                raise

    def stop(self) -> int:
        self._stopped.set()
        self._watch.stop()
        return self.count


def trust_role(pg: local_postgres.LocalPostgres, bench: Bench) -> None:
    hba = pg.pgdata / "pg_hba.conf"
    trust = "".join(f"host all {ROLE} {net} trust\n" for net in local_node.CLIENT_NETWORKS)
    hba.write_text(trust + hba.read_text())
    bench.sql("postgres", [f"DROP ROLE IF EXISTS {ROLE}", f"CREATE ROLE {ROLE} LOGIN",
                           "SELECT pg_reload_conf()"])
    bench.sql(DATABASE, [f"GRANT SELECT ON alembic_version TO {ROLE}"])


def run(reps: int, steady: float, interval: int) -> None:
    started_here = not any(local_cluster.status(ROOT).values())
    c = local_cluster.ensure_up(ROOT)
    try:
        core = client.CoreV1Api(kube_config.new_client_from_config(
            config_file=str(c.kubeconfig)))
        c.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
        with local_postgres.running(pod_host=c.host_address,
                                    pod_networks=local_node.CLIENT_NETWORKS) as pg:
            bench = Bench(c, pg)
            bench.namespace(NAMESPACE)
            bench.fresh_database(DATABASE)
            bench.sql(DATABASE, CREATE)
            trust_role(pg, bench)
            bench.apply(NAMESPACE, *({"apiVersion": "v1", "kind": "Secret",
                                      "metadata": {"name": name}, "stringData": {"url": url}}
                                     for name, url in (
                ("db-pod", f"postgresql://{ROLE}@127.0.0.1:5432/{DATABASE}"),
                ("db-host", f"postgresql://{ROLE}@{pg.pod_host}:{pg.port}/{DATABASE}"))))
            log = ROOT / ".cluster" / "logs" / "bench-verifypod.log"
            op = local_operator.start(c.kubeconfig, [NAMESPACE], log,
                                      extra_args=["--verify-image", IMAGE])
            try:
                operator_side = [time_to_open(bench, core, pg, i, False, interval)
                                 for i in range(reps)]
                in_pod = [time_to_open(bench, core, pg, i, True, interval) for i in range(reps)]
                # Steady state: the last schema is verified and its pods open.
                counter = Created(core, f"schema-pod-{reps - 1}")
                time.sleep(steady)
                created, kept = counter.stop(), counter.kept
            finally:
                c.kubectl("-n", NAMESPACE, "delete", "dbschema", "--all", "--timeout=60s")
                op.stop()
                c.kubectl("delete", "namespace", NAMESPACE, "--wait=false")
    finally:
        if started_here:
            local_cluster.down(ROOT)
    print(f"\nschema applied -> both gated pods open, {reps} runs each (seconds)")
    print(f"{'':28} {'median':>7} {'max':>7}")
    for label, times in (("verifyFrom: Operator", operator_side), ("verifyFrom: Pod", in_pod)):
        print(f"{label:28} {statistics.median(times):>7.2f} {max(times):>7.2f}")
    ratio = statistics.median(in_pod) / statistics.median(operator_side)
    print(f"{'Pod / Operator (median)':28} {ratio:>7.1f}x")
    per_hour = created * 3600 / steady
    print(f"\nsteady state, verifyIntervalSeconds {interval}, {steady:.0f} s watched: {created} "
          f"verify pods created = {per_hour:.0f} per hour (one per interval: "
          f"{3600 / interval:.0f}); {kept} finished ones kept for kubectl logs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--steady", type=float, default=60.0)
    parser.add_argument("--interval", type=int, default=10)
    args = parser.parse_args()
    run(args.reps, args.steady, args.interval)


if __name__ == "__main__":
    main()
