"""Where a verify pod is (running, done, or failed with why), which of the pods are ours
to trust, and which go."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schemagate.core.check.verdict import Requirement, Verdict
from schemagate.core.verify_pod.manifest import CONTAINER, DEADLINE
from schemagate.core.verify_pod.termination import NoVerdict, cut, read_verdict

#: Finished verify pods kept for `kubectl logs`; older ones are deleted.
KEEP_FINISHED = 3
#: Waiting reasons after which a container will not start by itself soon.
CANNOT_START = frozenset({"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull",
                          "InvalidImageName", "CreateContainerConfigError",
                          "CreateContainerError", "RunContainerError", "CrashLoopBackOff"})
#: Kubelet messages quoted in a reason are cut here.
QUOTED = 400


@dataclass(frozen=True)
class Progress:
    """Where a verify pod is: `running`, or `done` with the verify container's exit code
    and termination message, or `failed` with why it cannot give a verdict."""

    running: bool = False
    exit_code: int | None = None
    message: str = ""
    failed: str | None = None


def _created(pod: Mapping[str, Any]) -> datetime | None:
    text = pod["metadata"].get("creationTimestamp")
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _statuses(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    status = pod.get("status") or {}
    return [*(status.get("initContainerStatuses") or ()),
            *(status.get("containerStatuses") or ())]


def progress(pod: Mapping[str, Any], now: datetime) -> Progress:
    """Where the verify pod `pod` is at `now` (its deadline counted from its creation)."""
    name = pod["metadata"]["name"]
    status = pod.get("status") or {}
    for s in status.get("containerStatuses") or ():
        terminated = (s.get("state") or {}).get("terminated")
        if s.get("name") == CONTAINER and terminated:
            return Progress(exit_code=int(terminated.get("exitCode") or 0),
                            message=str(terminated.get("message") or ""))
    if status.get("phase") in ("Failed", "Succeeded"):
        why = ": ".join(str(x) for x in (status.get("reason"), status.get("message")) if x)
        return Progress(failed=f"verify pod {name} ended before its check ran"
                               + (f" ({cut(why, QUOTED)})" if why else ""))
    for s in _statuses(pod):
        waiting = (s.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in CANNOT_START:
            return Progress(failed=f"verify pod {name} cannot start: container {s.get('name')} "
                                   f"is {waiting['reason']}"
                                   + _quoted(waiting.get("message")))
    created = _created(pod)
    if created is not None and now - created >= DEADLINE:
        return Progress(failed=f"verify pod {name} gave no verdict within "
                               f"{int(DEADLINE.total_seconds())} s: {_stuck(pod)}")
    return Progress(running=True)


def _quoted(text: str | None) -> str:
    return f": {cut(' '.join(text.split()), QUOTED)}" if text else ""


def _stuck(pod: Mapping[str, Any]) -> str:
    """Why a pod past its deadline has not finished, in the kubelet's and scheduler's words."""
    status = pod.get("status") or {}
    for c in status.get("conditions") or ():
        if c.get("type") == "PodScheduled" and c.get("status") != "True":
            return f"not scheduled ({c.get('reason') or 'Pending'}{_quoted(c.get('message'))})"
    for s in status.get("initContainerStatuses") or ():
        if not s.get("started") and not (s.get("state") or {}).get("terminated"):
            return (f"sidecar {s.get('name')} has not started (its startup probe has not "
                    "passed), so the check never began")
    for s in _statuses(pod):
        waiting = (s.get("state") or {}).get("waiting") or {}
        if waiting:
            return (f"container {s.get('name')} is waiting ({waiting.get('reason')}"
                    f"{_quoted(waiting.get('message'))})")
    return "the check is still running (a database that accepts connections but never answers?)"


def outcome_of(name: str, done: Progress, requirement: Requirement,
               scrub: Callable[[str], str]) -> tuple[Verdict | None, str]:
    """The verdict of a finished pod, or None with why there is none (scrubbed)."""
    try:
        return read_verdict(done.message, requirement), ""
    except NoVerdict:
        tail = scrub(done.message.strip())[-QUOTED:]
        return None, (f"verify pod {name} ended with exit code {done.exit_code} without a "
                      "verdict" + (f": {tail}" if tail else ""))


def is_finished(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return True
    return any(s.get("name") == CONTAINER and (s.get("state") or {}).get("terminated")
               for s in status.get("containerStatuses") or ())


def to_delete(pods: Sequence[Mapping[str, Any]], keep: int = KEEP_FINISHED,
              current: str | None = None) -> list[str]:
    """The verify pods to delete: every unfinished one but `current` (never two at once),
    and the finished ones older than the newest `keep`."""
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    newest_first = sorted(live, key=lambda p: (p["metadata"].get("creationTimestamp") or "",
                                               p["metadata"]["name"]), reverse=True)
    finished = [p["metadata"]["name"] for p in newest_first if is_finished(p)]
    unfinished = [p["metadata"]["name"] for p in newest_first if not is_finished(p)
                  and p["metadata"]["name"] != current]
    return unfinished + finished[keep:]


def created_here(pods: Sequence[Mapping[str, Any]], created: Mapping[str, str]
                 ) -> list[Mapping[str, Any]]:
    """The verify pods among `pods` that this process created: `created` holds the name
    and uid of each, as the API server answered its create. Whoever may create pods in
    the namespace can copy a verify pod's labels and annotations, never its uid: a pod
    not created here is neither read, followed nor deleted."""
    return [p for p in pods if is_created(p, created.get(p["metadata"]["name"]))]


def is_created(pod: Mapping[str, Any], uid: str | None) -> bool:
    """`pod` is the one whose create answered `uid` (a pod of the same name made since
    is not)."""
    return uid is not None and pod["metadata"].get("uid") == uid
