"""How long from the schema fixed to the backend serving: held by the readiness gate
alone, or held before its start by the start-up gate (spec.gate.holdStart)?

On the local cluster's real node and an embedded PostgreSQL, a backend that exits 3 at
start-up when its tables are missing (`tests.cluster.strict_backend`), as the incident's
did, in two namespaces at once, one per way of holding it:

- readiness gate alone: its pods start, crash and back off (10 s, 20 s, 40 s ...);
- start-up gate: the chart's start-gate policy gives each pod the scheduling gate
  schemagate.io/<name>, and the operator removes it once the schema verifies.

A Deployment of 2 replicas (maxUnavailable: 0) whose pods have waited `--waits` seconds
(default 180 and 60: the second replica is added later) when the tables are created.
Prints the seconds from that commit to the Deployment Available, the restarts of its
pods, and the ratio of the two times.

Run: `flock /tmp/schemagate-node.lock make bench-start-gate` (or `.venv/bin/python
bench/start_gate.py [--waits 180 60]` under the same lock). It starts the cluster if none
runs, and stops what it started.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from bench.gate_latency import CREATE, TABLES, Bench
from localenv import cluster as local_cluster
from localenv import node as local_node
from localenv import operator as local_operator
from localenv import postgres as local_postgres
from tests.chart import of_kind, render
from tests.cluster.strict_backend import container, held, restarts

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = "backend-schema"
INTERVAL = 5  # verifyIntervalSeconds, the same for both


@dataclass
class Mode:
    label: str
    namespace: str
    hold_start: bool
    fixed: float = 0.0
    available: float = 0.0
    restarts: int = 0
    held: int = 0  # pods carrying the scheduling gate when the tables came
    per_pod: list[int] = field(default_factory=list)


def manifests(mode: Mode, url: str) -> list[dict[str, Any]]:
    gate: dict[str, Any] = {"holdStart": True} if mode.hold_start else {}
    return [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "backend-db"},
         "stringData": {"DATABASE_URL": url}},
        {"apiVersion": "schemagate.io/v1alpha1", "kind": "DatabaseSchema",
         "metadata": {"name": SCHEMA},
         "spec": {"database": {"urlSecretRef": {"name": "backend-db", "key": "DATABASE_URL"},
                               "connectTimeoutSeconds": 2},
                  "tables": list(TABLES), "gate": gate, "verifyIntervalSeconds": INTERVAL}}]


def deployment(replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "backend"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "backend"}},
                 "strategy": {"type": "RollingUpdate",
                              "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                 "template": {
                     "metadata": {"labels": {"app": "backend",
                                             "schemagate.io/schema": SCHEMA}},
                     "spec": {"readinessGates": [{"conditionType": f"schemagate.io/{SCHEMA}"}],
                              "terminationGracePeriodSeconds": 1,
                              "containers": [container(list(TABLES))]}}}}


def start_gate_policy(bench: Bench, namespace: str) -> None:
    """The chart's start-gate MutatingAdmissionPolicy and its binding, for `namespace`."""
    rendered = render({"watchNamespaces": f"{{{namespace}}}", "gateInjection.holdStart": "true"},
                      release="bench-start", namespace=namespace)
    policy = [m for kind in ("MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding")
              for m in of_kind(rendered, kind) if m["metadata"]["name"].endswith("start-gate")]
    assert len(policy) == 2
    result = bench.c.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(policy))
    assert result.returncode == 0, result.stderr


def backend_pods(bench: Bench, namespace: str) -> list[dict[str, Any]]:
    response = bench.core.list_namespaced_pod(namespace, label_selector="app=backend",
                                              _preload_content=False)
    pods: list[dict[str, Any]] = json.loads(response.data)["items"]
    return pods


def is_available(bench: Bench, namespace: str) -> bool:
    apps = client.AppsV1Api(bench.core.api_client)
    response = apps.read_namespaced_deployment_status("backend", namespace,
                                                      _preload_content=False)
    status = json.loads(response.data).get("status", {})
    return status.get("availableReplicas", 0) == 2 and status.get("updatedReplicas", 0) == 2 \
        and any(c["type"] == "Available" and c["status"] == "True"
                for c in status.get("conditions", ()))


def held_until_available(bench: Bench, mode: Mode) -> None:
    mode.available = bench.wait(f"{mode.label}: the Deployment Available",
                                lambda: is_available(bench, mode.namespace), timeout=600)
    pods = backend_pods(bench, mode.namespace)
    mode.per_pod = [restarts([p]) for p in pods]
    mode.restarts = sum(mode.per_pod)


def run(waits: tuple[int, int]) -> list[Mode]:
    started_here = not any(local_cluster.status(ROOT).values())
    c = local_cluster.ensure_up(ROOT)
    try:
        with local_postgres.running(pod_host=c.host_address,
                                    pod_networks=local_node.CLIENT_NETWORKS) as pg:
            return race(Bench(c, pg), pg, waits)
    finally:
        if started_here:
            local_cluster.down(ROOT)


def race(bench: Bench, pg: local_postgres.LocalPostgres, waits: tuple[int, int]) -> list[Mode]:
    """Both ways at once, in two namespaces: the same node, the same operator."""
    first, second = sorted(waits, reverse=True)
    c = bench.c
    modes = [Mode("readiness gate alone", "bench-startgate-ready", False),
             Mode("start-up gate", "bench-startgate-held", True)]
    c.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    for mode in modes:
        bench.namespace(mode.namespace)
        database = mode.namespace.replace("-", "_")
        bench.fresh_database(database)
        bench.apply(mode.namespace, *manifests(mode, pg.pod_url(database=database)))
    start_gate_policy(bench, modes[1].namespace)
    op = local_operator.start(c.kubeconfig, [m.namespace for m in modes],
                              ROOT / ".cluster" / "logs" / "bench-start-gate.log")
    try:
        time.sleep(3)  # the policy's binding reaches the API server's informer
        began = time.monotonic()
        for mode in modes:
            bench.apply(mode.namespace, deployment(1))
        time.sleep(first - second)
        for mode in modes:
            bench.apply(mode.namespace, deployment(2))
        time.sleep(max(0.0, began + first - time.monotonic()))
        for mode in modes:
            mode.held = sum(held(p, f"schemagate.io/{SCHEMA}")
                            for p in backend_pods(bench, mode.namespace))
        for mode in modes:
            bench.sql(mode.namespace.replace("-", "_"), CREATE)
            mode.fixed = time.monotonic()
        waiters = [threading.Thread(target=held_until_available, args=(bench, m))
                   for m in modes]
        for w in waiters:
            w.start()
        for w in waiters:
            w.join()
    finally:
        for mode in modes:
            c.kubectl("-n", mode.namespace, "delete", "dbschema", "--all", "--timeout=60s")
        op.stop()
        for mode in modes:
            c.kubectl("delete", "namespace", mode.namespace, "--wait=false")
        c.kubectl("delete", "mutatingadmissionpolicybinding,mutatingadmissionpolicy",
                  "bench-start-schemagate-start-gate", "--ignore-not-found")
    return modes


def report(modes: list[Mode], waits: tuple[int, int]) -> None:
    first, second = sorted(waits, reverse=True)
    print(f"\n2 replicas that had waited {first} s and {second} s; the tables created, then "
          "the Deployment Available")
    print(f"{'':24} {'seconds':>8} {'restarts':>9} {'per pod':>10} {'held':>5}")
    for mode in modes:
        print(f"{mode.label:24} {mode.available - mode.fixed:>8.1f} {mode.restarts:>9} "
              f"{'/'.join(map(str, mode.per_pod)):>10} {mode.held:>5}")
    alone, start_up = (m.available - m.fixed for m in modes)
    print(f"ratio (readiness gate alone / start-up gate): {alone / start_up:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--waits", type=int, nargs=2, default=(180, 60),
                        help="how long each replica has waited when the tables come")
    args = parser.parse_args()
    waits = (args.waits[0], args.waits[1])
    report(run(waits), waits)


if __name__ == "__main__":
    main()
