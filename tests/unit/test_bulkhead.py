"""Database work is isolated by server: a server whose calls never return holds only its
own slots, every caller hears "no answer" at its deadline, and other servers' calls run
at once."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from schemagate.bulkhead import Bulkheads, NoAnswer


def test_a_stuck_server_holds_only_its_own_slots() -> None:
    release = threading.Event()

    async def scenario() -> tuple[float, list[str]]:
        pools = Bulkheads(workers=8, per_server=2)
        stuck = [asyncio.create_task(pools.run("frozen:5432", 1.0, release.wait))
                 for _ in range(50)]
        await asyncio.sleep(0.05)
        started = time.monotonic()
        answer = await pools.run("healthy:5432", 1.0, lambda: "verified")
        healthy = time.monotonic() - started
        results = await asyncio.gather(*stuck, return_exceptions=True)
        release.set()
        return healthy, [str(r) for r in results] + [answer]

    healthy, results = asyncio.run(scenario())
    assert healthy < 0.1
    assert results[-1] == "verified"
    frozen = results[:-1]
    assert sum("no answer within 1 s from frozen:5432" in r for r in frozen) == 2
    assert sum("earlier calls to frozen:5432 are still waiting" in r for r in frozen) == 48


def test_every_caller_hears_no_answer_at_its_deadline() -> None:
    release = threading.Event()

    async def scenario() -> float:
        pools = Bulkheads(workers=4, per_server=1)
        started = time.monotonic()
        with pytest.raises(NoAnswer):
            await pools.run("frozen:5432", 0.3, release.wait)
        return time.monotonic() - started

    assert 0.25 < asyncio.run(scenario()) < 0.6
    release.set()


def test_a_slot_comes_back_when_the_abandoned_call_ends() -> None:
    release = threading.Event()

    async def scenario() -> str:
        pools = Bulkheads(workers=4, per_server=1)
        with pytest.raises(NoAnswer):
            await pools.run("slow:5432", 0.1, release.wait)
        assert pools.in_flight["slow:5432"] == 1
        release.set()
        await asyncio.sleep(0.1)
        assert pools.in_flight["slow:5432"] == 0
        return await pools.run("slow:5432", 1.0, lambda: "answered")

    assert asyncio.run(scenario()) == "answered"


def test_errors_of_the_call_reach_the_caller() -> None:
    def refuses() -> None:
        raise ValueError("refused")

    async def scenario() -> None:
        await Bulkheads().run("db:5432", 1.0, refuses)

    with pytest.raises(ValueError, match="refused"):
        asyncio.run(scenario())
