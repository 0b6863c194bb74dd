"""One DatabaseSchema's life in the operator, by concern: `loop` (wake, pass, sleep),
`registry` (what this process knows between events), `pods` (the gate on the pods),
`migrate` (performs the core's migration decision, both modes), `author_rights` (whether
the API server checks who writes a DatabaseSchema),
`schedule` (when to look again; pure), `context` (what a pass works with)."""

from schemagate.reconcile.author_rights import AuthorRights
from schemagate.reconcile.context import Context
from schemagate.reconcile.loop import keep_verified
from schemagate.reconcile.pods import gate_new_pod, release
from schemagate.reconcile.registry import Registry

__all__ = ["AuthorRights", "Context", "Registry", "gate_new_pod", "keep_verified", "release"]
