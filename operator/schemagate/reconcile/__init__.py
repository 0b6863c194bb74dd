"""One DatabaseSchema's life in the operator, by concern: `loop` (wake, pass, sleep),
`steps` (the pass and its steps that look: spec, URL, revision files, verify, migrate),
`pods` (the gate on the pods: the step that gates them, pod events, the release),
`report` (status and Events, their one writer), `verify_in_pod` and `migrate` (the pods
and Jobs a pass starts and observes on the next), `registry` (what this process knows
between events), `author_rights` (whether the API server checks who writes a
DatabaseSchema), `schedule` (when to look again; pure), `context` (what a pass works
with), `edge` (the Kubernetes API as a pass uses it)."""

from schemagate.reconcile.author_rights import AuthorRights
from schemagate.reconcile.context import Context
from schemagate.reconcile.loop import keep_verified
from schemagate.reconcile.pods import pod_seen, release
from schemagate.reconcile.registry import Registry

__all__ = ["AuthorRights", "Context", "Registry", "keep_verified", "pod_seen", "release"]
