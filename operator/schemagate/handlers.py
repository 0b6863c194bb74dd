"""Kopf handlers: each a guard and a one-line delegation.

The only module that imports Kopf. Blocking work happens in `reconcile`, in threads.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import os
import signal
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import kopf

from schemagate import kube, leader, process, reconcile
from schemagate.core.clone.consent import CLONE_FOR
from schemagate.core.gate import readiness as gate
from schemagate.core.gate.pods import index_entries
from schemagate.core.migration import job as migration_job
from schemagate.core.tenancy.scrub import PATTERNS, Scrubber, Scrubbers, ScrubbingFilter
from schemagate.core.verify_pod.manifest import VERIFY_LABEL
from schemagate.core.wire import models
from schemagate.metrics import Metrics
from schemagate.settings import Settings

RESOURCE = (models.GROUP, models.VERSION, models.PLURAL)


def _ctx(memo: Any) -> reconcile.Context:
    context: reconcile.Context = memo["context"]
    return context


#: Threads for API calls (`asyncio.to_thread`, the loop's default executor): a pool of our
#: own, sized on purpose; database work has its own (`bulkhead.Bulkheads`).
API_WORKERS = 16
#: After SIGTERM, the seconds in-flight work has to end before the process exits anyway.
STOP_GRACE = 7.0
#: How long the liveness probe gives the API pool to run a no-op (the chart's probe
#: waits 5 s, and restarts after three failures 20 s apart).
PROBE_TIMEOUT = 3.0


class DigestDiffBase(kopf.AnnotationsDiffBaseStorage):
    """Kopf's last-handled configuration, with the spec as a digest: the whole spec of the
    largest DatabaseSchema the CRD admits (10,000 tables) would pass the 256 KiB limit of
    all annotations, and the finalizer could then never be removed. We register no
    on.update handler that reads a diff; the digest still tells one spec from another."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> Any:
        essence = dict(super().build(body=body, extra_fields=extra_fields))
        if "spec" in essence:
            text = json.dumps(essence["spec"], sort_keys=True, separators=(",", ":"))
            essence["spec"] = {"sha256": hashlib.sha256(text.encode()).hexdigest()}
        return essence


@kopf.index("", "v1", "pods")
async def gated_pods(body: kopf.Body, **_: Any) -> dict[Any, Any]:
    """The pods by the schemas they name (`core.gate.pods`). Kopf starts no other handler
    before this index holds every pod its first LIST returned, so no first check sees a
    half-filled index; async, so 3,000 pods cost no thread hops."""
    return index_entries(body)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: Any, **kwargs: Any) -> None:
    # Our status is ours alone: Kopf keeps its bookkeeping in annotations.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=models.GROUP)
    settings.persistence.diffbase_storage = DigestDiffBase(
        prefix=models.GROUP, key="last-handled-configuration")
    settings.persistence.finalizer = f"{models.GROUP}/finalizer"
    # SIGTERM: whatever is still in flight after the grace, the process goes (SIGKILL).
    settings.process.ultimate_exiting_timeout = STOP_GRACE
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=API_WORKERS, thread_name_prefix="schemagate-api"))
    settings.posting.level = logging.INFO  # our Events: one per transition (reconcile.announce)
    settings.watching.server_timeout = 60
    settings.networking.request_timeout = 30
    operator_settings: Settings = memo["settings"]
    metrics: Metrics = memo["metrics"]
    scrubbers: Scrubbers = memo["scrubbers"]

    def announce(body: Any, reason: str, message: str, warning: bool) -> None:
        meta = body["metadata"]
        scrubber = scrubbers.of((meta["namespace"], meta["name"]))
        (kopf.warn if warning else kopf.info)(body, reason=reason,
                                              message=scrubber.message(message))

    api: kube.Kube = memo["kube"]
    memo["context"] = reconcile.Context(
        kube=api, registry=reconcile.Registry(scrubbers=scrubbers), metrics=metrics,
        announce=announce,
        verify_image=operator_settings.verify_image,
        pods=kwargs["gated_pods"],  # the live index
        keep_secrets=operator_settings.watch_secrets,
        allowed_hosts=operator_settings.allowed_hosts,
        author_rights=reconcile.AuthorRights(operator_settings.author_rights_binding,
                                             memo["kube"].admission_policy_binding))
    if operator_settings.author_rights_binding is None:
        logging.getLogger(__name__).warning(
            "--no-author-rights: run: Job, run: Alembic and verifyFrom: Pod run for whoever "
            "may write a DatabaseSchema; only a Deployment's schemagate.io/clone-for "
            "annotation limits what they clone")


@kopf.on.probe(id="progress")
async def progress(memo: Any, **_: Any) -> str:
    """Fails (and /healthz with it) when a pass overran its bound or a pool of threads
    cannot run a no-op: the machinery is wedged, and a restart is the cure."""
    ctx = _ctx(memo)
    overdue = ctx.progress.overdue()
    if overdue:
        raise kopf.PermanentError("no progress: " + "; ".join(overdue[:3]))
    try:
        await asyncio.wait_for(asyncio.to_thread(lambda: None), PROBE_TIMEOUT)
    except TimeoutError:
        raise kopf.PermanentError(f"no progress: the {API_WORKERS} API threads are all busy "
                                  f"for {PROBE_TIMEOUT:g} s") from None
    return f"{ctx.progress.finished_passes} passes, {len(ctx.progress.passes)} in flight"


@kopf.on.cleanup()
def exit_in_time(**_: Any) -> None:
    _exit_after(STOP_GRACE)


def _exit_after(seconds: float) -> None:
    """A thread stuck in a blocking call would hold the interpreter's exit forever (it
    joins every worker thread): end the process after `seconds` whatever still runs."""
    def leave() -> None:
        logging.getLogger(__name__).warning(
            "blocking calls still running %ss after the stop; exiting without them", seconds)
        os._exit(0)

    timer = threading.Timer(seconds, leave)
    timer.daemon = True
    timer.start()


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
async def schema_changed(body: kopf.Body, memo: Any, **_: Any) -> None:
    meta = body.metadata
    rerun = meta.annotations.get(migration_job.RERUN_ANNOTATION)
    _ctx(memo).registry.notice((meta.namespace or "", meta.name or ""),
                               (meta.get("generation"), rerun))


# Registered in `run` unless --no-watch-secrets: without it the chart grants `get` only.
async def secret_changed(namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    _ctx(memo).registry.wake_users_of("Secret", namespace or "", name)


# Async, as every event handler here: Kopf would run a plain function in a thread, and
# the registry is the event loop's alone.
@kopf.on.event("", "v1", "configmaps")
async def config_map_changed(namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    _ctx(memo).registry.wake_users_of("ConfigMap", namespace or "", name)


@kopf.on.event("apps", "v1", "deployments")
def deployment_changed(type: str, namespace: str | None, name: str, body: kopf.Body,
                       memo: Any, **_: Any) -> None:
    # Its generation (the spec) and the consent annotation a clone needs: adding a name
    # to it fixes an InvalidSpec, and moves no generation. Its hash: the value is the
    # tenant's, up to 256 KiB, and kept for every Deployment.
    consent = body.metadata.annotations.get(CLONE_FOR)
    version = None if type == "DELETED" else (body.metadata.get("generation"),
                                              None if consent is None else hash(consent))
    _ctx(memo).registry.deployment_seen(namespace or "", name, version, created=type == "ADDED")


def _carries_a_gate(spec: kopf.Spec, **_: Any) -> bool:
    return bool(gate.schema_names_gating(spec.get("readinessGates") or ()))


@kopf.on.event("", "v1", "pods", when=_carries_a_gate)
async def pod_changed(type: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    if type == "DELETED":
        _ctx(memo).registry.pod_gone(body.metadata.uid or "")
    elif not body.metadata.get("deletionTimestamp"):
        try:
            await reconcile.pod_seen(body, _ctx(memo))
        except kube.ApiError as exc:  # one line, not the client's dump; the loop retries
            raise kopf.TemporaryError(kube.describe(exc), delay=5) from None


@kopf.on.event("", "v1", "pods", labels={VERIFY_LABEL: kopf.PRESENT})
async def verify_pod_changed(body: kopf.Body, memo: Any, **_: Any) -> None:
    # verifyFrom: Pod - the schema's loop looks at its verify pod now, not at its next poll.
    _ctx(memo).registry.wake((body.metadata.namespace or "",
                              body.metadata.labels.get(VERIFY_LABEL, "")))


@kopf.on.delete(*RESOURCE)
async def release_gates(body: kopf.Body, memo: Any, logger: kopf.Logger,
                        **_: Any) -> None:
    await reconcile.release(body, _ctx(memo), logger)
    _ctx(memo).metrics.forget(body.metadata.namespace or "", body.metadata.name or "")


class _CloudSeverity(logging.Filter):
    """`severity` in the words Cloud Logging reads (WARNING, not Kopf's "warn")."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.severity = record.levelname
        return True


class _QuietWatchers(logging.Filter):
    """Kopf reports every successful event handler at INFO; for pods and Secrets that is
    one line per watch event. INFO is for transitions, so these go down to DEBUG."""

    _chatty = tuple(f"Handler '{name}' succeeded"
                    for name in ("pod_changed", "verify_pod_changed", "secret_changed",
                                 "schema_changed", "config_map_changed", "deployment_changed"))

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and record.getMessage().startswith(self._chatty):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def _scrubber_of(record: logging.LogRecord, scrubbers: Scrubbers) -> Scrubber:
    """The scrubber of the DatabaseSchema a record of Kopf's object logger is about;
    other objects' records have no secrets of their own."""
    ref = getattr(record, "k8s_ref", None) or {}
    if ref.get("kind") != models.KIND or not ref.get("namespace") or not ref.get("name"):
        return PATTERNS
    return scrubbers.of((ref["namespace"], ref["name"]))


def run(settings: Settings) -> None:
    process.keep_memory_small()  # before any thread starts
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
    # Each schema's secrets are learnt by its own scrubber; a record Kopf's object logger
    # writes about a schema passes that one before it becomes an Event, and every record
    # passes the patterns at every root handler.
    scrubbers = Scrubbers()
    logging.getLogger("kopf.objects").addFilter(
        ScrubbingFilter(lambda record: _scrubber_of(record, scrubbers)))
    for handler in logging.getLogger().handlers:
        handler.addFilter(ScrubbingFilter())
    # Alembic announces its context at INFO on every read of the version table.
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
    metrics = Metrics()
    # One client, one connection pool, for the whole process (the Lease included).
    api = kube.Kube(kube.connect(settings.kubeconfig, on_request=metrics.api_request))
    if settings.metrics_port is not None:
        metrics.serve(settings.metrics_port)  # a standby is scraped too (schemagate_leader 0)
    elector = None
    if settings.lease is not None:
        elector = leader.Elector(api, settings.lease, on_leading=metrics.leading)
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
            memo=kopf.Memo(settings=settings, metrics=metrics, scrubbers=scrubbers, kube=api),
        )
    finally:
        _exit_after(STOP_GRACE)  # what follows, and the interpreter's exit, in bounded time
        if elector is not None:
            elector.release()
