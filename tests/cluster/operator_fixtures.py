"""Fixtures for tests that run the operator as a real process: the CRD installed, a
database of the test's own, a `Backend` view of the namespace, and the operator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from localenv import operator as local_operator
from localenv.cluster import Cluster
from localenv.postgres import LocalPostgres
from tests.cluster.scenario import ROOT, Backend, Database


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
