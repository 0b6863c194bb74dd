"""After credentials are refused, a schema waits a doubling time before it tries again,
whatever wakes it: a tenant cannot guess passwords through the operator at the rate of
its Secret writes."""

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from schemagate.core.check.verdict import Verdict
from schemagate.core.status.outcome import Outcome
from schemagate.core.wire.reasons import Reason
from schemagate.postgres import catalog
from schemagate.reconcile import Context
from schemagate.reconcile.batch import Batches
from schemagate.reconcile.loop import keep_verified
from schemagate.reconcile.schedule import Backoff, refusals_after
from tests.support.fake_kube import FakeKube
from tests.support.wait import wait_for_async

KEY = ("ns", "s")
BODY = {"metadata": {"namespace": "ns", "name": "s", "generation": 1},
        "spec": {"database": {"urlSecretRef": {"name": "db", "key": "url"}},
                 "tables": ["t"]}}
#: A short wait for the tests; the operator's is 10 s, doubling up to 5 minutes.
HOLD = 0.4


def one_schema() -> FakeKube:
    """The API server with one schema and its Secret."""
    kube = FakeKube(clock=lambda: datetime.now(UTC))
    kube.add_schema("ns", "s", BODY["spec"])
    kube.add_secret("ns", "db", url="postgresql://app:guess@10.0.0.5/app")
    return kube


class Server:
    """Stands for `catalog.verify_many`: answers each pass with the next reason, and
    records when each pass (one connection attempt) began."""

    def __init__(self, *reasons: Reason) -> None:
        self.reasons = list(reasons)
        self.attempts: list[float] = []

    def __call__(self, url: str, asked: Sequence[catalog.Asked], timeout: float
                 ) -> list[Verdict]:
        self.attempts.append(time.monotonic())
        reason = self.reasons.pop(0) if len(self.reasons) > 1 else self.reasons[0]
        return [Verdict(verified=reason is Reason.VERIFIED, reason=reason,
                        message="password authentication failed for user app"
                        if reason is Reason.AUTHENTICATION_FAILED else "ok")
                for _ in asked]


def context(server: Server, kube: FakeKube) -> Context:
    return kube.context(pods={}, batches=Batches(run=server), keep_secrets=True,
                        backoff=Backoff(first=HOLD, cap=HOLD))


async def attempts(server: Server, until: Callable[[int], bool], what: str) -> None:
    await wait_for_async(what, lambda: len(server.attempts), until, timeout=5, interval=0.005)


def test_secret_writes_during_the_wait_after_a_refusal_start_no_attempt() -> None:
    server, kube = Server(Reason.AUTHENTICATION_FAILED), one_schema()
    ctx = context(server, kube)
    writes: list[float] = []

    async def main() -> None:
        stopped: list[bool] = []
        loop = asyncio.create_task(keep_verified(BODY, stopped, ctx, logger()))
        await attempts(server, lambda n: n == 1, "the first attempt")
        refused_at = server.attempts[0]
        while time.monotonic() - refused_at < HOLD * 0.8:  # 50 writes, spread over the wait
            ctx.registry.wake_users_of("Secret", "ns", "db")  # what the Secret watch says
            writes.append(time.monotonic())
            await asyncio.sleep(HOLD / 60)
        await attempts(server, lambda n: n >= 2, "the attempt after the wait")
        stopped.append(True)
        loop.cancel()

    asyncio.run(main())
    assert len(writes) >= 20
    first = server.attempts[0]
    # The writes within the wait brought no attempt sooner: one attempt, when it ended.
    assert [round(t - first, 1) for t in server.attempts if t - first < HOLD] == [0]
    assert len(server.attempts) == 2
    assert "credentials refused: next attempt in 0.4 s" in \
        kube.statuses[0][1]["conditions"][0]["message"]


def test_the_wait_doubles_with_each_refusal_and_a_check_that_reads_the_database_resets_it(
        ) -> None:
    backoff = Backoff(first=10, cap=300)
    refusals = 0
    waits = []
    for _ in range(7):
        refusals = refusals_after(refusals, Outcome(Reason.AUTHENTICATION_FAILED, "m"))
        waits.append(backoff.after(refusals))
    assert waits == [10, 20, 40, 80, 160, 300, 300]
    # Unreachable in between (the Secret pointed elsewhere) does not start it over ...
    refusals = refusals_after(refusals, Outcome(Reason.DATABASE_UNREACHABLE, "m"))
    assert backoff.after(refusals_after(refusals, Outcome(Reason.AUTHENTICATION_FAILED,
                                                          "m"))) == 300
    # ... a check that got past the credentials does.
    refusals = refusals_after(refusals, Outcome(Reason.TABLES_MISSING, "m"))
    assert refusals == 0
    assert backoff.after(refusals_after(refusals, Outcome(Reason.AUTHENTICATION_FAILED,
                                                          "m"))) == 10


def test_after_a_successful_check_a_secret_write_is_checked_at_once() -> None:
    server, kube = Server(Reason.AUTHENTICATION_FAILED, Reason.VERIFIED), one_schema()
    ctx = context(server, kube)

    async def main() -> None:
        stopped: list[bool] = []
        loop = asyncio.create_task(keep_verified(BODY, stopped, ctx, logger()))
        await attempts(server, lambda n: n >= 2, "refused, then (after the wait) in")
        ctx.registry.wake_users_of("Secret", "ns", "db")
        await attempts(server, lambda n: n >= 3, "the check of the Secret write")
        stopped.append(True)
        loop.cancel()

    asyncio.run(main())
    first, second, third = server.attempts[:3]
    assert second - first >= HOLD
    assert third - second < 5  # not held (the interval is 30 s): the write was checked
    assert "next attempt" not in kube.statuses[-1][1]["conditions"][0]["message"]


def logger() -> logging.Logger:
    return logging.getLogger("test")


def test_a_schema_deleted_while_it_waits_after_a_refusal_stops_at_once() -> None:
    server, kube = Server(Reason.AUTHENTICATION_FAILED), one_schema()
    ctx = context(server, kube)
    ctx.backoff = Backoff(first=60, cap=60)

    async def main() -> None:
        stopped: list[bool] = []
        loop = asyncio.create_task(keep_verified(BODY, stopped, ctx, logger()))
        await wait_for_async("the schema held after the refusal",
                             lambda: KEY in ctx.registry.schemas and ctx.registry.of(KEY).held,
                             timeout=5, interval=0.005)
        stopped.append(True)
        ctx.registry.forget(KEY)  # what releasing its gates does
        await asyncio.wait_for(loop, timeout=5)

    asyncio.run(main())
    assert len(server.attempts) == 1
