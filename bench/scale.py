"""What 10, 100 and 1,000 DatabaseSchemas cost the operator, at start and at idle.

On the local cluster and an embedded PostgreSQL: N DatabaseSchemas across 10 namespaces
and 5 databases (two namespaces per database, so schemas of both share a URL), 3 gated
pods each, created in bulk while the operator runs. Side by side, this checkout's operator
("ours") and, with `--baseline DIR`, the operator of another checkout ("baseline"; e.g.
`git worktree add /tmp/pre-redesign pre-redesign`, a tagged commit).

The pods exist in the API server but no kubelet runs them: 3,000 real containers do not
fit on 2 cores. Each carries a scheduling gate (`spec.schedulingGates`), so the scheduler
leaves it Pending and no node ever starts it; the readiness gate condition is patched on
`pods/status` all the same, and "all pods Ready" here means every pod's gate condition
True (a pod on a real node is Ready 0.15 s after that, see docs/benchmarks.md).

Measured, for each N and each mode:
- all schemas Ready / all gate conditions True, from the start of the bulk creation, and
  the API server's own pod creation rate (pods created per second by 16 parallel clients);
- at idle (after a settle), for one minute: the operator's CPU (utime+stime of the
  process), API requests (the operator's own client, `schemagate_api_requests_total`, and
  the API server's `apiserver_request_total` minus a minute without the operator: Kopf's
  watches are in that one), DB connections per database (pg_stat_database.sessions), the
  status writes (schemas whose resourceVersion moved) and RSS (now and peak);
- one schema's flip: its extra table dropped (onDrift: Close closes its 3 gates, seen at
  once because its Secret is touched), then created again at a random moment: seconds
  until its 3 gate conditions are True, the median of 3.

Run: `make bench-scale` or `.venv/bin/python bench/scale.py [--sizes 10 100 1000]
[--baseline DIR] [--idle 60]`; under `flock /tmp/schemagate-turn.lock` on shared machines.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.config import kube_config

from localenv import cluster as local_cluster
from localenv import node as local_node
from localenv import operator as local_operator
from localenv import postgres as local_postgres

ROOT = Path(__file__).resolve().parents[1]
NAMESPACES = 10
DATABASES = 5
PODS_EACH = 3
TABLES = ("credit_transactions", "agent_executions", "subscriptions")
FLIP_TABLE = "flip_table"
LABEL = "schemagate.io/bench-scale"
WORKERS = 16
READY_TIMEOUT = 300.0
SETTLE = 15.0
GROUP, VERSION, PLURAL = "schemagate.io", "v1alpha1", "databaseschemas"


@dataclass
class Row:
    n: int
    mode: str
    pods_per_second: float = 0.0
    schemas_ready: float | None = None
    pods_ready: float | None = None
    cpu_percent: float = 0.0
    operator_requests: float = 0.0
    server_requests: float = 0.0
    db_connections: dict[str, float] = field(default_factory=dict)
    status_writes: int = 0
    rss_mib: float = 0.0
    peak_mib: float = 0.0
    flip: float | None = None
    requests_by: dict[str, float] = field(default_factory=dict)


class Bench:
    def __init__(self, c: local_cluster.Cluster, pg: local_postgres.LocalPostgres) -> None:
        self.c, self.pg = c, pg
        configuration = client.Configuration()
        kube_config.load_kube_config(config_file=str(c.kubeconfig),
                                     client_configuration=configuration)
        configuration.connection_pool_maxsize = WORKERS * 2
        api = client.ApiClient(configuration)
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    # the database side

    def admin(self, sql: str, database: str = "postgres") -> None:
        with psycopg.connect(self.pg.url(database=database, driver="postgresql"),
                             autocommit=True) as conn:
            conn.execute(sql.encode())

    def databases(self) -> list[str]:
        names = [f"bench_scale_{i}" for i in range(DATABASES)]
        for name in names:
            self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self.admin(f'CREATE DATABASE "{name}"')
            self.admin("; ".join([*(f"CREATE TABLE {t} (id bigint primary key)" for t in TABLES),
                                  "CREATE TABLE alembic_version (version_num varchar(32) "
                                  "primary key)",
                                  "INSERT INTO alembic_version VALUES ('3f2a9c')"]),
                       name)
        self.admin(f"CREATE TABLE {FLIP_TABLE} (id int)", names[0])
        return names

    def sessions(self, names: list[str]) -> dict[str, int]:
        with psycopg.connect(self.pg.url(database="postgres", driver="postgresql"),
                             autocommit=True) as conn:
            rows = conn.execute("SELECT datname, sessions FROM pg_stat_database "
                                "WHERE datname = ANY(%s)", (names,)).fetchall()
        return {name: int(count) for name, count in rows}

    # the cluster side

    def namespaces(self, prefix: str) -> list[str]:
        names = [f"{prefix}-{i}" for i in range(NAMESPACES)]
        for name in names:
            self.core.create_namespace({"metadata": {"name": name}})
        return names

    def delete_namespaces(self, names: list[str]) -> None:
        # Nothing removes a DatabaseSchema's finalizer once its operator is gone.
        for ns in names:
            objs = self.custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)
            with ThreadPoolExecutor(WORKERS) as pool:
                list(pool.map(lambda o, ns=ns: self.custom.patch_namespaced_custom_object(
                    GROUP, VERSION, ns, PLURAL, o["metadata"]["name"],
                    {"metadata": {"finalizers": None}}), objs["items"]))
            self.core.delete_namespace(ns)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            left = {n.metadata.name for n in self.core.list_namespace().items}
            if not left.intersection(names):
                return
            time.sleep(1)
        print(f"  (namespaces {names[0]}... still terminating after 240 s)", flush=True)

    def schema(self, ns: str, name: str, flip: bool) -> None:
        tables = [*TABLES, FLIP_TABLE] if flip else list(TABLES)
        self.custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "DatabaseSchema",
            "metadata": {"name": name, "labels": {LABEL: "1"}},
            "spec": {"database": {"urlSecretRef": {"name": "db", "key": "url"}},
                     "tables": tables, "gate": {"onDrift": "Close" if flip else "Hold"}}})

    def pod(self, ns: str, schema: str, index: int) -> None:
        self.core.create_namespaced_pod(ns, {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{schema}-{index}",
                         "labels": {"app": schema, "schemagate.io/schema": schema,
                                    LABEL: "1"}},
            "spec": {"readinessGates": [{"conditionType": f"schemagate.io/{schema}"}],
                     # Never scheduled, never run: the API object is what the gate acts on.
                     "schedulingGates": [{"name": "schemagate.io/bench-not-run"}],
                     "containers": [{"name": "app", "image": "schemagate/backend:dev",
                                     "imagePullPolicy": "Never"}]}})

    def raw(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return json.loads(call(*args, _preload_content=False, **kwargs).data)

    def schemas_ready(self) -> tuple[int, dict[str, str]]:
        items = self.raw(self.custom.list_cluster_custom_object, GROUP, VERSION, PLURAL,
                         label_selector=LABEL)["items"]
        ready = sum(any(c["type"] == "Ready" and c["status"] == "True"
                        for c in (o.get("status") or {}).get("conditions") or ())
                    for o in items)
        versions = {f'{o["metadata"]["namespace"]}/{o["metadata"]["name"]}':
                    o["metadata"]["resourceVersion"] for o in items}
        return ready, versions

    def gates_open(self, ns: str | None = None, app: str | None = None) -> int:
        selector = LABEL if app is None else f"{LABEL},app={app}"
        if ns is None:
            items = self.raw(self.core.list_pod_for_all_namespaces, label_selector=selector,
                             resource_version="0")["items"]
        else:
            items = self.raw(self.core.list_namespaced_pod, ns, label_selector=selector)["items"]
        return sum(any(c["type"].startswith("schemagate.io/") and c["status"] == "True"
                       for c in (p.get("status") or {}).get("conditions") or ())
                   for p in items)

    def server_requests(self) -> float:
        text = self.c.kubectl("get", "--raw", "/metrics").stdout
        return sum(float(m.group(1)) for m in re.finditer(
            r"^apiserver_request_total\{[^}]*\} (\S+)$", text, re.MULTILINE))


def wait(probe: Callable[[], bool], timeout: float, every: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if probe():
            return time.monotonic()
        time.sleep(every)
    return None


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mib(pid: int) -> tuple[float, float]:
    text = Path(f"/proc/{pid}/status").read_text()
    kib = {k: int(v.split()[0]) for k, v in re.findall(r"^(VmRSS|VmHWM):\s+(.*)$", text,
                                                       re.MULTILINE)}
    return kib["VmRSS"] / 1024, kib["VmHWM"] / 1024


def operator_requests(op: local_operator.OperatorProcess) -> dict[str, float]:
    found: dict[str, float] = {}
    for m in re.finditer(r'^schemagate_api_requests_total\{resource="([^"]+)",verb="([^"]+)"\}'
                         r" (\S+)$", op.metrics(), re.MULTILINE):
        found[f"{m.group(2)} {m.group(1)}"] = float(m.group(3))
    return found


def baseline(bench: Bench, seconds: float) -> float:
    """API requests per minute with no operator running (the controllers, the node)."""
    before = bench.server_requests()
    time.sleep(seconds)
    return (bench.server_requests() - before - 1) * 60 / seconds  # our own GET /metrics


def started_operator(bench: Bench, namespaces: list[str], mode: str, n: int,
                     code: Path | None) -> local_operator.OperatorProcess:
    """This checkout's operator, or (`code`) the one of the checkout at `code`."""
    saved = os.environ.get("PYTHONPATH")
    if code is not None:
        os.environ["PYTHONPATH"] = str(code / "operator")
    try:
        return local_operator.start(bench.c.kubeconfig, namespaces, ROOT / ".cluster" /
                                    "logs" / f"bench-scale-{mode}-{n}.log")
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def run_one(bench: Bench, n: int, mode: str, databases: list[str], idle: float,
            server_baseline: float, flip_times: int, baseline_code: Path | None = None
            ) -> Row:
    row = Row(n, mode)
    namespaces = bench.namespaces(f"scale-{mode}-{n}")
    for i, ns in enumerate(namespaces):
        url = bench.pg.pod_url(database=databases[i % DATABASES])
        bench.core.create_namespaced_secret(ns, {"metadata": {"name": "db"},
                                                 "stringData": {"url": url}})
    op = started_operator(bench, namespaces, mode, n, baseline_code)
    pid = op.process.pid
    schemas = [(namespaces[i % NAMESPACES], f"s-{i}") for i in range(n)]
    flip_ns, flip_name = schemas[0]
    try:
        started = time.monotonic()
        with ThreadPoolExecutor(WORKERS) as pool:
            made = [pool.submit(bench.schema, ns, name, i == 0)
                    for i, (ns, name) in enumerate(schemas)]
            made += [pool.submit(bench.pod, ns, name, k) for ns, name in schemas
                     for k in range(PODS_EACH)]
            for future in made:
                future.result()
        created = time.monotonic()
        row.pods_per_second = n * PODS_EACH / (created - started)
        done = wait(lambda: bench.schemas_ready()[0] == n, READY_TIMEOUT, 1.0)
        row.schemas_ready = None if done is None else done - started
        done = wait(lambda: bench.gates_open() == n * PODS_EACH,
                    max(10.0, READY_TIMEOUT - (time.monotonic() - started)), 1.0)
        row.pods_ready = None if done is None else done - started
        print(f"  N={n} {mode}: {n * PODS_EACH} pods created at {row.pods_per_second:.0f}/s; "
              f"all Ready {fmt(row.schemas_ready)} / {fmt(row.pods_ready)}", flush=True)

        time.sleep(SETTLE)
        _, versions_before = bench.schemas_ready()
        sessions_before = bench.sessions(databases)
        requests_before = operator_requests(op)
        server_before = bench.server_requests()
        cpu_before = cpu_seconds(pid)
        idle_started = time.monotonic()
        time.sleep(idle)
        elapsed = time.monotonic() - idle_started
        row.cpu_percent = (cpu_seconds(pid) - cpu_before) / elapsed * 100
        server_after = bench.server_requests()
        requests_after = operator_requests(op)
        sessions_after = bench.sessions(databases)
        _, versions_after = bench.schemas_ready()
        per_minute = 60 / elapsed
        row.requests_by = {k: (v - requests_before.get(k, 0)) * per_minute
                           for k, v in requests_after.items()
                           if v - requests_before.get(k, 0) > 0}
        row.operator_requests = sum(row.requests_by.values())
        # Less our own: GET /metrics, two LISTs of the schemas. The baseline is printed
        # beside it, not subtracted: a minute of the controllers' and the node's work varies.
        row.server_requests = (server_after - server_before - 3) * per_minute
        row.db_connections = {d: (sessions_after.get(d, 0) - sessions_before.get(d, 0))
                              * per_minute for d in databases}
        row.status_writes = sum(versions_after.get(k) != v for k, v in versions_before.items())
        row.rss_mib, row.peak_mib = memory_mib(pid)
        print(f"  N={n} {mode}: idle {row.cpu_percent:.1f} % CPU, {row.operator_requests:.0f} "
              f"operator / {row.server_requests:.0f} server API requests a minute, "
              f"{statistics.mean(row.db_connections.values()):.1f} DB connections a minute "
              f"per database, {row.status_writes} status writes, RSS {row.rss_mib:.0f} MiB "
              f"(peak {row.peak_mib:.0f}); by request: {fmt_requests(row.requests_by)}",
              flush=True)

        row.flip = flips(bench, databases[0], flip_ns, flip_name, flip_times)
        print(f"  N={n} {mode}: flip to 3 gates open {fmt(row.flip)} (median of "
              f"{flip_times})", flush=True)
    finally:
        op.stop()
        bench.delete_namespaces(namespaces)
    return row


def flips(bench: Bench, database: str, ns: str, name: str, times: int) -> float | None:
    """The median of `times` flips (None if one timed out)."""
    seen = [flip(bench, database, ns, name) for _ in range(times)]
    return None if None in seen else statistics.median(x for x in seen if x is not None)


def flip(bench: Bench, database: str, ns: str, name: str) -> float | None:
    bench.admin(f"DROP TABLE {FLIP_TABLE}", database)
    # A touch of the Secret wakes its schemas at once, rather than at their next interval:
    # the drift is seen, the flip schema's gates close, and it re-checks while they wait.
    bench.core.patch_namespaced_secret("db", ns, {"metadata": {"annotations": {
        "bench.schemagate.io/touched": str(time.time())}}})
    if wait(lambda: bench.gates_open(ns, name) == 0, 90, 0.2) is None:
        bench.admin(f"CREATE TABLE {FLIP_TABLE} (id int)", database)
        return None
    time.sleep(random.uniform(1.0, 2.0))  # not in step with anyone's recheck
    bench.admin(f"CREATE TABLE {FLIP_TABLE} (id int)", database)
    created = time.monotonic()
    done = wait(lambda: bench.gates_open(ns, name) == PODS_EACH, 60, 0.02)
    return None if done is None else done - created


def fmt(seconds: float | None) -> str:
    return "timeout" if seconds is None else f"{seconds:.1f} s" if seconds >= 10 else \
        f"{seconds:.2f} s"


def fmt_requests(by: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.0f}" for k, v in sorted(by.items(), key=lambda kv: -kv[1])) \
        or "none"


def ratio(off: float | None, on: float | None) -> str:
    if off is None or on is None:
        return "-"
    if on <= 0:
        return "inf" if off > 0 else "1x"
    return f"{off / on:.1f}x"


def report(rows: list[Row], server_baseline: float) -> None:
    print("\nN DatabaseSchemas over 10 namespaces and 5 databases, 3 gated pods each "
          "(in the API server, never run: scheduling-gated; \"pods Ready\" = every gate "
          "condition True)")
    print(f"API server requests a minute with no operator running: {server_baseline:.0f} "
          "(the controllers, the node; the server column includes them, and Kopf's "
          "watches)\n")
    header = ("| N (pods) | mode | pods created/s | all schemas Ready / all pods Ready | "
              "operator CPU idle | API requests per idle minute (operator / server) | "
              "DB connections per idle minute per database | status writes at idle | "
              "RSS (peak) | flip to all gates open |")
    print(header)
    print("|" + "---|" * 10)
    by_key = {(r.n, r.mode): r for r in rows}
    for r in rows:
        db = statistics.mean(r.db_connections.values()) if r.db_connections else 0.0
        print(f"| {r.n} ({r.n * PODS_EACH}) | {r.mode} | {r.pods_per_second:.0f} | "
              f"{fmt(r.schemas_ready)} / {fmt(r.pods_ready)} | {r.cpu_percent:.1f} % | "
              f"{r.operator_requests:.0f} / {r.server_requests:.0f} | {db:.1f} | "
              f"{r.status_writes} | {r.rss_mib:.0f} MiB ({r.peak_mib:.0f}) | {fmt(r.flip)} |")
    pairs = [(by_key[(n, "baseline")], by_key[(n, "ours")]) for n, mode in by_key
             if mode == "ours" and (n, "baseline") in by_key]
    if pairs:
        print("\nratios, baseline over ours (higher: ours is cheaper)\n")
        print("| N | all schemas Ready | all pods Ready | CPU idle | operator requests | "
              "server requests | DB connections | RSS | flip |")
        print("|" + "---|" * 9)
        for off, on in pairs:
            db_off, db_on = (statistics.mean(x.db_connections.values()) for x in (off, on))
            print(f"| {on.n} | {ratio(off.schemas_ready, on.schemas_ready)} | "
                  f"{ratio(off.pods_ready, on.pods_ready)} | "
                  f"{ratio(off.cpu_percent, on.cpu_percent)} | "
                  f"{ratio(off.operator_requests, on.operator_requests)} | "
                  f"{ratio(off.server_requests, on.server_requests)} | "
                  f"{ratio(db_off, db_on)} | {ratio(off.rss_mib, on.rss_mib)} | "
                  f"{ratio(off.flip, on.flip)} |")
    targets = [r for r in rows if r.n == 1000 and r.mode == "ours"]
    for r in targets:
        db = max(r.db_connections.values())
        checks = [("all schemas Ready within 60 s", r.schemas_ready is not None
                   and r.schemas_ready <= 60),
                  ("idle CPU <= 5 %", r.cpu_percent <= 5),
                  ("<= 60 operator API requests per idle minute", r.operator_requests <= 60),
                  ("<= 1 DB connection per database per 30 s interval", db <= 2),
                  ("RSS <= 250 MiB", r.peak_mib <= 250),
                  ("flip <= 1 s", r.flip is not None and r.flip <= 1)]
        print("\ntargets at N=1000: " + "; ".join(
            f"{what}: {'met' if ok else 'MISSED'}" for what, ok in checks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--baseline", type=Path, default=None,
                        help="a checkout of the code to compare against (its operator/)")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds measured at idle")
    parser.add_argument("--flips", type=int, default=3, help="flips measured (the median)")
    args = parser.parse_args()
    # A `timeout` or Ctrl-C still stops the operator and, if this run started it, the
    # cluster: the machine has one node, and others wait for it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    was_up = local_cluster.is_up(ROOT)
    try:
        measure_all(args)
    finally:
        if not was_up:
            local_cluster.down(ROOT)


def measure_all(args: argparse.Namespace) -> None:
    c = local_cluster.ensure_up(ROOT)
    rows = []
    with local_postgres.running(pod_host=c.host_address,
                                pod_networks=local_node.CLIENT_NETWORKS) as pg:
        bench = Bench(c, pg)
        c.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
        for leftover in [n.metadata.name for n in bench.core.list_namespace().items
                         if n.metadata.name.startswith("scale-")]:
            try:
                bench.delete_namespaces([leftover])
            except ApiException:
                pass
        databases = bench.databases()
        server_baseline = baseline(bench, 60)
        print(f"API server, no operator: {server_baseline:.0f} requests a minute", flush=True)
        for n in args.sizes:
            for mode, code in (("ours", None), ("baseline", args.baseline)):
                if mode == "baseline" and code is None:
                    continue
                rows.append(run_one(bench, n, mode, databases, args.idle, server_baseline,
                                    args.flips, code))
    report(rows, server_baseline)


if __name__ == "__main__":
    main()
