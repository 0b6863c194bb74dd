"""How long do new gated pods wait when the operator's leader dies?

On the local control plane and an embedded PostgreSQL, with a verified DatabaseSchema
and a gated Deployment, two operator processes run with leader election (the default
lease settings: `schemagate run --help`). Each run SIGKILLs the leader at a random
moment of its renew period (the Lease is not released: it must expire), scales the
Deployment up by one at once, and times the kill until the new pod's gate condition is
True; then a fresh standby replaces the killed process for the next run.

Then the same with SIGTERM, as a node drain or a rolling update stops the leader: it
releases the Lease on its way out. Baseline, in the same run: one operator without
leader election, SIGKILLed and
restarted at once in place (what a container restart on a healthy node does at best;
after a node loss the pod must first be rescheduled).
Run: `.venv/bin/python bench/leader_handover.py [--reps 5]`.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
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
from schemagate.core.leader import LeaseTiming

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "bench-leader"
DATABASE = "bench_leader"
TABLES = ("credit_transactions", "agent_executions", "subscriptions")
LOGS = ROOT / ".cluster" / "logs"
GATE = "schemagate.io/schema"


class Bench:
    def __init__(self, c: local_cluster.Cluster) -> None:
        self.c = c
        self.core = client.CoreV1Api(kube_config.new_client_from_config(
            config_file=str(c.kubeconfig)))
        self.replicas = 1
        self.started = 0

    def apply(self, *docs: dict[str, object]) -> None:
        result = self.c.kubectl("-n", NAMESPACE, "apply", "-f", "-",
                                input=yaml.safe_dump_all(docs))
        assert result.returncode == 0, result.stderr

    def open_gates(self) -> int:
        response = self.core.list_namespaced_pod(NAMESPACE, label_selector="app=backend",
                                                 _preload_content=False)
        return sum(any(c["type"] == GATE and c["status"] == "True"
                       for c in (p.get("status") or {}).get("conditions") or ())
                   for p in json.loads(response.data)["items"]
                   if not p["metadata"].get("deletionTimestamp"))

    def scale_up(self) -> None:
        self.replicas += 1
        result = self.c.kubectl("-n", NAMESPACE, "scale", "deployment/backend",
                                f"--replicas={self.replicas}")
        assert result.returncode == 0, result.stderr

    def operator(self, elect: bool) -> local_operator.OperatorProcess:
        self.started += 1
        args = ["--leader-election", "--leader-election-namespace", NAMESPACE] if elect else []
        return local_operator.start(self.c.kubeconfig, [NAMESPACE],
                                    LOGS / f"bench-leader-{self.started}.log", extra_args=args)


def wait(what: str, probe: Callable[[], bool], timeout: float = 120) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return time.monotonic()
        time.sleep(0.05)
    raise SystemExit(f"bench: gave up waiting for {what}")


def leading(process: local_operator.OperatorProcess) -> bool:
    try:
        text = process.metrics()
    except OSError:
        return False
    return re.search(r"^schemagate_leader 1\.0$", text, re.MULTILINE) is not None


def setup(c: local_cluster.Cluster, pg: local_postgres.LocalPostgres) -> Bench:
    bench = Bench(c)
    # Server-side, as the tests apply it: a client-side apply would leave an annotation
    # their server-side dry runs warn about.
    c.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    for obj in c.kubectl("-n", NAMESPACE, "get", "dbschema", "-o", "name").stdout.split():
        c.kubectl("-n", NAMESPACE, "patch", obj, "--type=merge", "-p",
                  '{"metadata":{"finalizers":null}}')
    c.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true",
              timeout=120)
    c.kubectl("create", "namespace", NAMESPACE)
    engine = sa.create_engine(pg.url(), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{DATABASE}"'))
    engine.dispose()
    engine = sa.create_engine(pg.url(database=DATABASE))
    with engine.begin() as conn:
        for t in TABLES:
            conn.execute(sa.text(f"CREATE TABLE {t} (id bigint primary key)"))
        conn.execute(sa.text("CREATE TABLE alembic_version (version_num varchar(32) primary "
                             "key)"))
        conn.execute(sa.text("INSERT INTO alembic_version VALUES ('3f2a9c')"))
    engine.dispose()
    bench.apply(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
         "stringData": {"url": pg.pod_url(database=DATABASE)}},
        {"apiVersion": "schemagate.io/v1alpha1", "kind": "DatabaseSchema",
         "metadata": {"name": "schema"},
         "spec": {"database": {"urlSecretRef": {"name": "db", "key": "url"}},
                  "tables": list(TABLES)}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "backend"},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "backend"}},
                  "template": {"metadata": {"labels": {"app": "backend"}}, "spec": {
                      "readinessGates": [{"conditionType": GATE}],
                      "containers": [{"name": "app", "image": "schemagate/backend:dev",
                                      "command": ["sleep", "infinity"]}]}}}})
    return bench


def kill_and_time(bench: Bench, victim: local_operator.OperatorProcess, period: float,
                  kill: bool = True) -> float:
    time.sleep(random.uniform(0, period))  # not in step with the leader's renewals
    killed = time.monotonic()
    if kill:
        victim.stop(kill=True)
    else:  # SIGTERM, as a drain or a rolling update does: the Lease is released
        victim.process.terminate()
    bench.scale_up()
    opened = wait("the new pod's gate open", lambda: bench.open_gates() == bench.replicas)
    return opened - killed


def run(reps: int) -> None:
    timing = LeaseTiming()
    c = local_cluster.ensure_up(ROOT)
    with local_postgres.running(pod_host=c.host_address,
                                pod_networks=local_node.CLIENT_NETWORKS) as pg:
        bench = setup(c, pg)
        handover: list[float] = []
        drained: list[float] = []
        restart: list[float] = []
        processes: list[local_operator.OperatorProcess] = []
        try:
            processes = [bench.operator(elect=True)]
            wait("a leader", lambda: leading(processes[0]))
            processes.append(bench.operator(elect=True))
            wait("the first gate open", lambda: bench.open_gates() == 1)
            for rep in range(reps):
                leader = next(p for p in processes if leading(p))
                standby = next(p for p in processes if p is not leader)
                seconds = kill_and_time(bench, leader, timing.retry_period)
                handover.append(seconds)
                print(f"handover run {rep + 1}: {seconds:.2f}s", flush=True)
                processes = [standby, bench.operator(elect=True)]
            for rep in range(reps):
                leader = next(p for p in processes if leading(p))
                standby = next(p for p in processes if p is not leader)
                seconds = kill_and_time(bench, leader, timing.retry_period, kill=False)
                drained.append(seconds)
                leader.stop()  # reaps it
                print(f"SIGTERM handover run {rep + 1}: {seconds:.2f}s", flush=True)
                processes = [standby, bench.operator(elect=True)]
            for p in processes:
                p.stop()
            processes = [bench.operator(elect=False)]
            wait("the gates open", lambda: bench.open_gates() == bench.replicas)
            for rep in range(reps):
                victim = processes[0]
                time.sleep(random.uniform(0, timing.retry_period))
                victim.stop(kill=True)
                killed = time.monotonic()
                processes = [bench.operator(elect=False)]  # restarted in place at once
                bench.scale_up()
                opened = wait("the new pod's gate open",
                              lambda: bench.open_gates() == bench.replicas)
                restart.append(opened - killed)
                print(f"restart run {rep + 1}: {opened - killed:.2f}s", flush=True)
        finally:
            c.kubectl("-n", NAMESPACE, "delete", "dbschema", "--all", "--timeout=60s")
            for p in processes:
                p.stop()
            c.kubectl("delete", "namespace", NAMESPACE, "--wait=false")
    print(f"\nSIGKILL of the operator -> a new gated pod's gate open, {reps} runs "
          f"(lease {timing.duration:g}s, renew deadline {timing.renew_deadline:g}s, "
          f"retry {timing.retry_period:g}s)")
    for label, runs in (("2 replicas, leader SIGKILLed", handover),
                        ("2 replicas, leader SIGTERMed (drain)", drained),
                        ("baseline: 1 replica restarted in place", restart)):
        print(f"  {label:<40} median {statistics.median(runs):5.2f}s  "
              f"min {min(runs):5.2f}s  max {max(runs):5.2f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    run(parser.parse_args().reps)


if __name__ == "__main__":
    main()
