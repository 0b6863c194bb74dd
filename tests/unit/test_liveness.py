"""The liveness probe says the machinery is wedged only when a pass overran its bound."""

from schemagate.reconcile.liveness import Progress


def test_a_pass_past_its_bound_is_overdue_and_a_finished_one_is_not() -> None:
    now = [1000.0]
    progress = Progress(clock=lambda: now[0])
    progress.started(("team-a", "backend"), bound=60)
    progress.started(("team-b", "billing"), bound=600)
    now[0] += 61
    assert progress.overdue() == ["the pass of team-a/backend has run for 61 s (bound 60 s)"]
    progress.finished(("team-a", "backend"))
    assert progress.overdue() == []
    assert progress.finished_passes == 1
