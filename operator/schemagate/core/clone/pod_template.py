"""A pod cloned from a backend Deployment's pod template (pure): the rules the migration
Job and the verify pod share.

The clone runs with the backend's own settings: the named container's env, envFrom,
volume mounts and working directory, the volumes those mounts need, the pod's service
account, pull secrets and security context, and its other containers as native
sidecars (restartPolicy: Always init containers), so that a database proxy comes along
and still lets the pod complete. The backend's ordinary init containers stay behind: a
"wait for the schema" init container would wait for the clone itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from schemagate.core.clone import consent

JSON = dict[str, Any]

#: The pod-level fields a clone keeps; labels, annotations and readiness gates stay
#: behind, so no Service selects the clone and no gate waits on it.
POD_FIELDS = ("serviceAccountName", "imagePullSecrets", "securityContext", "nodeSelector",
              "tolerations", "affinity", "priorityClassName", "dnsPolicy", "dnsConfig",
              "hostAliases", "automountServiceAccountToken")
#: What a container that runs to completion does not keep from the backend's container.
NOT_FOR_A_RUN = ("readinessProbe", "livenessProbe", "startupProbe", "ports", "lifecycle",
                 "command", "args", "restartPolicy")


class InvalidPodSource(ValueError):
    """The Deployment cannot give the pod (container missing, no containers, its owners
    did not consent)."""


def template_spec(deployment: Mapping[str, Any]) -> Mapping[str, Any]:
    spec: Mapping[str, Any] = ((deployment.get("spec") or {}).get("template") or {}).get(
        "spec") or {}
    return spec


#: Names and label values: the Job controller labels its pods with the Job's name.
MAX_LABEL = 63


def bounded(name: str, limit: int = MAX_LABEL) -> str:
    """`name` when it fits in `limit` characters, else its start and a short hash of the
    whole: still unique, still a valid label value (alphanumeric at both ends)."""
    if len(name) <= limit:
        return name
    tag = hashlib.sha256(name.encode()).hexdigest()[:8]
    return name[: limit - len(tag) - 1].rstrip("-.") + "-" + tag


def require_consent(deployment: Mapping[str, Any], schema: str, purpose: str,
                    runs: str = "pod") -> None:
    """The Deployment's owners consent to `purpose` (e.g. "migrations") run by this
    DatabaseSchema as their workload: the Deployment object carries the annotation
    `schemagate.io/clone-for` naming it (`core.clone.consent`). Without that, whoever may
    write a DatabaseSchema could run a pod with another team's service account, env and
    Secrets."""
    name = deployment["metadata"]["name"]
    try:
        if consent.given(deployment, schema):
            return
    except consent.UnreadableConsent as exc:
        raise InvalidPodSource(
            f"Deployment {name}'s annotation {consent.CLONE_FOR} cannot be read: {exc}; "
            f"until it names DatabaseSchema {schema} no {runs} runs as that Deployment"
        ) from None
    raise InvalidPodSource(
        f"Deployment {name} has not consented to {purpose} by DatabaseSchema {schema}: its "
        f"owners add that name to the Deployment's annotation {consent.CLONE_FOR} "
        f"({consent.annotate_command(deployment, schema)}); until then no {runs} runs as "
        "that Deployment")


def source_container(spec: Mapping[str, Any], name: str | None, deployment: str) -> JSON:
    """The named container of the template (default: the first)."""
    containers: list[JSON] = list(spec.get("containers") or [])
    if not containers:
        raise InvalidPodSource(f"Deployment {deployment} has no containers")
    if name is None:
        return containers[0]
    for container in containers:
        if container.get("name") == name:
            return container
    names = ", ".join(c.get("name", "?") for c in containers)
    raise InvalidPodSource(f"Deployment {deployment} has no container {name} "
                           f"(its containers: {names})")


def as_sidecar(container: Mapping[str, Any]) -> JSON:
    """A regular container as a native sidecar: it starts first and never holds the
    pod's completion. Its startup probe stays (the main container waits for it)."""
    sidecar = {k: v for k, v in container.items() if k not in ("readinessProbe",
                                                                "livenessProbe")}
    sidecar["restartPolicy"] = "Always"
    return sidecar


def sidecars(spec: Mapping[str, Any], source: Mapping[str, Any]) -> list[JSON]:
    """The template's native sidecars, then its containers other than `source` made
    native sidecars; its ordinary init containers stay behind."""
    native = [dict(c) for c in spec.get("initContainers") or ()
              if c.get("restartPolicy") == "Always"]
    others = [as_sidecar(c) for c in spec.get("containers") or () if c is not source]
    return native + others


def volumes_needed(spec: Mapping[str, Any], containers: list[JSON]) -> list[JSON]:
    mounted = {m["name"] for c in containers for m in c.get("volumeMounts") or ()}
    return [v for v in spec.get("volumes") or () if v.get("name") in mounted]


def clone(spec: Mapping[str, Any], main: JSON, side: list[JSON],
          extra_volumes: Sequence[JSON] = ()) -> JSON:
    """The pod spec that runs `main` once beside `side`, with the template's pod fields
    and the volumes any of them mounts."""
    pod: JSON = {k: spec[k] for k in POD_FIELDS if k in spec}
    pod.update(restartPolicy="Never", containers=[main])
    if side:
        pod["initContainers"] = side
    volumes = volumes_needed(spec, [main, *side]) + list(extra_volumes)
    if volumes:
        pod["volumes"] = volumes
    return pod
