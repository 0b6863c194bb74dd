"""Which database's past opens a pod: `status.revision.history`, check after check.

Each check goes the way the operator's does: the knowledge the gate leans on
(`steps.knowledge`) from the status stored so far, then the next status, merge-patched
onto the stored object as the API server does.
"""

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from schemagate.core.check.verdict import Fingerprint, Verdict
from schemagate.core.gate import readiness as gate
from schemagate.core.migration.judge import Step
from schemagate.core.revisions.applied import HISTORY_LIMIT, Graph
from schemagate.core.status.outcome import from_verdict, next_status
from schemagate.core.wire.models import DatabaseSchemaStatus, DriftPolicy, GateStatus
from schemagate.core.wire.reasons import Reason
from schemagate.reconcile.steps import knowledge

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
GATE = GateStatus(condition_type="schemagate.io/backend-schema")
PRIMARY = Fingerprint(host="10.0.0.5", port=5432, database="app", user="backend",
                      search_path="public", server_version="18.1",
                      system_identifier="7312345678901234567")
#: A DR cutover: the Secret now names another server, whose database has the same name.
STANDBY_SITE = Fingerprint(host="10.9.0.5", port=5432, database="app", user="backend",
                           search_path="public", server_version="18.1",
                           system_identifier="7399999999999999999")
#: A CHAIN of scripts, as `run: Alembic` reads them from the ConfigMap: a → b → c.
CHAIN: Graph = {"a": frozenset(), "b": frozenset({"a"}), "c": frozenset({"b"})}


def merge_patch(stored: Any, patch: Any) -> Any:
    """RFC 7386, as the API server applies a status patch: keys not sent are kept."""
    if not isinstance(patch, dict) or not isinstance(stored, dict):
        return patch
    merged = dict(stored)
    for key, value in patch.items():
        merged[key] = merge_patch(stored.get(key), value)
    return merged


class Database:
    """The DatabaseSchema's stored status, and the checks that see the database."""

    def __init__(self) -> None:
        self.stored: dict[str, Any] = {}
        self.last: gate.Check | None = None
        #: Whether the last check had anything new for status.revision (a value that
        #: differs from the stored one is written again on every check).
        self.revision_changed = False

    @property
    def status(self) -> DatabaseSchemaStatus:
        return DatabaseSchemaStatus.model_validate(self.stored)

    def seen_at(self, *head_sets: Iterable[str], fp: Fingerprint = PRIMARY,
                graph: Graph | None = None) -> "Database":
        for heads in head_sets:
            verdict = Verdict(verified=True, reason=Reason.VERIFIED, message="verified",
                              current_revisions=frozenset(heads), fingerprint=fp)
            outcome = from_verdict(verdict)
            previous = self.status
            step = Step(outcome, graph=graph, graph_source="ConfigMap backend-migrations")
            self.last = gate.Check(
                state=gate.gate_state(verified=True, reason="Verified", message="verified",
                                      on_drift=DriftPolicy.HOLD),
                started=T0 + timedelta(seconds=10), generation=1,
                knowledge=knowledge(outcome, step, previous, None))
            status = next_status(previous, outcome=outcome, generation=1, gate=GATE, now=T0,
                                 graph=graph)
            self.revision_changed = previous.revision != status.revision
            self.stored = merge_patch(self.stored, status.model_dump(
                by_alias=True, mode="json", exclude_none=True))
        return self

    def new_pod_naming(self, revision: str) -> gate.PodCondition:
        assert self.last is not None
        pod = gate.PodView(name="backend-7d9f-x", labels={"pod-template-hash": "7d9f"},
                           annotations={"schemagate.io/revision": revision}, created=T0)
        return gate.pod_condition(self.last, pod, selected=True, selector="app=backend",
                                  latest_generation=1, templates=frozenset({"7d9f"}))


def opens(condition: gate.PodCondition) -> bool:
    return condition.status


def stays_closed_and_cannot_tell(condition: gate.PodCondition) -> bool:
    return (condition.status, condition.reason) == (False, "RevisionNotApplied") \
        and "schemagate cannot tell" in condition.message \
        and "migrations.run: Alembic" in condition.message


def test_a_downgrade_to_a_revision_never_seen_closes_what_it_undid() -> None:
    # a, then c in one `upgrade head`, then `downgrade -1` (or a backup restored) to b.
    db = Database().seen_at({"a"}, {"c"}, {"b"})
    assert stays_closed_and_cannot_tell(db.new_pod_naming("c"))
    assert stays_closed_and_cannot_tell(db.new_pod_naming("a"))
    assert opens(db.new_pod_naming("b"))
    assert db.status.revision is not None and db.status.revision.history == ["b"]


def test_the_scripts_graph_tells_the_same_downgrade_apart_and_says_c_is_not_applied() -> None:
    db = Database().seen_at({"a"}, {"c"}, {"b"}, graph=CHAIN)
    closed = db.new_pod_naming("c")
    assert (closed.status, closed.reason) == (False, "RevisionNotApplied")
    assert "c is not applied yet" in closed.message
    assert opens(db.new_pod_naming("a")) and opens(db.new_pod_naming("b"))
    assert db.status.revision is not None and db.status.revision.history == ["b"]


def test_an_upgrade_seen_step_by_step_keeps_its_history_when_the_scripts_order_it() -> None:
    db = Database().seen_at({"a"}, {"b"}, {"c"}, graph=CHAIN)
    assert db.status.revision is not None
    assert db.status.revision.history == ["a", "b", "c"]
    assert db.status.revision.history_of == "7312345678901234567/app"
    assert opens(db.new_pod_naming("a")) and opens(db.new_pod_naming("b"))
    # The rollback: the previous image, and the ConfigMap reverted with it to scripts that
    # end at b, so the graph no longer knows the database's head: the history opens it.
    db.seen_at({"c"}, graph={"a": frozenset(), "b": frozenset({"a"})})
    assert opens(db.new_pod_naming("b")) and opens(db.new_pod_naming("a"))


def test_without_the_scripts_an_upgrade_cannot_be_told_from_a_downgrade() -> None:
    # a, b, c seen one by one look exactly like a, c, b: neither is trusted.
    db = Database().seen_at({"a"}, {"b"}, {"c"})
    assert stays_closed_and_cannot_tell(db.new_pod_naming("b"))
    assert opens(db.new_pod_naming("c"))


def test_a_move_back_to_a_head_set_seen_before_keeps_what_came_before_it() -> None:
    db = Database().seen_at({"a"}, {"b"}, {"c"}, graph=CHAIN).seen_at({"b"})
    assert db.status.revision is not None and db.status.revision.history == ["a", "b"]
    assert opens(db.new_pod_naming("a"))
    assert not opens(db.new_pod_naming("c"))


def test_another_database_starts_a_new_history() -> None:
    db = Database().seen_at({"a"}, {"b"}, {"c"}, graph=CHAIN)
    # The Secret now names the standby site, which is at c too but never passed a or b
    # under the operator's eyes; and the scripts no longer know c.
    db.seen_at({"c"}, fp=STANDBY_SITE, graph={"hotfix": frozenset()})
    assert db.status.revision is not None
    assert db.status.revision.history == ["c"]
    assert db.status.revision.history_of == "7399999999999999999/app"
    assert stays_closed_and_cannot_tell(db.new_pod_naming("b"))


def test_another_database_of_the_same_server_starts_a_new_history() -> None:
    blue = PRIMARY
    green = Fingerprint(**{**PRIMARY.to_json(), "database": "app_green"})
    db = Database().seen_at({"a"}, {"b"}, fp=blue, graph=CHAIN)
    db.seen_at({"b"}, fp=green, graph={})
    assert db.status.revision is not None and db.status.revision.history == ["b"]
    assert stays_closed_and_cannot_tell(db.new_pod_naming("a"))


def test_a_history_written_before_its_database_was_recorded_is_not_trusted() -> None:
    db = Database()
    db.stored = {"revision": {"current": ["c"], "history": ["a", "b", "c"]}}
    db.seen_at({"c"}, graph={})
    assert stays_closed_and_cannot_tell(db.new_pod_naming("a"))
    assert db.status.revision is not None and db.status.revision.history == ["c"]


def test_a_server_that_cannot_be_told_apart_keeps_no_history() -> None:
    unnamed = Fingerprint(**{**PRIMARY.to_json(), "system_identifier": None})
    db = Database().seen_at({"a"}, {"b"}, graph=CHAIN)
    db.seen_at({"b"}, fp=unnamed, graph={})
    assert db.status.revision is not None and db.status.revision.history == []
    assert stays_closed_and_cannot_tell(db.new_pod_naming("a"))
    assert opens(db.new_pod_naming("b"))
    db.seen_at({"b"}, fp=unnamed, graph={})
    assert not db.revision_changed, "the same check again must not rewrite status.revision"
    # Readable again: what was stored while it was not is not carried over.
    db.seen_at({"b"}, graph={})
    assert db.status.revision is not None and db.status.revision.history == ["b"]
    assert stays_closed_and_cannot_tell(db.new_pod_naming("a"))


def test_the_history_stays_bounded() -> None:
    chain: dict[str, frozenset[str]] = {"r0": frozenset()}
    for i in range(1, 3 * HISTORY_LIMIT):
        chain[f"r{i}"] = frozenset({f"r{i - 1}"})
    db = Database().seen_at(*({f"r{i}"} for i in range(3 * HISTORY_LIMIT)), graph=chain)
    assert db.status.revision is not None and db.status.revision.history is not None
    assert len(db.status.revision.history) == HISTORY_LIMIT
    assert db.status.revision.history[-1] == f"r{3 * HISTORY_LIMIT - 1}"
