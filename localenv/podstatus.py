"""The status a kubelet would report for a pod, from what the node knows of it.

Pure functions over the pod as plain JSON data. The result is the body of a
strategic-merge patch of `pods/status`: it names only the conditions a kubelet
owns (PodScheduled, Initialized, ContainersReady, Ready), so a condition written
by someone else, such as the operator's `schemagate.io/<name>` readiness gate,
is never touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

Json = dict[str, Any]
KUBELET_CONDITIONS = ("PodScheduled", "Initialized", "ContainersReady", "Ready")
HOST_IP = "127.0.0.1"


@dataclass(frozen=True)
class Waiting:
    reason: str
    message: str = ""


@dataclass(frozen=True)
class Running:
    started_at: str


@dataclass(frozen=True)
class Terminated:
    exit_code: int
    reason: str
    started_at: str
    finished_at: str
    message: str = ""


State = Waiting | Running | Terminated


@dataclass(frozen=True)
class PodRun:
    """The containers' states as the node sees them; `failure` (reason, message)
    fails the whole pod at `failed_at`."""

    init: dict[str, State] = field(default_factory=dict)
    main: dict[str, State] = field(default_factory=dict)
    failure: tuple[str, str] | None = None
    failed_at: str = ""


def pod_ip(uid: str) -> str:
    # Loopback addresses are refused in EndpointSlices, so each pod gets a
    # stable made-up address of its own; nothing listens on it.
    h = int(uid.replace("-", "") or "0", 16)
    return f"10.88.{(h >> 8) & 255}.{1 + h % 254}"


def is_sidecar(container: Json) -> bool:
    """A native sidecar: an init container with `restartPolicy: Always`. It is started
    in its turn among the init containers, runs beside the containers, and is stopped
    once they have all ended; its exit does not decide the pod's phase."""
    return container.get("restartPolicy") == "Always"


def sidecars(pod: Json) -> list[Json]:
    return [c for c in pod["spec"].get("initContainers") or [] if is_sidecar(c)]


def phase(pod: Json, run: PodRun) -> str:
    if run.failure:
        return "Failed"
    started = any(isinstance(s, Running | Terminated) for s in run.main.values())
    # A pod is not reported finished while a sidecar still runs: it is stopped first.
    if any(isinstance(run.init.get(c["name"]), Running) for c in sidecars(pod)):
        return "Running" if started else "Pending"
    ordinary = {c["name"] for c in pod["spec"].get("initContainers") or [] if not is_sidecar(c)}
    if any(isinstance(s, Terminated) and s.exit_code != 0
           for name, s in run.init.items() if name in ordinary):
        return "Failed"
    states = [run.main.get(c["name"]) for c in pod["spec"]["containers"]]
    exit_codes = [s.exit_code for s in states if isinstance(s, Terminated)]
    if len(exit_codes) == len(states):
        return "Failed" if any(exit_codes) else "Succeeded"
    if started:
        return "Running"
    return "Pending"


def _condition(current: list[Json], type_: str, ok: bool, now: str, reason: str = "",
               message: str = "") -> Json:
    status = "True" if ok else "False"
    before = next((c for c in current if c.get("type") == type_), None)
    # lastTransitionTime moves only when the status flips.
    since = before["lastTransitionTime"] if before and before.get("status") == status \
        and before.get("lastTransitionTime") else now
    # None deletes a reason left over from when the condition was False.
    return {"type": type_, "status": status, "lastTransitionTime": since,
            "reason": None if ok else reason, "message": None if ok else message}


def gate_problems(pod: Json) -> list[str]:
    """What keeps the readiness gates closed, in a kubelet's words; empty when all are True."""
    conditions = {c.get("type"): c for c in pod.get("status", {}).get("conditions") or []}
    problems = []
    for gate in pod["spec"].get("readinessGates") or []:
        name = gate["conditionType"]
        if name not in conditions:
            problems.append(f'corresponding condition of pod readiness gate "{name}" '
                            'does not exist.')
        elif conditions[name].get("status") != "True":
            problems.append(f'the status of pod readiness gate "{name}" is not "True", '
                            f'but {conditions[name].get("status")}')
    return problems


def conditions(pod: Json, run: PodRun, now: str) -> list[Json]:
    current = pod.get("status", {}).get("conditions") or []
    # A sidecar counts as initialised once started (it has no startupProbe here).
    init_pending = [c["name"] for c in pod["spec"].get("initContainers") or []
                    if not (_started(run.init.get(c["name"])) if is_sidecar(c)
                            else _succeeded(run.init.get(c["name"])))]
    unready = [*(c["name"] for c in sidecars(pod)
                 if not isinstance(run.init.get(c["name"]), Running)),
               *(c["name"] for c in pod["spec"]["containers"]
                 if not isinstance(run.main.get(c["name"]), Running))]
    completed = phase(pod, run) == "Succeeded"
    ready_reason = "PodCompleted" if completed else "ContainersNotReady"
    ready_message = "" if completed else f"containers with unready status: [{' '.join(unready)}]"
    gates = gate_problems(pod)
    if unready:
        ready = _condition(current, "Ready", False, now, ready_reason, ready_message)
    else:
        ready = _condition(current, "Ready", not gates, now, "ReadinessGatesNotReady",
                           ", ".join(gates))
    return [
        _condition(current, "PodScheduled", True, now),
        _condition(current, "Initialized", not init_pending, now, "ContainersNotInitialized",
                   f"containers with incomplete status: [{' '.join(init_pending)}]"),
        _condition(current, "ContainersReady", not unready, now, ready_reason, ready_message),
        ready,
    ]


def _succeeded(state: State | None) -> bool:
    return isinstance(state, Terminated) and state.exit_code == 0


def _started(state: State | None) -> bool:
    return isinstance(state, Running | Terminated)


def _state(state: State) -> Json:
    if isinstance(state, Waiting):
        return {"waiting": {"reason": state.reason, "message": state.message}}
    if isinstance(state, Running):
        return {"running": {"startedAt": state.started_at}}
    terminated: Json = {"exitCode": state.exit_code, "reason": state.reason,
                        "startedAt": state.started_at, "finishedAt": state.finished_at}
    if state.message:
        terminated["message"] = state.message
    return {"terminated": terminated}


def container_statuses(pod: Json, containers: list[Json], states: dict[str, State],
                       init: bool) -> list[Json]:
    uid = pod["metadata"]["uid"]
    statuses = []
    for container in containers:
        state = states.get(container["name"], Waiting("ContainerCreating"))
        ready = _succeeded(state) if init and not is_sidecar(container) \
            else isinstance(state, Running)
        statuses.append({
            "name": container["name"], "image": container.get("image", ""),
            "imageID": "", "containerID": f"schemagate://{uid[:8]}-{container['name']}",
            "ready": ready, "started": isinstance(state, Running), "restartCount": 0,
            "state": _state(state)})
    return statuses


def _settle(states: dict[str, State], containers: list[Json], run: PodRun) -> dict[str, State]:
    # A failed pod runs nothing more: what never ran ends with the pod's reason,
    # so `kubectl get pods` shows it instead of ContainerCreating.
    reason, message = run.failure or ("", "")
    settled = dict(states)
    for container in containers:
        if not isinstance(settled.get(container["name"]), Terminated):
            settled[container["name"]] = Terminated(128, reason, run.failed_at, run.failed_at,
                                                    message)
    return settled


def desired(pod: Json, run: PodRun, now: str) -> Json:
    """The `status` a kubelet would write, as a strategic-merge patch body's `status`."""
    if run.failure:
        spec = pod["spec"]
        run = replace(run, init=_settle(run.init, spec.get("initContainers") or [], run),
                      main=_settle(run.main, spec["containers"], run))
    current = pod.get("status") or {}
    ip = pod_ip(pod["metadata"]["uid"])
    status: Json = {
        "phase": phase(pod, run),
        "conditions": conditions(pod, run, now),
        "hostIP": HOST_IP, "hostIPs": [{"ip": HOST_IP}],
        "podIP": ip, "podIPs": [{"ip": ip}],
        "startTime": current.get("startTime") or now,
        "containerStatuses": container_statuses(pod, pod["spec"]["containers"], run.main, False),
    }
    init_containers = pod["spec"].get("initContainers") or []
    if init_containers:
        status["initContainerStatuses"] = container_statuses(pod, init_containers, run.init, True)
    if run.failure:
        status["reason"], status["message"] = run.failure
    return status


def _key(item: Any) -> Any:
    if isinstance(item, dict):
        for key in ("type", "name", "ip"):
            if key in item:
                return item[key]
    return None


def covers(current: Any, wanted: Any, path: str = "") -> bool:
    """True when `current` already says everything `wanted` says (lists matched by
    their merge key): then patching would change nothing, and is skipped."""
    if isinstance(wanted, dict):
        if not isinstance(current, dict):
            return False
        if path.endswith("state") and set(current) != set(wanted):
            return False  # a container in exactly one state: waiting, running or terminated
        return all(covers(current.get(k), v, f"{path}.{k}") for k, v in wanted.items())
    if isinstance(wanted, list):
        if not isinstance(current, list):
            return False
        by_key = {_key(item): item for item in current}
        return all(covers(by_key.get(_key(item)), item, path) for item in wanted)
    return bool(current == wanted)
