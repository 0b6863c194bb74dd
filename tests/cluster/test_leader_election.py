"""Two operator processes, one Lease: only the holder acts; SIGKILL of the leader hands
over; a leader that loses the Lease ends itself; a stopped one hands it over at once."""

from __future__ import annotations

import json
import re
from pathlib import Path

from localenv import operator as local_operator
from localenv.cluster import Cluster
from tests.cluster.scenario import Backend, Database, checks
from tests.support.wait import wait_for

LEASE = "schemagate-leader"


def start(cluster: Cluster, namespace: str, log: Path) -> local_operator.OperatorProcess:
    return local_operator.start(cluster.kubeconfig, [namespace], log, extra_args=[
        "--leader-election", "--leader-election-namespace", namespace,
        "--leader-election-id", LEASE])


def leading(process: local_operator.OperatorProcess) -> bool | None:
    match = re.search(r"^schemagate_leader (\S+)$", process.metrics(), re.MULTILINE)
    return None if match is None else float(match.group(1)) == 1.0


def lease(backend: Backend) -> dict[str, object]:
    spec: dict[str, object] = json.loads(backend.kubectl("get", "lease", LEASE, "-o",
                                                         "json"))["spec"]
    return spec


def pods_open(backend: Backend, n: int) -> bool:
    return backend.gate_states() == ["True"] * n


def test_only_the_leader_acts_and_sigkill_hands_over(
        cluster: Cluster, backend: Backend, db: Database, tmp_path: Path) -> None:
    first = start(cluster, backend.namespace, tmp_path / "first.log")
    second: local_operator.OperatorProcess | None = None
    try:
        wait_for("the first replica leading", lambda: leading(first))
        second = start(cluster, backend.namespace, tmp_path / "second.log")
        assert leading(second) is False
        backend.secret(db.url())
        db.migrate()
        backend.deployment(replicas=1)
        backend.schema()
        backend.wait_reason("Verified")
        wait_for("the first pod open", lambda: pods_open(backend, 1))
        assert checks(first.metrics()) > 0
        assert checks(second.metrics()) == 0, "a standby checks nothing and writes nothing"
        assert leading(second) is False
        assert "standing by" in (tmp_path / "second.log").read_text()

        first.stop(kill=True)  # SIGKILL: the Lease is not released, it must expire
        backend.kubectl("scale", "deployment/backend", "--replicas=2")
        wait_for("the second replica leading", lambda: leading(second), timeout=60)
        wait_for("the new gated pod open", lambda: pods_open(backend, 2), timeout=60)
        assert checks(second.metrics()) > 0
        assert int(str(lease(backend)["leaseTransitions"])) >= 1
    finally:
        cluster.kubectl("-n", backend.namespace, "delete", "dbschema", "--all",
                        "--timeout=30s")
        for process in (first, second):
            if process is not None:
                process.stop()


def test_a_leader_that_loses_its_lease_exits_and_a_stopped_one_hands_over(
        cluster: Cluster, backend: Backend, tmp_path: Path) -> None:
    first = start(cluster, backend.namespace, tmp_path / "first.log")
    second: local_operator.OperatorProcess | None = None
    try:
        wait_for("the first replica leading", lambda: leading(first))
        second = start(cluster, backend.namespace, tmp_path / "second.log")
        # Someone else takes the Lease (a split brain, a clock gone wrong): the leader
        # must stop acting, and it does so by ending its process.
        backend.kubectl("patch", "lease", LEASE, "--type=merge",
                        "-p", '{"spec": {"holderIdentity": "someone-else"}}')
        wait_for("the first replica gone", lambda: first.process.poll() is not None)
        assert first.process.returncode == 75
        assert "leadership lost" in (tmp_path / "first.log").read_text()

        wait_for("the second replica leading", lambda: leading(second), timeout=60)
        second.stop()  # SIGTERM: a clean stop releases the Lease for the next replica
        assert second.process.returncode == 0
        assert not lease(backend).get("holderIdentity")
        assert "released the Lease" in (tmp_path / "second.log").read_text()
    finally:
        for process in (first, second):
            if process is not None:
                process.stop(kill=True)
