"""Outages of the API server with etcd, and of PostgreSQL, for 30 s each: the operator
rides them out, fails closed while it cannot know, and converges once they are back."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from localenv import cluster as local_cluster
from localenv import node as local_node
from localenv import postgres as local_postgres
from localenv.cluster import Cluster
from tests.chaos.conftest import Backend, Database, Operator, healthy
from tests.cluster.scenario import TABLES, after_checks
from tests.support.wait import wait_for

OUTAGE = 30.0


def test_the_api_server_and_etcd_away_for_30_s(
        cluster: Cluster, backend: Backend, db: Database, chaos_operator: Operator) -> None:
    healthy(backend, db, TABLES)
    chaos_operator.start()
    backend.schema()
    backend.deployment(replicas=1)
    wait_for("the gate before the outage", lambda: backend.gate_states() == ["True"],
             timeout=60)

    local_cluster.stop_apiserver(cluster.root)
    local_cluster.stop_etcd(cluster.root)
    try:
        db.execute("DROP TABLE subscriptions")  # what happens meanwhile must not be lost
        time.sleep(OUTAGE)
        assert chaos_operator.process is not None
        assert chaos_operator.process.process.poll() is None, "the operator died"
        assert chaos_operator.healthz() == 200
    finally:
        local_cluster.start_etcd(cluster.root)
        local_cluster.start_apiserver(cluster.root)
    back = time.monotonic()
    wait_for("the API server", lambda: cluster.kubectl("get", "--raw", "/readyz")
             .stdout.strip() == "ok", timeout=60)

    condition = backend.wait_reason("StampedButMissing", timeout=60)
    assert "subscriptions" in condition["message"]
    converged = time.monotonic() - back
    assert converged < 45, f"the status caught up {converged:.0f} s after the outage"
    # The open pod holds (onDrift: Hold); a new one stays closed.
    backend.kubectl("scale", "deployment/backend", "--replicas=2")
    # The ReplicaSet controller's own watches come back after the outage too: once it
    # took more than 60 s to create the pod on the loaded CI machine.
    wait_for("the second pod", lambda: len(backend.pods()) == 2, timeout=150)
    wait_for("the new pod's gate, closed", lambda: sorted(backend.gate_states())
             == ["False", "True"], timeout=30)
    assert "HTTP response headers" not in chaos_operator.log()


@pytest.fixture
def own_postgres(cluster: Cluster) -> Iterator[local_postgres.LocalPostgres]:
    """A PostgreSQL of the test's own, which it may stop and start again; at the
    cluster's host address too (a loopback URL is refused)."""
    with local_postgres.running(pod_host=cluster.host_address,
                                pod_networks=local_node.CLIENT_NETWORKS) as server:
        yield server


def test_postgresql_away_for_30_s(backend: Backend, own_postgres: local_postgres.LocalPostgres,
                                  chaos_operator: Operator) -> None:
    db = Database(own_postgres)
    for table in TABLES:
        db.execute(f"CREATE TABLE {table} (id int)")
        db.execute(f'ALTER TABLE {table} OWNER TO "{db.user}"')
    db.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
    db.execute(f'ALTER TABLE alembic_version OWNER TO "{db.user}"')
    db.execute("INSERT INTO alembic_version VALUES ('3f2a9c')")
    backend.secret(own_postgres.pod_url(database=db.name, user=db.user, password=db.password))
    chaos_operator.start()
    backend.schema()
    backend.deployment(replicas=1)
    wait_for("the gate before the outage", lambda: backend.gate_states() == ["True"],
             timeout=60)

    local_postgres.stop(own_postgres)
    stopped = time.monotonic()
    try:
        condition = backend.wait_reason("DatabaseUnreachable", timeout=20)
        assert time.monotonic() - stopped < 12
        assert db.password not in condition["message"]
        backend.kubectl("scale", "deployment/backend", "--replicas=2")
        wait_for("the second pod", lambda: len(backend.pods()) == 2, timeout=60)
        assert chaos_operator.process is not None
        after_checks(chaos_operator.process.metrics, 2)  # a whole check with the second pod
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - stopped)))  # the outage's length
        assert sorted(backend.gate_states()) == ["False", "True"], \
            "a pod created while the database is away must stay closed"
    finally:
        local_postgres.start(own_postgres.pgdata, port=own_postgres.port,
                             pod_host=own_postgres.pod_host,
                             pod_networks=local_node.CLIENT_NETWORKS)
    back = time.monotonic()
    wait_for("both gates after the outage", lambda: backend.gate_states() == ["True", "True"],
             timeout=30)
    assert backend.condition()["reason"] == "Verified"
    assert time.monotonic() - back < 15
