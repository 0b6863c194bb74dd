"""Kopf handlers: each a guard and a one-line delegation (STYLE.md practice 2).

The only module that imports Kopf. Blocking work happens in `reconciler`, in threads.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from schemagate import kube, reconciler
from schemagate.core import gate, models
from schemagate.metrics import Metrics
from schemagate.settings import Settings

RESOURCE = (models.GROUP, models.VERSION, models.PLURAL)


def _ctx(memo: Any) -> reconciler.Context:
    context: reconciler.Context = memo["context"]
    return context


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    # Our status is ours alone: Kopf keeps its bookkeeping in annotations.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=models.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=models.GROUP, key="last-handled-configuration")
    settings.persistence.finalizer = f"{models.GROUP}/finalizer"
    settings.posting.level = logging.INFO  # INFO is for transitions only; each becomes an Event
    settings.watching.server_timeout = 60
    settings.networking.request_timeout = 30
    operator_settings: Settings = memo["settings"]
    metrics = Metrics()
    if operator_settings.metrics_port is not None:
        metrics.serve(operator_settings.metrics_port)
    memo["context"] = reconciler.Context(
        kube=kube.Kube(kube.connect(operator_settings.kubeconfig)),
        registry=reconciler.Registry(), metrics=metrics)


@kopf.daemon(*RESOURCE, cancellation_timeout=5.0)
async def keep_verified(body: kopf.Body, stopped: kopf.DaemonStopped, memo: Any,
                        logger: kopf.Logger, **_: Any) -> None:
    await reconciler.keep_verified(body, stopped, _ctx(memo), logger)


@kopf.on.update(*RESOURCE, field="spec")
def spec_changed(namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    _ctx(memo).registry.wake((namespace or "", name))


@kopf.on.event("", "v1", "secrets")
def secret_changed(namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    _ctx(memo).registry.wake_users_of_secret(namespace or "", name)


def _carries_a_gate(spec: kopf.Spec, **_: Any) -> bool:
    return bool(gate.schema_names_gating(spec.get("readinessGates") or ()))


@kopf.on.event("", "v1", "pods", when=_carries_a_gate)
async def pod_changed(type: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    if type != "DELETED" and not body.metadata.get("deletionTimestamp"):
        await reconciler.gate_new_pod(body, _ctx(memo))


@kopf.on.delete(*RESOURCE)
async def release_gates(body: kopf.Body, memo: Any, logger: kopf.Logger,
                        **_: Any) -> None:
    released = await reconciler.release(body, _ctx(memo))
    _ctx(memo).metrics.forget(body.metadata.namespace or "", body.metadata.name or "")
    logger.info("%s: released the gate of %d pod(s)", gate.GATE_RELEASED, released)


def run(settings: Settings) -> None:
    kopf.run(
        standalone=True,
        clusterwide=settings.all_namespaces,
        namespaces=settings.namespaces,
        liveness_endpoint=settings.liveness_endpoint,
        memo=kopf.Memo(settings=settings),
    )
