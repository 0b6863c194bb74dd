"""Database work is shared fairly: a server whose calls never return holds only its own
slots, a namespace whose calls hang holds only its own share of the threads, every
caller hears "no answer" at its deadline, and other namespaces' calls run at once."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest

from schemagate.bulkhead import PER_SERVER, WORKERS, Bulkheads, NoAnswer
from tests.support.wait import wait_for_async


async def in_flight(what: str, count: Callable[[], int | None], expected: int) -> None:
    """Waits until `count` (calls holding slots; None: none) is `expected`: the calls
    started before the test goes on are then under way, not merely created."""
    await wait_for_async(what, lambda: count() or 0, lambda n: n == expected, timeout=5,
                         interval=0.001)


def test_a_stuck_server_holds_only_its_own_slots() -> None:
    release = threading.Event()

    async def scenario() -> tuple[float, list[str]]:
        pools = Bulkheads(workers=8, per_server=2)
        stuck = [asyncio.create_task(pools.run(f"team-{i % 5}", "frozen:5432", 1.0,
                                               release.wait))
                 for i in range(50)]
        await in_flight("frozen's two slots taken", lambda: pools.in_flight.get("frozen:5432"), 2)
        started = time.monotonic()
        answer = await pools.run("team-0", "healthy:5432", 1.0, lambda: "verified")
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


def test_a_namespace_with_32_hung_servers_cannot_delay_another_namespace() -> None:
    release = threading.Event()

    async def scenario() -> tuple[float, str, list[str]]:
        pools = Bulkheads()
        hostile = [asyncio.create_task(pools.run("hostile", f"10.0.0.{i}:5432", 0.5,
                                                 release.wait))
                   for i in range(WORKERS)]
        await in_flight("the hostile namespace's share taken",
                        lambda: pools.in_flight_of.get("hostile"), WORKERS // 4)
        started = time.monotonic()
        answer = await pools.run("victim", "db.victim:5432", 1.0, lambda: "verified")
        waited = time.monotonic() - started
        results = await asyncio.gather(*hostile, return_exceptions=True)
        release.set()
        return waited, answer, [str(r) for r in results]

    waited, answer, hostile = asyncio.run(scenario())
    assert answer == "verified" and waited < 0.1
    assert sum("no answer within 0.5 s from 10.0.0." in r for r in hostile) == WORKERS // 4
    # The rest waited for the hostile namespace's own slots, and were told so.
    own_backlog = [r for r in hostile if "namespace hostile already has 8 database calls "
                   "in flight" in r]
    assert len(own_backlog) == WORKERS - WORKERS // 4


def test_on_a_shared_server_another_namespace_gets_a_slot_while_one_has_many_waiting() -> None:
    release = threading.Event()

    async def scenario() -> tuple[float, list[str]]:
        pools = Bulkheads()
        busy = [asyncio.create_task(pools.run("busy", "shared:5432", 0.5, release.wait))
                for _ in range(20)]
        await in_flight("busy's slots on shared taken", lambda: pools.in_flight.get("shared:5432"),
                        PER_SERVER - 1)
        started = time.monotonic()
        await pools.run("quiet", "shared:5432", 1.0, lambda: None)
        waited = time.monotonic() - started
        results = await asyncio.gather(*busy, return_exceptions=True)
        release.set()
        return waited, [str(r) for r in results]

    waited, busy = asyncio.run(scenario())
    assert waited < 0.1
    assert sum("from shared:5432" in r for r in busy) == PER_SERVER - 1
    assert sum(f"already has {PER_SERVER - 1} calls in flight to shared:5432" in r
               for r in busy) == 20 - (PER_SERVER - 1)


def test_waiting_namespaces_take_turns_on_a_shared_server() -> None:
    gates = [threading.Event() for _ in range(PER_SERVER)]

    async def scenario() -> list[str]:
        pools = Bulkheads()
        started: list[str] = []  # namespaces of the waiting calls, as they start

        def waiter(namespace: str) -> None:
            started.append(namespace)

        holders = [asyncio.create_task(pools.run(ns, "shared:5432", 5.0, gate.wait))
                   for ns, gate in zip(["a", "a", "a", "c"], gates, strict=True)]
        await in_flight("every slot on shared taken", lambda: pools.in_flight.get("shared:5432"),
                        PER_SERVER)
        backlog = [asyncio.create_task(pools.run("a", "shared:5432", 5.0, waiter, "a"))
                   for _ in range(5)]
        await asyncio.sleep(0.01)
        late = asyncio.create_task(pools.run("b", "shared:5432", 5.0, waiter, "b"))
        await asyncio.sleep(0.01)
        gates[0].set()  # one of a's calls ends: b, with none there, goes before a's backlog
        await late
        for gate in gates:
            gate.set()
        await asyncio.gather(*holders, *backlog)
        return started

    started = asyncio.run(scenario())
    assert started[0] == "b" and started.count("a") == 5


def test_a_namespace_with_a_huge_backlog_costs_the_others_nothing_per_call() -> None:
    release = threading.Event()

    async def scenario() -> float:
        pools = Bulkheads()
        backlog = [asyncio.create_task(pools.run("hostile", f"10.0.{i // 250}.{i % 250}:5432",
                                                 60.0, release.wait))
                   for i in range(10_000)]
        await in_flight("the hostile namespace's share taken",
                        lambda: pools.in_flight_of.get("hostile"), pools.per_namespace)
        started = time.monotonic()
        await asyncio.gather(*(pools.run("victim", f"db{i % 20}:5432", 5.0, lambda: None)
                               for i in range(1_000)))
        took = time.monotonic() - started
        for task in backlog:
            task.cancel()
        release.set()
        await asyncio.gather(*backlog, return_exceptions=True)
        return took

    # Every slot given scans the namespaces waiting, not their calls: 1,000 calls beside
    # 10,000 waiting ones take well under a second (a scan of every call: about a minute).
    assert asyncio.run(scenario()) < 1.0


def test_an_abandoned_call_counts_against_its_namespace_until_its_thread_ends() -> None:
    release = threading.Event()

    async def scenario() -> str:
        pools = Bulkheads(workers=8, per_namespace=2)
        for server in ("one:5432", "two:5432"):
            with pytest.raises(NoAnswer):
                await pools.run("team", server, 0.05, release.wait)
        assert pools.in_flight_of["team"] == 2  # abandoned, still running
        with pytest.raises(NoAnswer, match="namespace team already has 2 database calls"):
            await pools.run("team", "three:5432", 0.1, lambda: "answered")
        assert await pools.run("other", "three:5432", 0.1, lambda: "answered") == "answered"
        release.set()
        await in_flight("team's abandoned calls ended", lambda: pools.in_flight_of.get("team"), 0)
        assert pools.in_flight == {}
        return await pools.run("team", "three:5432", 1.0, lambda: "answered")

    assert asyncio.run(scenario()) == "answered"


def test_a_shared_pass_takes_a_slot_of_any_namespace_it_serves() -> None:
    release = threading.Event()

    async def scenario() -> str:
        pools = Bulkheads(workers=8, per_namespace=1)
        with pytest.raises(NoAnswer):
            await pools.run("a", "one:5432", 0.05, release.wait)
        answer = await pools.run({"a", "b"}, "two:5432", 0.1, lambda: "answered")
        release.set()
        return answer

    assert asyncio.run(scenario()) == "answered"


def test_every_caller_hears_no_answer_at_its_deadline() -> None:
    release = threading.Event()

    async def scenario() -> float:
        pools = Bulkheads(workers=4, per_server=1)
        started = time.monotonic()
        with pytest.raises(NoAnswer):
            await pools.run("team", "frozen:5432", 0.3, release.wait)
        return time.monotonic() - started

    assert 0.25 < asyncio.run(scenario()) < 0.6
    release.set()


def test_a_caller_cancelled_while_waiting_leaves_no_slot_taken() -> None:
    release = threading.Event()

    async def scenario() -> str:
        pools = Bulkheads(workers=4, per_server=1)
        holder = asyncio.create_task(pools.run("team", "db:5432", 5.0, release.wait))
        waiter = asyncio.create_task(pools.run("team", "db:5432", 5.0, lambda: "never"))
        await in_flight("the holder's slot taken", lambda: pools.in_flight.get("db:5432"), 1)
        waiter.cancel()
        release.set()
        await holder
        return await pools.run("team", "db:5432", 1.0, lambda: "answered")

    assert asyncio.run(scenario()) == "answered"


def test_errors_of_the_call_reach_the_caller() -> None:
    def refuses() -> None:
        raise ValueError("refused")

    async def scenario() -> None:
        await Bulkheads().run("team", "db:5432", 1.0, refuses)

    with pytest.raises(ValueError, match="refused"):
        asyncio.run(scenario())
