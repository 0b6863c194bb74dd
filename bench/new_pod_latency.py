"""What does freshness add to the time until a new pod opens?

A pod's gate opens only on a check that started after the pod existed (and, for the
first pods of a new release that name no revision, 2 s after it: the DatabaseSchema
applied with them may land after them). On the local control plane and an embedded
PostgreSQL, with a verified DatabaseSchema, this times from the create of a gated pod
to its gate condition True (a watch on the pod, not polling), for:

- a scale-up: a pod of the template already open (freshness alone);
- a new release: a pod of a template no open pod has, naming no revision (the settle);
- a new release naming its revision (schemagate.io/revision): freshness alone;

and, as the baseline, the operator of `--baseline DIR` (a checkout of the code before
freshness, e.g. `git archive d9d0672 | tar -x -C DIR`), which answered from the last
verdict. Prints the median and the maximum of `--reps` pods of each kind.
Run: `.venv/bin/python bench/new_pod_latency.py [--reps 10] [--baseline DIR]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from pathlib import Path

from kubernetes import client, watch
from kubernetes.config import kube_config

from bench.gate_latency import CREATE, TABLES, Bench
from localenv import cluster as local_cluster
from localenv import node as local_node
from localenv import operator as local_operator
from localenv import postgres as local_postgres

ROOT = Path(__file__).resolve().parents[1]
GATE = "schemagate.io/schema"


def pod(template: str, revision: str | None) -> dict[str, object]:
    metadata: dict[str, object] = {"name": f"p-{uuid.uuid4().hex[:8]}",
                                   "labels": {"app": "backend", "pod-template-hash": template}}
    if revision:
        metadata["annotations"] = {"schemagate.io/revision": revision}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
            "spec": {"readinessGates": [{"conditionType": GATE}],
                     "containers": [{"name": "app", "image": "schemagate/backend:dev",
                                     "command": ["sleep", "infinity"]}]}}


def time_to_open(core: client.CoreV1Api, namespace: str, manifest: dict[str, object]) -> float:
    name = str(manifest["metadata"]["name"])  # type: ignore[index]
    stream = watch.Watch()
    started = time.monotonic()
    core.create_namespaced_pod(namespace, manifest)
    for event in stream.stream(core.list_namespaced_pod, namespace,
                               field_selector=f"metadata.name={name}", timeout_seconds=60):
        conditions = event["object"].status.conditions or []
        if any(c.type == GATE and c.status == "True" for c in conditions):
            stream.stop()
            return time.monotonic() - started
    raise SystemExit(f"bench: pod {name} never opened")


def run_kind(core: client.CoreV1Api, namespace: str, reps: int, template: str | None,
             revision: str | None) -> list[float]:
    times = []
    for _ in range(reps):
        manifest = pod(template or uuid.uuid4().hex[:10], revision)
        times.append(time_to_open(core, namespace, manifest))
        core.delete_namespaced_pod(str(manifest["metadata"]["name"]),  # type: ignore[index]
                                   namespace, grace_period_seconds=0)
        time.sleep(0.3)  # let the pod's own events settle between runs
    return times


def run(reps: int, baseline: Path | None) -> None:
    c = local_cluster.ensure_up(ROOT)
    core = client.CoreV1Api(kube_config.new_client_from_config(config_file=str(c.kubeconfig)))
    results: list[tuple[str, list[float]]] = []
    with local_postgres.running(pod_host=c.host_address,
                                pod_networks=local_node.CLIENT_NETWORKS) as pg:
        bench = Bench(c, pg)
        c.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
        for label, code in (("this branch", None), ("baseline", baseline)):
            if label == "baseline" and code is None:
                continue
            namespace, db = f"bench-newpod-{'base' if code else 'ours'}", "bench_newpod"
            bench.namespace(namespace)
            bench.fresh_database(db)
            bench.sql(db, CREATE)
            bench.apply(namespace, {"apiVersion": "v1", "kind": "Secret",
                                    "metadata": {"name": "db"},
                                    "stringData": {"url": pg.pod_url(database=db)}},
                        {"apiVersion": "schemagate.io/v1alpha1", "kind": "DatabaseSchema",
                         "metadata": {"name": "schema"},
                         "spec": {"database": {"urlSecretRef": {"name": "db", "key": "url"}},
                                  "tables": list(TABLES), "verifyIntervalSeconds": 30}})
            saved = os.environ.get("PYTHONPATH")
            if code is not None:
                os.environ["PYTHONPATH"] = str(code / "operator")
            try:
                op = local_operator.start(c.kubeconfig, [namespace], ROOT / ".cluster" /
                                          "logs" / f"bench-newpod-{namespace}.log")
            finally:
                if saved is None:
                    os.environ.pop("PYTHONPATH", None)
                else:
                    os.environ["PYTHONPATH"] = saved
            try:
                time_to_open(core, namespace, pod("seed", None))  # the open template
                results.append((f"{label}: scale-up", run_kind(core, namespace, reps, "seed",
                                                              None)))
                results.append((f"{label}: new release",
                                run_kind(core, namespace, reps, None, None)))
                results.append((f"{label}: new release, revision named",
                                run_kind(core, namespace, reps, None, "3f2a9c")))
            finally:
                c.kubectl("-n", namespace, "delete", "dbschema", "--all", "--timeout=60s")
                op.stop()
                c.kubectl("delete", "namespace", namespace, "--wait=false")
    print(f"\ncreate -> gate condition True, {reps} pods each (seconds)")
    print(f"{'':40} {'median':>7} {'max':>7}")
    for label, times in results:
        print(f"{label:40} {statistics.median(times):>7.3f} {max(times):>7.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--baseline", type=Path, default=None)
    args = parser.parse_args()
    run(args.reps, args.baseline)


if __name__ == "__main__":
    main()
