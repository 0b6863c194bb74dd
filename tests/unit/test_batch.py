"""Schemas on one database URL share a pass: one connection answers them all."""

import asyncio
import threading
from collections.abc import Sequence

import pytest

from schemagate.bulkhead import Bulkheads, NoAnswer
from schemagate.core.check.verdict import Requirement, Verdict
from schemagate.core.wire.reasons import Reason
from schemagate.postgres import catalog, connect
from schemagate.reconcile.batch import Batches
from tests.support.wait import wait_for_async


class Recorder:
    """Stands for `catalog.verify_many`: records each pass (one connection each)."""

    def __init__(self, fail: Exception | None = None,
                 hold: threading.Event | None = None) -> None:
        self.passes: list[tuple[str, int]] = []
        self.fail = fail
        self.hold = hold  # set: each pass runs until it is set, as a slow server answers

    def __call__(self, url: str, asked: Sequence[catalog.Asked], timeout: float
                 ) -> list[Verdict]:
        self.passes.append((url, len(asked)))
        if self.hold is not None:
            self.hold.wait(timeout=5)
        if self.fail is not None:
            raise self.fail
        return [Verdict(verified=True, reason=Reason.VERIFIED, message=r.schema)
                for r, _ in asked]


def test_asks_that_arrive_together_share_one_pass_per_url() -> None:
    recorder = Recorder()
    batches = Batches(run=recorder)

    async def main() -> list[Verdict]:
        asks = [batches.verify(url, Requirement(schema=f"s{i}", tables=("t",)), 5.0,
                                namespace="team")
                for i, url in enumerate(["a"] * 200 + ["b"] * 100)]
        return await asyncio.gather(*asks)

    verdicts = asyncio.run(main())
    assert sorted(recorder.passes) == [("a", 200), ("b", 100)]
    assert [v.message for v in verdicts[:3]] == ["s0", "s1", "s2"]  # each hears its own


def test_an_ask_during_a_pass_goes_in_the_next_one() -> None:
    answer = threading.Event()
    recorder = Recorder(hold=answer)
    batches = Batches(run=recorder)

    async def main() -> None:
        first = asyncio.create_task(batches.verify("a", Requirement(tables=("t",)), 5.0,
                                                   namespace="team"))
        await wait_for_async("the first pass under way", lambda: recorder.passes,
                             timeout=5, interval=0.005)
        second = asyncio.create_task(batches.verify("a", Requirement(tables=("t",)), 5.0,
                                                    namespace="team"))
        await asyncio.sleep(0)  # one turn of the loop: the second ask is in, the pass runs on
        answer.set()
        await asyncio.gather(first, second)

    asyncio.run(main())
    assert recorder.passes == [("a", 1), ("a", 1)]


def test_an_unusable_url_is_told_to_every_ask_of_the_pass() -> None:
    batches = Batches(run=Recorder(fail=connect.InvalidDatabaseUrl("not a URL")))

    async def main() -> list[BaseException | Verdict]:
        return await asyncio.gather(*(batches.verify("x", Requirement(tables=("t",)), 5.0,
                                                     namespace="team")
                                      for _ in range(3)), return_exceptions=True)

    results = asyncio.run(main())
    assert all(isinstance(r, connect.InvalidDatabaseUrl) for r in results)


@pytest.mark.parametrize("timeouts", [(5.0, 10.0)])
def test_another_connect_timeout_is_another_pass(timeouts: tuple[float, float]) -> None:
    recorder = Recorder()
    batches = Batches(run=recorder)

    async def main() -> None:
        await asyncio.gather(*(batches.verify("a", Requirement(tables=("t",)), t, namespace="team")
                               for t in timeouts))

    asyncio.run(main())
    assert len(recorder.passes) == 2


def test_a_pass_shared_by_two_namespaces_runs_on_the_share_of_either() -> None:
    release = threading.Event()
    recorder = Recorder()
    pools = Bulkheads(workers=8, per_namespace=1)
    batches = Batches(run=recorder, databases=pools)

    async def main() -> list[Verdict]:
        with pytest.raises(NoAnswer):  # namespace a's one slot: a call that hangs
            await pools.run("a", "elsewhere:5432", 0.05, release.wait)
        return await asyncio.gather(*(batches.verify("postgresql://db/app", Requirement(
            schema=ns, tables=("t",)), 5.0, namespace=ns) for ns in ("a", "b")))

    verdicts = asyncio.run(main())
    release.set()
    assert [v.message for v in verdicts] == ["a", "b"] and len(recorder.passes) == 1
