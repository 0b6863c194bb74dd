"""kstatus's status computation for a custom resource, as a pure function.

Written from the kstatus documentation and `pkg/kstatus/status` of
kubernetes-sigs/cli-utils (what Flux's health checks and kpt use), generic rules only,
since no type-specific rule exists for a custom resource:

1. `metadata.deletionTimestamp` set: Terminating.
2. `metadata.generation` and `status.observedGeneration` both present and different:
   InProgress (reason LatestGenerationNotObserved). An absent observedGeneration skips
   this rule.
3. A condition `Reconciling` with status True: InProgress; `Stalled` True: Failed;
   the first of them in the list wins.
4. Otherwise: Current, whatever other conditions say ("the absence of any known
   conditions means the resource is current").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CURRENT, IN_PROGRESS, FAILED, TERMINATING = "Current", "InProgress", "Failed", "Terminating"


def compute(obj: Mapping[str, Any]) -> tuple[str, str]:
    """(status, message) as kstatus computes them for `obj`."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    if meta.get("deletionTimestamp"):
        return TERMINATING, "Resource scheduled for deletion"
    generation, observed = meta.get("generation"), status.get("observedGeneration")
    if generation is not None and observed is not None and observed != generation:
        return IN_PROGRESS, (f"{obj.get('kind')} generation is {generation}, but latest "
                             f"observed generation is {observed}")
    for condition in status.get("conditions") or ():
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Reconciling":
            return IN_PROGRESS, str(condition.get("message") or "")
        if condition.get("type") == "Stalled":
            return FAILED, str(condition.get("message") or "")
    return CURRENT, "Resource is current"
