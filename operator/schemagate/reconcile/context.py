"""What a pass works with: the API, the registry, metrics, Events and the clock."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemagate import kube
from schemagate.metrics import Metrics
from schemagate.reconcile.registry import Registry

JSON = Mapping[str, Any]

#: Posts a Kubernetes Event about the object: (body, reason, message, warning).
Announce = Callable[[JSON, str, str, bool], None]


@dataclass
class Context:
    kube: kube.Kube
    registry: Registry
    metrics: Metrics
    announce: Announce
    #: The operator's own image (--verify-image): what `run: Alembic` Jobs run.
    verify_image: str | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
