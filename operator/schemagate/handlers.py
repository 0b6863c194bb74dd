"""Kopf handlers: each a guard and a one-line delegation (STYLE.md practice 2).

The only module that imports Kopf. Blocking work happens in `reconcile`, in threads.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import sys
from typing import Any, cast

import kopf

from schemagate import kube, leader, reconcile
from schemagate.core import gate, migration_job, models
from schemagate.core.scrub import Scrubber, ScrubbingFilter
from schemagate.metrics import Metrics
from schemagate.settings import Settings

RESOURCE = (models.GROUP, models.VERSION, models.PLURAL)


def _ctx(memo: Any) -> reconcile.Context:
    context: reconcile.Context = memo["context"]
    return context


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    # Our status is ours alone: Kopf keeps its bookkeeping in annotations.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=models.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=models.GROUP, key="last-handled-configuration")
    settings.persistence.finalizer = f"{models.GROUP}/finalizer"
    settings.posting.level = logging.INFO  # our Events: one per transition (reconcile.announce)
    settings.watching.server_timeout = 60
    settings.networking.request_timeout = 30
    operator_settings: Settings = memo["settings"]
    metrics: Metrics = memo["metrics"]
    scrubber: Scrubber = memo["scrubber"]

    def announce(body: Any, reason: str, message: str, warning: bool) -> None:
        (kopf.warn if warning else kopf.info)(body, reason=reason,
                                              message=scrubber.scrub(message))

    memo["context"] = reconcile.Context(
        kube=kube.Kube(kube.connect(operator_settings.kubeconfig), scrubber),
        registry=reconcile.Registry(), metrics=metrics, announce=announce,
        verify_image=operator_settings.verify_image)


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    # In a pod: the service account. Elsewhere: KUBECONFIG, which `run` set from
    # --kubeconfig (the client library's own default was fixed at its import).
    in_pod = kopf.login_with_service_account(**kwargs)
    if in_pod is None:
        return kopf.login_with_kubeconfig(**kwargs)
    # Kopf names the API server `kubernetes.default.svc`, which needs the cluster's DNS;
    # the kubelet gives every pod its address, which is what client-go and the
    # client library use: no resolver stands between the operator and the API.
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get(
        "KUBERNETES_SERVICE_PORT")
    if host and port:
        server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
        return dataclasses.replace(in_pod, server=server)
    return in_pod


@kopf.daemon(*RESOURCE, cancellation_timeout=5.0)
async def keep_verified(body: kopf.Body, stopped: kopf.DaemonStopped, memo: Any,
                        logger: kopf.Logger, **_: Any) -> None:
    await reconcile.keep_verified(body, stopped, _ctx(memo), logger)


@kopf.on.event(*RESOURCE)
def schema_changed(body: kopf.Body, memo: Any, **_: Any) -> None:
    meta = body.metadata
    rerun = meta.annotations.get(migration_job.RERUN_ANNOTATION)
    _ctx(memo).registry.notice((meta.namespace or "", meta.name or ""),
                               (meta.get("generation"), rerun))


# Registered in `run` unless --no-watch-secrets: without it the chart grants `get` only.
def secret_changed(namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    _ctx(memo).registry.wake_users_of("Secret", namespace or "", name)


@kopf.on.event("", "v1", "configmaps")
def config_map_changed(namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    _ctx(memo).registry.wake_users_of("ConfigMap", namespace or "", name)


def _carries_a_gate(spec: kopf.Spec, **_: Any) -> bool:
    return bool(gate.schema_names_gating(spec.get("readinessGates") or ()))


@kopf.on.event("", "v1", "pods", when=_carries_a_gate)
async def pod_changed(type: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    if type == "DELETED":
        _ctx(memo).registry.pod_gone(body.metadata.uid or "")
    elif not body.metadata.get("deletionTimestamp"):
        await reconcile.gate_new_pod(body, _ctx(memo))


@kopf.on.delete(*RESOURCE)
async def release_gates(body: kopf.Body, memo: Any, logger: kopf.Logger,
                        **_: Any) -> None:
    released = await reconcile.release(body, _ctx(memo))
    _ctx(memo).metrics.forget(body.metadata.namespace or "", body.metadata.name or "")
    message = f"released the gate of {released} pod(s): the DatabaseSchema is being deleted"
    logger.info("%s", message)
    kopf.info(body, reason=gate.GATE_RELEASED, message=message)


class _CloudSeverity(logging.Filter):
    """`severity` in the words Cloud Logging reads (WARNING, not Kopf's "warn")."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.severity = record.levelname
        return True


class _QuietWatchers(logging.Filter):
    """Kopf reports every successful event handler at INFO; for pods and Secrets that is
    one line per watch event. INFO is for transitions, so these go down to DEBUG."""

    _chatty = tuple(f"Handler '{name}' succeeded"
                    for name in ("pod_changed", "secret_changed", "schema_changed",
                                 "config_map_changed"))

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and record.getMessage().startswith(self._chatty):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def run(settings: Settings) -> None:
    if settings.kubeconfig:
        # Kopf's own login reads KUBECONFIG; our client is given the same file explicitly.
        os.environ["KUBECONFIG"] = settings.kubeconfig
    if settings.log_format == "json":
        kopf.configure(verbose=settings.verbose, log_format=kopf.LogFormat.JSON)
        for handler in logging.getLogger().handlers:
            handler.addFilter(_CloudSeverity())
    else:
        kopf.configure(verbose=settings.verbose)
    logging.getLogger("kopf.objects").addFilter(_QuietWatchers())
    if settings.watch_secrets:
        kopf.on.event("", "v1", "secrets")(secret_changed)
    # Every secret the operator reads is learnt by one scrubber; every log record passes
    # it, on Kopf's object logger before it becomes an Event, and at every root handler.
    scrubber = Scrubber()
    scrubbing = ScrubbingFilter(scrubber)
    logging.getLogger("kopf.objects").addFilter(scrubbing)
    for handler in logging.getLogger().handlers:
        handler.addFilter(scrubbing)
    # Alembic announces its context at INFO on every read of the version table.
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
    metrics = Metrics()
    if settings.metrics_port is not None:
        metrics.serve(settings.metrics_port)  # a standby is scraped too (schemagate_leader 0)
    elector = None
    if settings.lease is not None:
        elector = leader.Elector(kube.Kube(kube.connect(settings.kubeconfig), scrubber),
                                 settings.lease, on_leading=metrics.leading)
        metrics.leading(False)
        # Until Kopf installs its own handler, SIGTERM ends a standby cleanly and lets a
        # fresh leader release the Lease on its way out.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        if elector is not None:
            with leader.standby_liveness(settings.liveness_port):
                elector.acquire()
            elector.keep()
        kopf.run(
            # Kopf's default identity asks the passwd database for the user's name, which
            # an image running as a bare numeric UID (ours: 10001) does not have.
            identity=cast(Any, f"schemagate@{socket.gethostname()}"),  # kopf's NewType of str
            standalone=True,
            clusterwide=settings.all_namespaces,
            namespaces=settings.namespaces,
            liveness_endpoint=settings.liveness_endpoint,
            memo=kopf.Memo(settings=settings, metrics=metrics, scrubber=scrubber),
        )
    finally:
        if elector is not None:
            elector.release()
