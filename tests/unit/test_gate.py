"""Fail closed for new pods, hold steady for old ones."""

import pytest

from schemagate.core import gate
from schemagate.core.models import DriftPolicy, LabelSelector


def state(reason: str, *, verified: bool = False, on_drift: DriftPolicy = DriftPolicy.HOLD
          ) -> gate.GateState:
    return gate.gate_state(verified=verified, reason=reason, message="m", on_drift=on_drift)


def condition(s: gate.GateState, currently_true: bool, selected: bool = True) -> bool:
    return gate.pod_condition(s, currently_true=currently_true, selected=selected,
                              selector="app=x").status


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
