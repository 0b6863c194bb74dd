"""Blocking database work, shared fairly between namespaces: a sized pool of threads of
our own, a deadline on every call, and bounds on the calls in flight. A call is in
flight from the moment it gets its slot until its thread ends, abandoned or not.

- At most `per_namespace` calls of one namespace over every server, well below
  `workers`: the servers a namespace's URLs name (which its author chooses, as many as
  they like) hold only that namespace's share of the threads.
- At most `per_server` calls against one server, and never all of them for one
  namespace (at most `per_server - 1`): a server shared by several namespaces always
  has a slot another namespace can take.
- At most `workers` calls in all, one thread each: no call waits in the pool's queue.

Waiting calls are served in turns by namespace: the one with the fewest calls in flight
first, the one served longest ago among equals; within a namespace, its servers in turn,
each server's calls oldest first. A namespace whose calls hang thus
waits for its own slots and hears "no answer" naming its own backlog, while another
namespace's call starts at once. A call past its deadline is abandoned, not cancelled
(a thread cannot be): it keeps its slots until its thread ends, which the database
edge's own deadlines bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

#: Threads for database work, over every server and namespace.
WORKERS = 32
#: Calls in flight against one server (its checks and migrations together).
PER_SERVER = 4
#: Calls in flight of one namespace, over every server: a quarter of the threads.
PER_NAMESPACE = WORKERS // 4

_turn = itertools.count()


class NoAnswer(Exception):
    """The call did not return within its deadline; the text says why, in the user's words."""


@dataclass(eq=False)
class _Waiting:
    """A call waiting for its slots. A shared pass serves schemas of several namespaces
    (they share a URL, so a Secret): it may take a slot of any of them."""

    namespaces: tuple[str, ...]
    server: str
    granted: asyncio.Future[str]  # the namespace whose slot it got


@dataclass
class _Queue:
    """One namespace's waiting calls, by server (in turn), each server's oldest first."""

    servers: OrderedDict[str, OrderedDict[_Waiting, None]] = field(default_factory=OrderedDict)
    #: When it was last served, for turns among namespaces with as many calls in flight.
    served: int = -1


def _add(counts: dict[Any, int], key: Any, by: int) -> None:
    """Counts that drop their key at zero: servers and namespaces come and go."""
    counts[key] = counts.get(key, 0) + by
    if not counts[key]:
        del counts[key]


class Bulkheads:
    def __init__(self, workers: int = WORKERS, per_server: int = PER_SERVER,
                 per_namespace: int | None = None) -> None:
        self.workers, self.per_server = workers, per_server
        self.per_namespace = per_namespace or max(1, workers // 4)
        self.per_server_namespace = max(1, per_server - 1)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="schemagate-db")
        #: Calls whose thread has not ended yet, abandoned ones included, by server...
        self.in_flight: dict[str, int] = {}
        #: ... by namespace, and by (server, namespace).
        self.in_flight_of: dict[str, int] = {}
        self._pairs: dict[tuple[str, str], int] = {}
        self._busy = 0
        self._queues: dict[str, _Queue] = {}
        #: When a call last returned in time (monotonic), for the liveness probe.
        self.last_return = time.monotonic()

    async def run(self, namespaces: str | Collection[str], server: str, deadline: float,
                  call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`call(*args, **kwargs)` in a thread of the pool, once `server` and one of
        `namespaces` (whose schemas the call serves) have a free slot; raises `NoAnswer`
        when that has not returned within `deadline` seconds."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        names = (namespaces,) if isinstance(namespaces, str) else tuple(sorted(set(namespaces)))
        namespace = await self._slot(names, server, deadline)
        try:
            future = self._pool.submit(functools.partial(call, *args, **kwargs))
        except BaseException:
            self._ended(namespace, server)
            raise

        def ended(_: Future[T]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nothing waits
                loop.call_soon_threadsafe(self._ended, namespace, server)

        future.add_done_callback(ended)
        remaining = max(0.0, deadline - (loop.time() - started))
        try:
            result = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)),
                                            remaining)
        except TimeoutError:
            raise NoAnswer(f"no answer within {deadline:g} s from {server}") from None
        self.last_return = time.monotonic()
        return result

    async def _slot(self, names: tuple[str, ...], server: str, deadline: float) -> str:
        waiting = _Waiting(names, server, asyncio.get_running_loop().create_future())
        for namespace in names:
            queue = self._queues.setdefault(namespace, _Queue())
            queue.servers.setdefault(server, OrderedDict())[waiting] = None
        self._serve()
        try:
            await asyncio.wait((waiting.granted,), timeout=deadline)
        except BaseException:  # cancelled: a slot given meanwhile goes back
            if waiting.granted.done() and not waiting.granted.cancelled():
                self._ended(waiting.granted.result(), server)
            self._withdraw(waiting)
            raise
        if not waiting.granted.done():
            self._withdraw(waiting)
            raise NoAnswer(f"no answer within {deadline:g} s: {self._why_waiting(waiting)}")
        return waiting.granted.result()

    def _fits(self, namespace: str, server: str) -> bool:
        return (self.in_flight_of.get(namespace, 0) < self.per_namespace
                and self.in_flight.get(server, 0) < self.per_server
                and self._pairs.get((server, namespace), 0) < self.per_server_namespace)

    def _serve(self) -> None:
        """Give free slots to waiting calls, in turns by namespace. Each turn costs the
        number of namespaces waiting, not of calls: a namespace at its share is passed
        over at once, and one below it finds a server with room among the few it
        cannot use (full, or holding its most there)."""
        while self._queues and self._busy < self.workers:
            turns = sorted((self.in_flight_of.get(ns, 0), queue.served, ns)
                           for ns, queue in self._queues.items()
                           if self.in_flight_of.get(ns, 0) < self.per_namespace)
            chosen = next(((ns, server, calls) for _, _, ns in turns
                           for server, calls in self._queues[ns].servers.items()
                           if self._fits(ns, server)), None)
            if chosen is None:
                return
            namespace, server, calls = chosen
            waiting = next(iter(calls))
            self._dequeue(waiting)
            self._count(namespace, server, 1)
            waiting.granted.set_result(namespace)
            if (queue := self._queues.get(namespace)) is not None:
                queue.served = next(_turn)
                if server in queue.servers:
                    queue.servers.move_to_end(server)

    def _withdraw(self, waiting: _Waiting) -> None:
        """The caller gave up (its deadline) or was cancelled."""
        self._dequeue(waiting)
        waiting.granted.cancel()

    def _dequeue(self, waiting: _Waiting) -> None:
        for namespace in waiting.namespaces:
            queue = self._queues.get(namespace)
            calls = queue.servers.get(waiting.server) if queue else None
            if queue is None or calls is None:
                continue
            calls.pop(waiting, None)
            if not calls:
                del queue.servers[waiting.server]
            if not queue.servers:
                del self._queues[namespace]

    def _count(self, namespace: str, server: str, by: int) -> None:
        self._busy += by
        _add(self.in_flight, server, by)
        _add(self.in_flight_of, namespace, by)
        _add(self._pairs, (server, namespace), by)

    def _ended(self, namespace: str, server: str) -> None:
        self._count(namespace, server, -1)
        self._serve()

    def _why_waiting(self, waiting: _Waiting) -> str:
        names, server = waiting.namespaces, waiting.server
        who = (f"namespace {names[0]} already has" if len(names) == 1
               else f"namespaces {', '.join(names)} each already have")
        if all(self.in_flight_of.get(ns, 0) >= self.per_namespace for ns in names):
            return (f"{who} {self.per_namespace} database calls in flight, the most one "
                    "namespace may have (its other checks, abandoned ones still running "
                    "included); this one waited for them")
        if self.in_flight.get(server, 0) >= self.per_server:
            return (f"the {self.per_server} earlier calls to {server} are still waiting "
                    "for theirs")
        if all(self._pairs.get((server, ns), 0) >= self.per_server_namespace for ns in names):
            return (f"{who} {self.per_server_namespace} calls in flight to {server}, the "
                    "most one namespace may have there")
        return f"all {self.workers} database threads are busy"

    def shutdown(self) -> None:
        """Stop taking work; threads still running are left to end or die with the process."""
        self._pool.shutdown(wait=False, cancel_futures=True)
