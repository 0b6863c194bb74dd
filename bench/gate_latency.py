"""How soon do gated pods become Ready once the schema is really there?

On the local cluster (its real kubelet turns readiness-gate conditions into
pod readiness) and an embedded PostgreSQL, for N = 1, 10 and 100
gated pods of one Deployment, measures the time from the migration's commit to the
moment every pod is Ready, side by side in the same run for:

- schemagate: the operator as a real process, re-checking every half second while
  gated pods wait, then patching every pod's gate condition;
- a 2-second poller per pod, as init-container waiters do (`until check; do sleep 2;
  done`): each pod's waiter asks the database every 2 s, with the phase each pod
  happened to start at, and opens its own pod when it sees the tables.

Both open pods through the same path (a pod condition that the kubelet turns into
Ready), so the difference is the waiting. Prints medians and ratios twice: until every
gate condition is True (what the operator controls) and until every pod is Ready
(which adds the kubelet's own work, the same for both).
Run: `.venv/bin/python bench/gate_latency.py [--sizes 1 10 100] [--reps 5]`.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
import yaml
from kubernetes import client
from kubernetes.config import kube_config

from localenv import cluster as local_cluster
from localenv import node as local_node
from localenv import operator as local_operator
from localenv import postgres as local_postgres
from schemagate.core.check.verdict import Requirement
from schemagate.postgres import catalog

ROOT = Path(__file__).resolve().parents[1]
TABLES = ("credit_transactions", "agent_executions", "subscriptions")
CREATE = [f"CREATE TABLE {t} (id bigint primary key)" for t in TABLES] + [
    "CREATE TABLE alembic_version (version_num varchar(32) primary key)",
    "INSERT INTO alembic_version VALUES ('3f2a9c')"]
DROP = [f"DROP TABLE IF EXISTS {t}" for t in (*TABLES, "alembic_version")]
POLL_SECONDS = 2.0


class Bench:
    def __init__(self, c: local_cluster.Cluster, pg: local_postgres.LocalPostgres) -> None:
        self.c, self.pg = c, pg
        api = kube_config.new_client_from_config(config_file=str(c.kubeconfig))
        self.core = client.CoreV1Api(api)

    def sql(self, db: str, statements: list[str]) -> None:
        engine = sa.create_engine(self.pg.url(database=db), poolclass=sa.pool.NullPool)
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
        engine.dispose()

    def fresh_database(self, name: str) -> None:
        engine = sa.create_engine(self.pg.url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()

    def apply(self, namespace: str, *docs: dict[str, object]) -> None:
        result = self.c.kubectl("-n", namespace, "apply", "-f", "-",
                                input=yaml.safe_dump_all(docs))
        assert result.returncode == 0, result.stderr

    def namespace(self, name: str) -> None:
        # A run killed midway left DatabaseSchemas whose finalizer no operator will remove.
        for obj in self.c.kubectl("-n", name, "get", "dbschema", "-o", "name").stdout.split():
            self.c.kubectl("-n", name, "patch", obj, "--type=merge", "-p",
                           '{"metadata":{"finalizers":null}}')
        self.c.kubectl("delete", "namespace", name, "--ignore-not-found", "--wait=true",
                       timeout=120)
        self.c.kubectl("create", "namespace", name)

    def deployment(self, namespace: str, gate: str, replicas: int) -> None:
        self.apply(namespace, {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "backend"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "backend"}},
                     "template": {"metadata": {"labels": {"app": "backend"}}, "spec": {
                         "readinessGates": [{"conditionType": f"schemagate.io/{gate}"}],
                         "containers": [{"name": "app", "image": "schemagate/backend:dev",
                                         "imagePullPolicy": "Never",
                                         "command": ["sleep", "infinity"]}]}}}})

    def pods(self, namespace: str) -> list[client.V1Pod]:
        return list(self.core.list_namespaced_pod(namespace, label_selector="app=backend").items)

    def ready_count(self, namespace: str, condition: str = "Ready") -> int:
        # Raw JSON: deserialising 100 pods into objects every poll would steal the CPU the
        # operator and the API server are being timed on.
        response = self.core.list_namespaced_pod(namespace, label_selector="app=backend",
                                                 _preload_content=False)
        pods = json.loads(response.data)["items"]
        return sum(any(c["type"] == condition and c["status"] == "True"
                       for c in (p.get("status") or {}).get("conditions") or ())
                   for p in pods)

    def wait(self, what: str, probe: Callable[[], bool], timeout: float = 300) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if probe():
                return time.monotonic()
            time.sleep(0.05)
        raise SystemExit(f"bench: gave up waiting for {what}")


def measure(bench: Bench, namespace: str, db: str, n: int, gate: str,
            open_pods: Callable[[float], None] | None = None) -> tuple[float, float]:
    """Seconds from the migration's commit until all n gate conditions are True, and
    until all n pods are Ready (the kubelet stand-in's share comes on top)."""
    bench.sql(db, DROP)
    bench.wait("pods NotReady", lambda: bench.ready_count(namespace) == 0)
    # The migration lands at a random moment, not in step with anyone's polling.
    time.sleep(random.uniform(0, POLL_SECONDS))
    bench.sql(db, CREATE)
    committed = time.monotonic()
    if open_pods is not None:
        open_pods(committed)
    gated = bench.wait(f"{n} gates open",
                       lambda: bench.ready_count(namespace, f"schemagate.io/{gate}") == n)
    done = bench.wait(f"{n} pods Ready", lambda: bench.ready_count(namespace) == n)
    return gated - committed, done - committed


def poller_opener(bench: Bench, namespace: str, url: str, n: int) -> Callable[[float], None]:
    """Each pod's waiter: check the database every 2 s, from its own start phase."""
    requirement = Requirement(schema="public", tables=TABLES)

    def open_all(committed: float) -> None:
        pods = [p.metadata.name for p in bench.pods(namespace)]
        phases = {name: random.uniform(0, POLL_SECONDS) for name in pods}

        def waiter(pod: str) -> None:
            # The waiter's ticks run at phase, phase + 2, ... relative to some past start;
            # the next tick after the commit is when it first can see the tables.
            tick = committed - (committed % POLL_SECONDS) + phases[pod]
            while True:
                tick = tick + POLL_SECONDS if tick < committed else tick
                time.sleep(max(0.0, tick - time.monotonic()))
                if catalog.verify(url, requirement, connect_timeout=2).verified:
                    body = {"status": {"conditions": [{
                        "type": "schemagate.io/poller", "status": "True", "reason": "Polled",
                        "message": "the init-container waiter saw the tables"}]}}
                    bench.core.patch_namespaced_pod_status(pod, namespace, body)
                    return
                tick += POLL_SECONDS

        threads = [threading.Thread(target=waiter, args=(p,)) for p in pods]
        for t in threads:
            t.start()

    return open_all


def close_poller_gates(bench: Bench, namespace: str) -> None:
    for pod in bench.pods(namespace):
        bench.core.patch_namespaced_pod_status(pod.metadata.name, namespace, {"status": {
            "conditions": [{"type": "schemagate.io/poller", "status": "False",
                            "reason": "Reset", "message": ""}]}})


def run(sizes: list[int], reps: int) -> None:
    c = local_cluster.ensure_up(ROOT)
    with local_postgres.running(pod_host=c.host_address,
                                pod_networks=local_node.CLIENT_NETWORKS) as pg:
        bench = Bench(c, pg)
        c.kubectl("apply", "-f", str(ROOT / "crds"))
        namespaces = [f"bench-gate-{n}" for n in sizes]
        for ns in namespaces + [f"bench-poll-{n}" for n in sizes]:
            bench.namespace(ns)
        op = local_operator.start(c.kubeconfig, namespaces, ROOT / ".cluster" / "logs" /
                                  "bench-operator.log")
        rows = []
        try:
            for n in sizes:
                ours_ns, poll_ns = f"bench-gate-{n}", f"bench-poll-{n}"
                ours_db, poll_db = f"bench_gate_{n}", f"bench_poll_{n}"
                for db in (ours_db, poll_db):
                    bench.fresh_database(db)
                bench.apply(ours_ns, {"apiVersion": "v1", "kind": "Secret",
                                      "metadata": {"name": "db"},
                                      "stringData": {"url": pg.pod_url(database=ours_db)}})
                bench.apply(ours_ns, {
                    "apiVersion": "schemagate.io/v1alpha1", "kind": "DatabaseSchema",
                    "metadata": {"name": "schema"},
                    "spec": {"database": {"urlSecretRef": {"name": "db", "key": "url"}},
                             "tables": list(TABLES), "gate": {"onDrift": "Close"},
                             # drift closes the gate between runs; 5 s keeps runs short
                             "verifyIntervalSeconds": 5}})
                bench.deployment(ours_ns, "schema", n)
                bench.deployment(poll_ns, "poller", n)
                for ns in (ours_ns, poll_ns):
                    bench.wait(f"{n} pods in {ns}",
                               lambda ns=ns, n=n: len(bench.pods(ns)) == n)
                ours, polled = [], []
                for _ in range(reps):
                    ours.append(measure(bench, ours_ns, ours_db, n, "schema"))
                    close_poller_gates(bench, poll_ns)
                    polled.append(measure(bench, poll_ns, poll_db, n, "poller", poller_opener(
                        bench, poll_ns, pg.url(database=poll_db), n)))
                row = (n, *(statistics.median(x[i] for x in runs)
                            for runs in (ours, polled) for i in (0, 1)))
                rows.append(row)
                print(f"N={n:>3}: gates open: schemagate {row[1]:.2f}s, poller {row[3]:.2f}s; "
                      f"pods Ready: schemagate {row[2]:.2f}s, poller {row[4]:.2f}s "
                      f"(Ready runs: {', '.join(f'{x[1]:.2f}' for x in ours)} | "
                      f"{', '.join(f'{x[1]:.2f}' for x in polled)})", flush=True)
        finally:
            for ns in namespaces:
                c.kubectl("-n", ns, "delete", "dbschema", "--all", "--timeout=60s")
            op.stop()
            for ns in namespaces + [f"bench-poll-{n}" for n in sizes]:
                c.kubectl("delete", "namespace", ns, "--wait=false")
    print(f"\nschema correct -> all N gate conditions True / all N pods Ready, "
          f"median of {reps} runs")
    print(f"{'N':>5} {'gates: ours':>12} {'poller':>8} {'ratio':>6}   "
          f"{'Ready: ours':>12} {'poller':>8} {'ratio':>6}")
    for n, gate_ours, ready_ours, gate_poll, ready_poll in rows:
        print(f"{n:>5} {gate_ours:>11.2f}s {gate_poll:>7.2f}s {gate_poll / gate_ours:>5.1f}x   "
              f"{ready_ours:>11.2f}s {ready_poll:>7.2f}s {ready_poll / ready_ours:>5.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    # The machine has one node: a run that started the cluster stops it, even on Ctrl-C
    # or `timeout`, so that the next benchmark or test can start its own.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    was_up = local_cluster.is_up(ROOT)
    try:
        run(args.sizes, args.reps)
    finally:
        if not was_up:
            local_cluster.down(ROOT)


if __name__ == "__main__":
    main()
