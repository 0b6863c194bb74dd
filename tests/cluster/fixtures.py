"""Fixtures for the tier that needs a real Kubernetes API server.

`cluster` reuses the local control plane of `make cluster-up` when it runs, or
starts one for the session and stops it at the end (SCHEMAGATE_KEEP_CLUSTER=1
keeps it; SCHEMAGATE_CLUSTER_ROOT=DIR uses DIR/.cluster instead of the
repository's). `kube` gives the client's API objects, logged in as the cluster's
admin; `namespace` gives each test a namespace of its own, deleted afterwards.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.config import kube_config

from localenv import cluster as local_cluster
from tests.support.wait import wait_for

# The cluster roots this session started (so a test may stop them; see test_node_cycles).
STARTED_BY_SESSION: dict[str, bool] = {}
STRATEGIC_MERGE = "application/strategic-merge-patch+json"


@dataclass(frozen=True)
class Kube:
    api_client: client.ApiClient
    core: client.CoreV1Api
    apps: client.AppsV1Api
    batch: client.BatchV1Api
    custom: client.CustomObjectsApi
    apiextensions: client.ApiextensionsV1Api


@pytest.fixture(scope="session")
def cluster(repo_root: Path) -> Iterator[local_cluster.Cluster]:
    # SCHEMAGATE_CLUSTER_ROOT: a directory whose .cluster/ to use instead of the
    # repository's, e.g. to keep the tests off a cluster someone is using.
    root = Path(os.environ.get("SCHEMAGATE_CLUSTER_ROOT") or repo_root)
    # Anything already running was started by someone else, who stops it.
    started_here = not any(local_cluster.status(root).values())
    running = local_cluster.ensure_up(root)
    STARTED_BY_SESSION[str(root.resolve())] = started_here
    yield running
    if started_here and not os.environ.get("SCHEMAGATE_KEEP_CLUSTER"):
        local_cluster.down(root)


@pytest.fixture(scope="session")
def kube(cluster: local_cluster.Cluster) -> Kube:
    api = kube_config.new_client_from_config(config_file=str(cluster.kubeconfig))
    return Kube(api_client=api, core=client.CoreV1Api(api), apps=client.AppsV1Api(api),
                batch=client.BatchV1Api(api), custom=client.CustomObjectsApi(api),
                apiextensions=client.ApiextensionsV1Api(api))


@pytest.fixture
def namespace(kube: Kube, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named after the test, ready for pods (its `default`
    ServiceAccount exists), deleted after the test."""
    stem = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{stem}-{secrets.token_hex(3)}"
    kube.core.create_namespace({"metadata": {"name": name,
                                             "labels": {"schemagate.io/test": "true"}}})
    wait_for(f"the default ServiceAccount of namespace {name}",
             lambda: kube.core.read_namespaced_service_account("default", name), timeout=30)
    yield name
    try:
        kube.core.delete_namespace(name)
    except ApiException as error:
        if error.status != 404:
            raise
