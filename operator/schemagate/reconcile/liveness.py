"""Whether the reconcile machinery still makes progress, for the liveness probe.

Every call a pass makes has a deadline, so a pass has one too: a pass in flight for
longer than its bound, or a pool of threads that cannot even run a no-op, means the
process is wedged and a restart is the cure. A database that does not answer is not
that: its checks end at their deadlines and say so in status.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

Key = tuple[str, str]

#: The longest an ordinary pass may take: its check at the longest connect timeout (60 s)
#: with the search of other databases (136 s, `database.check_deadline`), and a few API
#: calls at their own request timeout (15 s). No pass waits for a pod or a Job it
#: started: it looks at them again on the next pass.
PASS_BOUND = 200.0


@dataclass
class Progress:
    clock: Callable[[], float] = time.monotonic
    #: Passes in flight: when each started and how long it may take.
    passes: dict[Key, tuple[float, float]] = field(default_factory=dict)
    #: Passes finished since the process started.
    finished_passes: int = 0

    def started(self, key: Key, bound: float = PASS_BOUND) -> None:
        self.passes[key] = (self.clock(), bound)

    def finished(self, key: Key) -> None:
        self.passes.pop(key, None)
        self.finished_passes += 1

    def overdue(self) -> list[str]:
        """Each pass in flight beyond its bound, in words; empty when all is well."""
        now = self.clock()
        return [f"the pass of {namespace}/{name} has run for {now - since:.0f} s "
                f"(bound {bound:.0f} s)"
                for (namespace, name), (since, bound) in sorted(self.passes.items())
                if now - since > bound]
