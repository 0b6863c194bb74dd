"""Fail closed for new pods, hold steady for old ones."""

from datetime import UTC, datetime, timedelta

import pytest

from schemagate.core.gate import readiness as gate
from schemagate.core.revisions.applied import Knowledge, parse_history
from schemagate.core.wire.models import DriftPolicy, LabelSelector

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def state(reason: str, *, verified: bool = False, on_drift: DriftPolicy = DriftPolicy.HOLD,
          migrating: str | None = None) -> gate.GateState:
    return gate.gate_state(verified=verified, reason=reason, message="m", on_drift=on_drift,
                           migrating=migrating)


def check(s: gate.GateState, *, started: datetime = T0 + timedelta(seconds=10),
          generation: int = 1, current: frozenset[str] | None = frozenset({"b2"}),
          graph: dict[str, frozenset[str]] | None = None, history: tuple[str, ...] = ()
          ) -> gate.Check:
    knowledge = Knowledge(current=current, graph=graph, graph_source="ConfigMap m",
                          history=parse_history(history))
    return gate.Check(state=s, started=started, generation=generation, knowledge=knowledge)


def pod(*, open_: bool = False, created: datetime = T0, revision: str | None = None,
        seen: datetime | None = None, template: str = "t1") -> gate.PodView:
    return gate.PodView(
        name="p", labels={"app": "x", "pod-template-hash": template},
        annotations={} if revision is None else {"schemagate.io/revision": revision},
        created=created, seen=seen,
        condition={"status": "True", "reason": "Verified"} if open_ else None)


def decide(c: gate.Check, p: gate.PodView, selected: bool = True, latest: int = 1,
           templates: frozenset[str] = frozenset({"t1"})) -> gate.PodCondition:
    """By default the pod's template is one already open (a scale-up, a replacement)."""
    return gate.pod_condition(c, p, selected=selected, selector="app=x", latest_generation=latest,
                              templates=templates)


def condition(s: gate.GateState, currently_true: bool, selected: bool = True) -> bool:
    return decide(check(s), pod(open_=currently_true), selected).status


def test_a_new_pod_is_never_set_true_on_an_unverified_schema() -> None:
    for reason in ("DatabaseUnreachable", "TablesMissing", "NoRevision", "SecretNotFound"):
        assert condition(state(reason), currently_true=False) is False


def test_verified_opens_every_selected_pod() -> None:
    assert condition(state("Verified", verified=True), currently_true=False) is True
    assert condition(state("Verified", verified=True), currently_true=False,
                     selected=False) is False


def test_unreachable_database_holds_open_gates_open_even_with_close() -> None:
    s = state("DatabaseUnreachable", on_drift=DriftPolicy.CLOSE)
    assert condition(s, currently_true=True) is True


@pytest.mark.parametrize(("policy", "stays_open"), [(DriftPolicy.HOLD, True),
                                                     (DriftPolicy.CLOSE, False)])
def test_drift_follows_on_drift(policy: DriftPolicy, stays_open: bool) -> None:
    assert condition(state("StampedButMissing", on_drift=policy), currently_true=True) \
        is stays_open


@pytest.mark.parametrize("policy", list(DriftPolicy))
def test_a_pod_created_after_the_drift_stays_closed_under_either_policy(
        policy: DriftPolicy) -> None:
    drift = check(state("StampedButMissing", on_drift=policy))
    assert decide(drift, pod()).status is False
    assert decide(drift, pod(open_=True)).status is (policy is DriftPolicy.HOLD)


# ---- freshness --------------------------------------------------------------------------------


def test_a_verdict_older_than_the_pod_does_not_open_it() -> None:
    verified = state("Verified", verified=True)
    stale = decide(check(verified, started=T0 + timedelta(milliseconds=500)), pod(created=T0))
    assert (stale.status, stale.reason) == (False, "AwaitingFreshCheck")
    assert "started before this pod was created" in stale.message
    fresh = decide(check(verified, started=T0 + timedelta(seconds=1)), pod(created=T0))
    assert fresh.status is True


def test_the_moment_the_operator_saw_the_pod_beats_the_whole_second_timestamp() -> None:
    verified = state("Verified", verified=True)
    seen = T0 + timedelta(milliseconds=200)
    after = check(verified, started=T0 + timedelta(milliseconds=300))
    assert decide(after, pod(created=T0, seen=seen)).status is True
    before = check(verified, started=T0 + timedelta(milliseconds=100))
    assert decide(before, pod(created=T0, seen=seen)).status is False


def test_the_first_pods_of_a_release_give_its_schema_time_to_follow_them() -> None:
    verified = state("Verified", verified=True)
    settled = T0 + timedelta(seconds=1) + gate.NEW_RELEASE_SETTLE  # the pod existed by T0+1
    soon = check(verified, started=settled - timedelta(seconds=1))
    first = decide(soon, pod(template="t2"))
    assert (first.status, first.reason) == (False, "AwaitingFreshCheck")
    assert "schemagate.io/revision" in first.message
    assert decide(check(verified, started=settled), pod(template="t2")).status
    assert decide(soon, pod(template="t2", revision="b2")).status, "a revision says it all"
    assert decide(soon, pod(template="t1")).status, "a scale-up is no new release"


def test_open_templates_are_those_of_pods_already_true() -> None:
    pods = [pod(open_=True, template="t1"), pod(template="t2")]
    assert gate.open_templates(pods) == {"t1"}


def test_a_check_of_an_older_generation_does_not_open_a_new_pod() -> None:
    old_spec = check(state("Verified", verified=True), generation=1)
    waiting = decide(old_spec, pod(), latest=2)
    assert (waiting.status, waiting.reason) == (False, "AwaitingFreshCheck")
    assert "generation 2" in waiting.message
    assert decide(old_spec, pod(open_=True), latest=2).status is True  # open pods stay


def test_one_check_serves_every_pod_that_waited_when_it_started() -> None:
    one = check(state("Verified", verified=True), started=T0 + timedelta(seconds=5))
    pods = [pod(created=T0 + timedelta(seconds=s)) for s in (0, 1, 2, 3)]
    assert [decide(one, p).status for p in pods] == [True, True, True, True]
    assert decide(one, pod(created=T0 + timedelta(seconds=5))).status is False


def test_a_missing_or_released_schema_needs_no_check() -> None:
    assert decide(gate.Check(gate.released("s")), pod()).status is True
    assert decide(gate.Check(gate.schema_missing("s")), pod()).status is False


# ---- migrations under way ---------------------------------------------------------------------


def test_new_pods_wait_for_a_running_migration_even_on_a_verified_schema() -> None:
    running = check(state("Verified", verified=True, migrating="migration Job j is running"))
    closed = decide(running, pod())
    assert (closed.status, closed.reason) == (False, "MigrationRunning")
    assert "migration Job j is running" in closed.message
    assert decide(running, pod(open_=True)).status is True


# ---- revisions --------------------------------------------------------------------------------


def test_a_pod_opens_only_when_its_revision_is_applied() -> None:
    at_a1 = check(state("Verified", verified=True), current=frozenset({"a1"}))
    closed = decide(at_a1, pod(revision="b2"))
    assert (closed.status, closed.reason) == (False, "RevisionNotApplied")
    assert "b2" in closed.message and "a1" in closed.message
    assert decide(at_a1, pod(revision="a1")).status is True
    assert decide(at_a1, pod()).status is True  # no annotation: the schema alone


def test_every_revision_of_a_pod_must_be_applied() -> None:
    both = check(state("Verified", verified=True), current=frozenset({"a1", "b2"}))
    assert decide(both, pod(revision="a1, b2")).status is True
    one = check(state("Verified", verified=True), current=frozenset({"a1"}))
    assert decide(one, pod(revision="a1,b2")).status is False


def test_the_scripts_graph_opens_a_pod_older_than_the_database() -> None:
    graph = {"a1": frozenset(), "b2": frozenset({"a1"}), "c3": frozenset({"b2"})}
    ahead = check(state("Verified", verified=True), current=frozenset({"c3"}), graph=graph)
    assert decide(ahead, pod(revision="a1")).status is True  # a rollback
    behind = check(state("Verified", verified=True), current=frozenset({"b2"}), graph=graph)
    closed = decide(behind, pod(revision="c3"))
    assert (closed.status, closed.reason) == (False, "RevisionNotApplied")
    assert "not applied yet" in closed.message and "ConfigMap m" in closed.message


def test_the_history_seen_opens_a_pod_older_than_the_database() -> None:
    ahead = check(state("Verified", verified=True), current=frozenset({"b2"}),
                  history=("a1", "b2"))
    assert decide(ahead, pod(revision="a1")).status is True


def test_where_nothing_tells_the_order_the_pod_stays_closed_and_is_told_what_to_do() -> None:
    unknown = check(state("Verified", verified=True), current=frozenset({"b2"}),
                    history=("b2",))
    closed = decide(unknown, pod(revision="a1"))
    assert (closed.status, closed.reason) == (False, "RevisionNotApplied")
    assert "cannot tell" in closed.message and "migrations.run: Alembic" in closed.message
    assert closed.message.startswith("revision a1 is not applied: the database is at b2.")


def test_a_pod_naming_a_revision_on_a_schema_that_never_reads_it_is_told_why() -> None:
    blind = gate.Check(state("Verified", verified=True), started=T0 + timedelta(seconds=9),
                       generation=1, knowledge=Knowledge(current=None, revision_check=False))
    closed = decide(blind, pod(revision="a1"))
    assert closed.status is False and "revisionCheck is false" in closed.message


@pytest.mark.parametrize(("policy", "stays_open"), [(DriftPolicy.HOLD, True),
                                                     (DriftPolicy.CLOSE, False)])
def test_an_open_pod_whose_revision_was_undone_follows_on_drift(
        policy: DriftPolicy, stays_open: bool) -> None:
    undone = check(state("Verified", verified=True, on_drift=policy), current=frozenset({"a1"}),
                   history=("a1",))
    result = decide(undone, pod(open_=True, revision="b2"))
    assert (result.status, result.reason) == (stays_open, "RevisionNotApplied")


def test_gate_names_in_readiness_gates() -> None:
    gates = [{"conditionType": "schemagate.io/app-db"}, {"conditionType": "other/x"}]
    assert gate.schema_names_gating(gates) == ["app-db"]


def test_selector_string_and_matching() -> None:
    sel = LabelSelector.model_validate({
        "matchLabels": {"app": "backend"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]},
                             {"key": "canary", "operator": "DoesNotExist"}]})
    assert gate.selector_string(sel) == "app=backend,tier in (web,api),!canary"
    assert gate.selects(sel, {"app": "backend", "tier": "api"})
    assert not gate.selects(sel, {"app": "backend", "tier": "api", "canary": "1"})
    assert not gate.selects(sel, {"app": "backend"})


def test_selector_with_in_and_no_values_is_refused() -> None:
    sel = LabelSelector.model_validate({
        "matchExpressions": [{"key": "tier", "operator": "In", "values": []}]})
    with pytest.raises(ValueError, match="needs at least one value"):
        gate.selector_string(sel)
