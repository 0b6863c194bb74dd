"""Blocking database work, isolated by server: a sized pool of threads of our own, at most
`per_server` calls at once against any one server, and a deadline on every call.

A server that stops answering can then hold only its own slots: the checks of every
other server start at once, and each of its own callers hears "no answer" at its
deadline, whether its call is stuck in a thread or still waiting for a slot. A call past
its deadline is abandoned, not cancelled (a thread cannot be): its slot comes back when
the thread ends, which the database edge's own deadlines bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

#: Threads for database work, over every server.
WORKERS = 32
#: Calls in flight against one server (its checks and migrations together).
PER_SERVER = 4


class NoAnswer(Exception):
    """The call did not return within its deadline; the text says why, in the user's words."""


class Bulkheads:
    def __init__(self, workers: int = WORKERS, per_server: int = PER_SERVER) -> None:
        self.workers, self.per_server = workers, per_server
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="schemagate-db")
        self._slots: dict[str, asyncio.Semaphore] = {}
        #: Calls whose thread has not ended yet, abandoned ones included, by server.
        self.in_flight: dict[str, int] = {}
        #: When a call last returned in time (monotonic), for the liveness probe.
        self.last_return = time.monotonic()

    async def run(self, server: str, deadline: float, call: Callable[..., T],
                  *args: Any, **kwargs: Any) -> T:
        """`call(*args, **kwargs)` in a thread of the pool, once `server` has a free slot;
        raises `NoAnswer` when that has not returned within `deadline` seconds."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        slots = self._slots.setdefault(server, asyncio.Semaphore(self.per_server))
        try:
            await asyncio.wait_for(slots.acquire(), deadline)
        except TimeoutError:
            raise NoAnswer(f"no answer within {deadline:g} s: the {self.per_server} earlier "
                           f"calls to {server} are still waiting for theirs") from None
        try:
            future = self._pool.submit(functools.partial(call, *args, **kwargs))
        except BaseException:
            slots.release()
            raise
        self.in_flight[server] = self.in_flight.get(server, 0) + 1

        def ended(_: Future[T]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nothing waits
                loop.call_soon_threadsafe(self._ended, server, slots)

        future.add_done_callback(ended)
        remaining = max(0.0, deadline - (loop.time() - started))
        try:
            result = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)),
                                            remaining)
        except TimeoutError:
            raise NoAnswer(f"no answer within {deadline:g} s from {server}") from None
        self.last_return = time.monotonic()
        return result

    def _ended(self, server: str, slots: asyncio.Semaphore) -> None:
        self.in_flight[server] -= 1
        slots.release()

    def shutdown(self) -> None:
        """Stop taking work; threads still running are left to end or die with the process."""
        self._pool.shutdown(wait=False, cancel_futures=True)
