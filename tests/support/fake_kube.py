"""The one fake of the Kubernetes edge (`reconcile.edge.KubeEdge`) for the unit tests: the
API server in memory, as far as a pass, a pod event and a release go. Objects go in
with `add_*`; what the operator did comes out as the objects themselves (a pod's
condition, a schema's status) and the counts a user could see (statuses written,
Events, verify pods created and deleted)."""

from __future__ import annotations

import copy
import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from schemagate import kube
from schemagate.core.gate.pods import index_entries
from schemagate.core.gate.readiness import PodCondition
from schemagate.core.migration.job import LastWords
from schemagate.core.tenancy.scrub import Scrubber
from schemagate.core.verify_pod import manifest, progress
from schemagate.core.wire.models import GROUP, KIND, VERSION, SecretKeyRef
from schemagate.metrics import Metrics
from schemagate.reconcile import Context, Registry

JSON = dict[str, Any]
Key = tuple[str, str]
T0 = datetime(2026, 12, 2, 5, 0, tzinfo=UTC)


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


class Clock:
    """Time that moves only when a test moves it."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


class FakeKube:
    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.clock = clock or Clock()
        self.schemas: dict[Key, JSON] = {}
        self.secrets: dict[Key, dict[str, str]] = {}
        self.config_maps: dict[Key, JSON] = {}
        self.deployments: dict[Key, JSON] = {}
        self.pods: dict[Key, JSON] = {}
        self.jobs: dict[Key, JSON] = {}
        self.accounts: list[JSON] = []
        self.last_words: LastWords | None = None
        #: What the operator wrote or said, in order.
        self.statuses: list[tuple[Key, JSON]] = []
        self.condition_patches: list[tuple[str, str, bool, str]] = []
        #: The pods' scheduling gates released and conditions written, in order.
        self.calls: list[tuple[Any, ...]] = []
        self.events: list[tuple[Key, str, str, bool]] = []
        self.secret_reads = 0
        #: Seconds each Secret read takes (a round trip, for reads that overlap).
        self.secret_delay = 0.0
        #: verifyFrom: Pod - the states each verify pod goes through, one per look.
        self.verify_script: list[JSON] = [{"phase": "Pending"}]
        self.scripts: dict[str, list[JSON]] = {}
        self.looks: dict[str, int] = {}
        self.verify_created: list[str] = []
        self.verify_deleted: list[str] = []
        self._names = (f"verify-{i}" for i in itertools.count())
        self._uids = (f"uid-{i}" for i in itertools.count())

    # ---- what a test puts in -------------------------------------------------------------

    def add_schema(self, namespace: str, name: str, spec: JSON, generation: int = 1) -> JSON:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
                "metadata": {"namespace": namespace, "name": name, "uid": f"u-{name}",
                             "generation": generation}, "spec": spec, "status": {}}
        self.schemas[(namespace, name)] = body
        return copy.deepcopy(body)

    def add_secret(self, namespace: str, name: str, **data: str) -> None:
        self.secrets[(namespace, name)] = dict(data)

    def add_pod(self, namespace: str, name: str, *, gates: tuple[str, ...] = (),
                labels: dict[str, str] | None = None, created: datetime | None = None,
                held: tuple[str, ...] = (), generation: int = 1) -> JSON:
        """A backend pod, with a readiness gate for each schema named in `gates`, and the
        start-up gate's scheduling gate for each named in `held` (Pending, on no node)."""
        pod = {"metadata": {"namespace": namespace, "name": name, "uid": f"uid-{name}",
                            "labels": labels or {}, "generation": generation,
                            "creationTimestamp": stamp(created or self.clock())},
               "spec": {"readinessGates": [{"conditionType": f"{GROUP}/{g}"} for g in gates],
                        "schedulingGates": [{"name": f"{GROUP}/{g}"} for g in held]},
               "status": {"phase": "Pending" if held else "Running", "conditions": []}}
        self.pods[(namespace, name)] = pod
        return copy.deepcopy(pod)

    def index(self) -> dict[Key, list[Any]]:
        """The pod watch's index (`handlers.gated_pods`), as the pods stand now."""
        built: dict[Key, list[Any]] = {}
        for pod in self.pods.values():
            for key, entry in index_entries(pod).items():
                built.setdefault(key, []).append(entry)
        return built

    def context(self, **settings: Any) -> Context:
        """A pass's context over this fake: its pod index live, its Events recorded."""
        fake: Any = self
        settings.setdefault("clock", self.clock)
        ctx = Context(kube=fake, registry=Registry(), metrics=Metrics(),
                      announce=self.announce, **settings)
        if "pods" not in settings:
            ctx.pods = LiveIndex(self)
        return ctx

    def announce(self, body: Any, reason: str, message: str, warning: bool) -> None:
        meta = body["metadata"]
        self.events.append(((meta["namespace"], meta["name"]), reason, message, warning))

    def condition(self, namespace: str, pod: str, schema: str) -> JSON | None:
        conditions = self.pods[(namespace, pod)]["status"]["conditions"]
        return next((c for c in conditions if c["type"] == f"{GROUP}/{schema}"), None)

    def status(self, namespace: str, name: str) -> JSON:
        status: JSON = self.schemas[(namespace, name)]["status"]
        return status

    # ---- the edge ------------------------------------------------------------------------

    def database_schema(self, namespace: str, name: str) -> JSON | None:
        body = self.schemas.get((namespace, name))
        return copy.deepcopy(body) if body is not None else None

    def patch_status(self, namespace: str, name: str, status: JSON, scrubber: Scrubber) -> None:
        if (namespace, name) in self.schemas:
            self.schemas[(namespace, name)]["status"] = copy.deepcopy(status)
            self.statuses.append(((namespace, name), copy.deepcopy(status)))

    def read_secret_value(self, namespace: str, ref: SecretKeyRef) -> str:
        self.secret_reads += 1
        if self.secret_delay:
            time.sleep(self.secret_delay)
        data = self.secrets.get((namespace, ref.name))
        if data is None or ref.key not in data:
            raise kube.SecretNotFound(f"Secret {ref.name} not found in namespace {namespace}")
        return data[ref.key]

    def config_map(self, namespace: str, name: str) -> JSON | None:
        return copy.deepcopy(self.config_maps.get((namespace, name)))

    def deployment(self, namespace: str, name: str) -> JSON | None:
        return copy.deepcopy(self.deployments.get((namespace, name)))

    def set_pod_condition(self, namespace: str, pod: str, condition_type: str,
                          wanted: PodCondition, transition_time: str,
                          scrubber: Scrubber, generation: int | None = None) -> None:
        target = self.pods.get((namespace, pod))
        if target is None:
            return  # deleted meanwhile, as the API's 404
        conditions = [c for c in target["status"]["conditions"] if c["type"] != condition_type]
        condition = {"type": condition_type, "status": "True" if wanted.status else "False",
                     "reason": wanted.reason, "message": scrubber.message(wanted.message),
                     "lastTransitionTime": transition_time}
        if generation is not None:
            condition["observedGeneration"] = generation
        conditions.append(condition)
        target["status"]["conditions"] = conditions
        self.condition_patches.append((pod, condition_type, wanted.status, wanted.reason))
        self.calls.append(("condition", pod, wanted.status, generation))

    def release_start_gate(self, namespace: str, name: str, uid: str, gate: str
                           ) -> int | None:
        """As the API server: the scheduling gate goes from the pod of that uid, whose
        generation moves on; None for a pod gone or another of that name."""
        target = self.pods.get((namespace, name))
        if target is None or target["metadata"]["uid"] != uid:
            return None
        gates = target["spec"].get("schedulingGates") or []
        kept = [g for g in gates if g["name"] != gate]
        if kept != gates:
            target["spec"]["schedulingGates"] = kept
            target["metadata"]["generation"] = target["metadata"].get("generation", 1) + 1
        self.calls.append(("release", name, uid, gate))
        generation: int = target["metadata"]["generation"]
        return generation

    def create_pod(self, namespace: str, manifest_: JSON) -> JSON:
        name = next(self._names)
        pod = copy.deepcopy(manifest_)
        pod["metadata"].update(name=name, namespace=namespace, uid=next(self._uids),
                               creationTimestamp=stamp(self.clock()))
        pod["status"] = {"phase": "Pending"}
        self.pods[(namespace, name)] = pod
        self.scripts[name] = self.verify_script
        self.verify_created.append(name)
        return copy.deepcopy(pod)

    def verify_pods(self, namespace: str, schema: str) -> list[JSON]:
        return [copy.deepcopy(p) for (ns, _), p in self.pods.items() if ns == namespace and
                p["metadata"].get("labels", {}).get(manifest.VERIFY_LABEL) == schema]

    def verify_pod(self, namespace: str, name: str) -> JSON | None:
        pod = self.pods.get((namespace, name))
        if pod is None:
            return None
        if (script := self.scripts.get(name)) is not None:
            look = self.looks.get(name, 0)
            self.looks[name] = look + 1
            pod["status"] = script[min(look, len(script) - 1)]
        return copy.deepcopy(pod)

    def delete_pod(self, namespace: str, name: str, uid: str) -> None:
        pod = self.pods.get((namespace, name))
        if pod is not None and pod["metadata"]["uid"] == uid:
            del self.pods[(namespace, name)]
            self.verify_deleted.append(name)

    def under_way(self) -> list[str]:
        """The verify pods not finished."""
        return [p["metadata"]["name"] for p in self.pods.values()
                if manifest.VERIFY_LABEL in p["metadata"].get("labels", {})
                and not progress.is_finished(p)]

    def job(self, namespace: str, name: str) -> JSON | None:
        return self.jobs.get((namespace, name))

    def create_job(self, namespace: str, manifest_: JSON) -> None:
        self.jobs.setdefault((namespace, manifest_["metadata"]["name"]), manifest_)

    def job_last_words(self, namespace: str, job: str, scrubber: Scrubber) -> LastWords | None:
        return self.last_words

    def ensure_service_account(self, namespace: str, manifest_: JSON) -> None:
        self.accounts.append(manifest_)


class LiveIndex(dict[Key, list[Any]]):
    """The pod index as the watch would show it with no lag: built from the fake's pods
    at each read."""

    def __init__(self, fake: FakeKube) -> None:
        super().__init__()
        self.fake = fake

    def get(self, key: Key, default: Any = None) -> Any:
        return self.fake.index().get(key, default)
