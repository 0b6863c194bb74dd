"""The liveness probe says the machinery is wedged only when a pass overran its bound."""

from annotated_types import Le

from schemagate.core.wire.models import DatabaseSpec
from schemagate.kube import REQUEST_TIMEOUT
from schemagate.postgres.catalog import check_deadline
from schemagate.reconcile.liveness import PASS_BOUND, Progress


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


def test_the_bound_of_a_pass_is_its_longest_check_and_a_few_api_calls() -> None:
    """No pass waits for a pod or a Job it started, so nothing but the check is long."""
    longest = max(m.le for m in DatabaseSpec.model_fields["connect_timeout_seconds"].metadata
                  if isinstance(m, Le))
    check = check_deadline(float(longest))
    assert check < PASS_BOUND <= check + 5 * REQUEST_TIMEOUT
