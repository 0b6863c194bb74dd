"""Fixtures for tests that run the operator as a real process: the CRD installed, a
database of the test's own, a `Backend` view of the namespace, the operator, and a
backend that operator has verified."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from localenv import operator as local_operator
from localenv.cluster import Cluster
from localenv.postgres import LocalPostgres
from tests.cluster.scenario import ROOT, Backend, Database
from tests.support.wait import wait_for

VerifiedBackend = Callable[..., Backend]


@pytest.fixture(scope="session")
def crd(cluster: Cluster) -> None:
    result = cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f",
                             str(ROOT / "crds"))
    assert result.returncode == 0, result.stderr
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=30s",
                    "crd/databaseschemas.schemagate.io")


@pytest.fixture
def db(postgres: LocalPostgres) -> Database:
    return Database(postgres)


@pytest.fixture
def backend(cluster: Cluster, namespace: str, db: Database, crd: None) -> Backend:
    return Backend(cluster, namespace, db)


def start_operator(cluster: Cluster, namespace: str, tmp_path: Path
                   ) -> local_operator.OperatorProcess:
    return local_operator.start(cluster.kubeconfig, [namespace], tmp_path / "operator.log")


def stop_operator(cluster: Cluster, namespace: str,
                  process: local_operator.OperatorProcess) -> None:
    """Delete the namespace's DatabaseSchemas while the operator still runs to remove its
    finalizer; otherwise the namespace would stay Terminating."""
    cluster.kubectl("-n", namespace, "delete", "dbschema", "--all", "--timeout=30s")
    process.stop()


@pytest.fixture
def operator(cluster: Cluster, namespace: str, tmp_path: Path, crd: None
             ) -> Iterator[local_operator.OperatorProcess]:
    process = start_operator(cluster, namespace, tmp_path)
    yield process
    stop_operator(cluster, namespace, process)


@pytest.fixture
def verified_backend(backend: Backend, db: Database,
                     operator: local_operator.OperatorProcess) -> VerifiedBackend:
    """Builds what many tests start from: the real migration applied, the URL's Secret,
    the Deployment (`replicas` pods), then the DatabaseSchema (`spec` over the defaults),
    and waits until the operator has opened every pod's gate."""

    def build(replicas: int = 1, **spec: Any) -> Backend:
        db.migrate()
        backend.secret(db.url())
        backend.deployment(replicas=replicas)
        backend.schema(**spec)
        wait_for(f"the {replicas} gates open", backend.gate_states,
                 lambda gates: gates == ["True"] * replicas, timeout=30)
        return backend

    return build
