"""Fixtures shared by the tiers. `postgres` is a real server, never a mock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from localenv import node as local_node
from localenv import postgres as local_postgres


def _uses_cluster(item: pytest.Item) -> bool:
    return "cluster" in getattr(item, "fixturenames", ())


@pytest.fixture(scope="session")
def postgres(request: pytest.FixtureRequest) -> Iterator[local_postgres.LocalPostgres]:
    """One embedded PostgreSQL for the session, on 127.0.0.1 with password auth; when the
    session has cluster tests, also on the cluster's host address, where pods reach it
    (the cluster comes up first, so that address exists)."""
    if any(_uses_cluster(item) for item in request.session.items):
        cluster = request.getfixturevalue("cluster")
        with local_postgres.running(pod_host=cluster.host_address,
                                    pod_networks=local_node.CLIENT_NETWORKS) as server:
            yield server
    else:
        with local_postgres.running() as server:
            yield server


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
