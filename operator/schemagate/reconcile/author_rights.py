"""Whether the admission policy binding that checks authors' rights is in force, looked
up through `kube` and kept a while: a thousand schemas that clone Deployments cost one
GET a minute, and a binding installed late is seen within seconds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

from schemagate import kube
from schemagate.core.tenancy import author_rights
from schemagate.core.tenancy.author_rights import Binding
from schemagate.core.wire.models import DatabaseSchemaSpec

#: Seconds a binding found in force is trusted before it is looked up again.
KEEP_ENFORCED = 60.0
#: Seconds a missing one is: the refusal lifts soon after the chart installs it.
KEEP_MISSING = 10.0

Read = Callable[[str], Mapping[str, Any] | None]


class AuthorRights:
    """`binding` None: the operator was told the cluster has no such policy."""

    def __init__(self, binding: str | None, read: Read | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.binding = binding
        self._read = read
        self._clock = clock
        self._known: tuple[Binding, float] | None = None
        self._reading: asyncio.Future[Binding] | None = None

    async def refusal(self, spec: DatabaseSchemaSpec) -> str | None:
        """Why this spec's borrowing modes may not run now, or None."""
        modes = author_rights.borrowing(spec)
        if not modes or self.binding is None:
            return None
        return author_rights.refusal(modes, self.binding, await self.state())

    async def state(self) -> Binding:
        if self._known is not None and self._clock() < self._known[1]:
            return self._known[0]
        if self._reading is None:  # schemas that ask together share one GET
            self._reading = asyncio.ensure_future(asyncio.to_thread(self._look_up))
            try:
                found = await asyncio.shield(self._reading)
            finally:
                self._reading = None
            keep = KEEP_ENFORCED if found is Binding.ENFORCED else KEEP_MISSING
            self._known = (found, self._clock() + keep)
            return found
        return await asyncio.shield(self._reading)

    def _look_up(self) -> Binding:
        assert self.binding is not None and self._read is not None
        try:
            return author_rights.state_of(self._read(self.binding))
        except kube.ApiError as exc:
            if exc.status == 403:
                return Binding.UNREADABLE
            raise  # the API server's trouble: the pass fails and is retried
