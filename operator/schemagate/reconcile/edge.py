"""The Kubernetes API as a pass uses it: what `kube.Kube` offers the steps, and what
the one shared fake of the unit tests (tests/support/fake_kube.py) stands in for."""

from __future__ import annotations

from typing import Any, Protocol

from schemagate.core.gate.readiness import PodCondition
from schemagate.core.migration.job import LastWords
from schemagate.core.tenancy.scrub import Scrubber
from schemagate.core.wire.models import SecretKeyRef

JSON = dict[str, Any]


class KubeEdge(Protocol):
    # The DatabaseSchema, its status, and what it names.
    def database_schema(self, namespace: str, name: str) -> JSON | None: ...

    def patch_status(self, namespace: str, name: str, status: JSON,
                     scrubber: Scrubber) -> None: ...

    def read_secret_value(self, namespace: str, ref: SecretKeyRef) -> str: ...

    def config_map(self, namespace: str, name: str) -> JSON | None: ...

    def deployment(self, namespace: str, name: str) -> JSON | None: ...

    # The gate on the backend's pods.
    def set_pod_condition(self, namespace: str, pod: str, condition_type: str,
                          wanted: PodCondition, transition_time: str,
                          scrubber: Scrubber, generation: int | None = None) -> None: ...

    def release_start_gate(self, namespace: str, name: str, uid: str,
                           gate: str) -> int | None: ...

    # The pods and Jobs the operator starts.
    def create_pod(self, namespace: str, manifest: JSON) -> JSON: ...

    def verify_pods(self, namespace: str, schema: str) -> list[JSON]: ...

    def verify_pod(self, namespace: str, name: str) -> JSON | None: ...

    def delete_pod(self, namespace: str, name: str, uid: str) -> None: ...

    def job(self, namespace: str, name: str) -> JSON | None: ...

    def create_job(self, namespace: str, manifest: JSON) -> None: ...

    def job_last_words(self, namespace: str, job: str,
                       scrubber: Scrubber) -> LastWords | None: ...

    def ensure_service_account(self, namespace: str, manifest: JSON) -> None: ...
