"""Checks of the schemas that share a database URL, run together.

Every schema's loop asks for its own check; the asks for one URL (and connect timeout)
that arrive together are answered by one pass: one fresh connection, one catalog
statement per distinct requirement (`catalog.verify_many`). Idle loops wake on the same
tick (`schedule.aligned`), so at idle a database sees one connection per interval, not
one per schema. A pass collects asks until none has come for `QUIET` seconds, for at
most `GATHER_AT_MOST`; asks that arrive while a pass runs go in the next. Schemas of
several namespaces that share a URL share its pass too; it takes a database slot of any
of those namespaces (`bulkhead`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from schemagate.bulkhead import Bulkheads
from schemagate.core.check.verdict import Requirement, Verdict
from schemagate.postgres import catalog, connect, search

#: A pass starts once no ask has come for this long (seconds)...
QUIET = 0.02
#: ... or this long after its first ask, whichever is sooner.
GATHER_AT_MOST = 0.5

#: (url, asked, connect_timeout) -> one verdict per ask; blocking, run in a thread.
RunPass = Callable[[str, Sequence[catalog.Asked], float], list[Verdict]]
#: One schema's ask: its question, its namespace, where its verdict goes.
_Ask = tuple[catalog.Asked, str, asyncio.Future[Verdict]]


def _verify_many(url: str, asked: Sequence[catalog.Asked], timeout: float) -> list[Verdict]:
    return catalog.verify_many(url, asked, connect_timeout=timeout)


@dataclass
class Batches:
    run: RunPass = _verify_many
    quiet: float = QUIET
    gather_at_most: float = GATHER_AT_MOST
    #: Where the passes run: the server's bulkhead, with the check's deadline (None: a
    #: thread of the loop's default pool, no deadline; the unit tests).
    databases: Bulkheads | None = None
    #: Passes run so far (each one connection, when the database answers).
    passes: int = 0
    _pending: dict[tuple[str, float], list[_Ask]] = field(default_factory=dict)
    _draining: dict[tuple[str, float], asyncio.Task[None]] = field(default_factory=dict)

    async def verify(self, url: str, requirement: Requirement, connect_timeout: float,
                     known: search.OtherDatabases | None = None, *, namespace: str
                     ) -> Verdict:
        """The verdict of the next pass over `url` for `requirement` of a schema in
        `namespace`; raises what `catalog.verify_many` raises (`InvalidDatabaseUrl`),
        and `NoAnswer`."""
        key = (url, connect_timeout)
        answer: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(key, []).append(((requirement, known), namespace, answer))
        if key not in self._draining:
            self._draining[key] = asyncio.create_task(self._drain(key))
        return await answer

    async def _run(self, key: tuple[str, float], batch: list[_Ask]) -> list[Verdict]:
        url, timeout = key
        asked = [a for a, _, _ in batch]
        if self.databases is None:
            return await asyncio.to_thread(self.run, url, asked, timeout)
        return await self.databases.run({namespace for _, namespace, _ in batch},
                                        connect.server_of(url), catalog.check_deadline(timeout),
                                        self.run, url, asked, timeout)

    async def _drain(self, key: tuple[str, float]) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending.get(key):
                first = loop.time()
                while True:
                    asks = len(self._pending[key])
                    await asyncio.sleep(self.quiet)
                    if len(self._pending[key]) == asks or \
                            loop.time() - first >= self.gather_at_most:
                        break
                batch = self._pending.pop(key)
                self.passes += 1
                try:
                    verdicts = await self._run(key, batch)
                except Exception as exc:  # noqa: BLE001 - every ask hears it
                    for _, _, answer in batch:
                        if not answer.done():
                            answer.set_exception(exc)
                    continue
                except BaseException:  # cancelled while the pass ran
                    for _, _, answer in batch:
                        answer.cancel()
                    raise
                for (_, _, answer), verdict in zip(batch, verdicts, strict=True):
                    if not answer.done():
                        answer.set_result(verdict)
        finally:
            del self._draining[key]
            for _, _, answer in self._pending.pop(key, []):  # cancelled midway: nobody waits
                answer.cancel()
