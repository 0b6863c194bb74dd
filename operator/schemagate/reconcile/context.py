"""What a pass works with: the API, the database pool, the registry, the pod index, the
shared database passes, metrics, Events and the clock."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from schemagate.bulkhead import Bulkheads
from schemagate.core.gate.pods import IndexedPod, Key
from schemagate.core.tenancy.allowed_hosts import AllowedHosts
from schemagate.metrics import Metrics
from schemagate.reconcile.author_rights import AuthorRights
from schemagate.reconcile.batch import Batches
from schemagate.reconcile.edge import KubeEdge
from schemagate.reconcile.liveness import Progress
from schemagate.reconcile.registry import Registry
from schemagate.reconcile.schedule import Backoff
from schemagate.reconcile.verify_in_pod import VerifyPods

JSON = Mapping[str, Any]

#: Posts a Kubernetes Event about the object: (body, reason, message, warning).
Announce = Callable[[JSON, str, str, bool], None]
#: The pod watch's index (`core.gate.pods`): live, read on the event loop only.
PodIndex = Mapping[Key, Collection[IndexedPod]]


@dataclass
class Context:
    kube: KubeEdge
    registry: Registry
    metrics: Metrics
    announce: Announce
    #: The operator's own image (--verify-image): what `run: Alembic` Jobs and the verify
    #: pods of `verifyFrom: Pod` run.
    verify_image: str | None = None
    #: The verify pods this process created (the only ones it trusts), and their turns.
    verify_pods: VerifyPods = field(default_factory=VerifyPods)
    #: Where database work runs: a pool of our own, bounded per server and per namespace.
    databases: Bulkheads = field(default_factory=Bulkheads)
    #: Passes in flight, for the liveness probe.
    progress: Progress = field(default_factory=Progress)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    #: The pod watch's index: the pods of each schema, without a LIST per check.
    pods: PodIndex = field(default_factory=dict)
    #: Secret values may be kept between checks: a watch on Secrets tells when one changes.
    keep_secrets: bool = False
    batches: Batches = field(default_factory=Batches)
    #: The database hosts each namespace's URLs may name (--allowed-hosts-file).
    allowed_hosts: AllowedHosts = field(default_factory=AllowedHosts)
    #: The wait after credentials are refused (the unit tests shorten it).
    backoff: Backoff = field(default_factory=Backoff)
    #: Whether the API server checks the rights of who writes a DatabaseSchema before a
    #: Job or a pod runs with the operator's (default: told it does not, no lookup).
    author_rights: AuthorRights = field(default_factory=lambda: AuthorRights(None))

    def __post_init__(self) -> None:
        if self.batches.databases is None:  # the shared passes run in the bulkheads too
            self.batches.databases = self.databases
