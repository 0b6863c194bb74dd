"""Exactly one replica acts: it holds a `coordination.k8s.io` Lease, and ends its own
process when it cannot keep it (fencing). The others wait, answering their liveness
probe, and take the Lease over when it expires or is released.

Blocking code in threads of its own, before and beside Kopf's event loop; decisions in
`schemagate.core.leader`; the Lease API in `schemagate.kube`.
"""

from __future__ import annotations

import http.server
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from schemagate import kube
from schemagate.core.leader import (
    Action,
    LeaseRecord,
    LeaseSettings,
    decide,
    lease_spec,
    released_spec,
)

log = logging.getLogger("schemagate.leader")
#: The exit status of a leader that lost its Lease; the kubelet restarts it as a standby.
EXIT_LEASE_LOST = 75


def fence(reason: str) -> None:
    """Ends the process at once: another replica may take the Lease over any moment, and
    nothing of ours may write after that."""
    log.critical("leadership lost, exiting so that only one replica acts: %s", reason)
    logging.shutdown()
    os._exit(EXIT_LEASE_LOST)


class Elector:
    def __init__(self, api: kube.Kube, lease: LeaseSettings,
                 on_leading: Callable[[bool], None] = lambda _: None,
                 clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.api, self.lease, self.timing = api, lease, lease.timing
        self.on_leading, self.clock, self.now = on_leading, clock, now
        self._record: LeaseRecord | None = None
        self._seen: tuple[str | None, str | None, str | None] | None = None
        self._seen_since = clock()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    @property
    def _where(self) -> str:
        return f"{self.lease.namespace}/{self.lease.name}"

    def try_once(self) -> bool:
        """One look at the Lease; True when this process holds it afterwards."""
        timeout = self.timing.retry_period * 2
        raw = kube.read_lease(self.api, self.lease.namespace, self.lease.name, timeout)
        record = None if raw is None else LeaseRecord.from_json(raw)
        if record is None or record.seen != self._seen:
            self._seen, self._seen_since = (None if record is None else record.seen), self.clock()
        self._record = record
        action = decide(record, self.lease.identity, unchanged_for=self.clock() -
                        self._seen_since, timing=self.timing)
        if action is Action.WAIT:
            return False
        spec = lease_spec(record, self.lease.identity, self.timing, self.now())
        version = None if record is None else record.resource_version
        try:
            written = kube.write_lease(self.api, self.lease.namespace, self.lease.name, spec,
                                       version, timeout)
        except kube.Conflict:
            return False  # another replica was faster; look again next period
        self._record = LeaseRecord.from_json(written)
        if action is not Action.RENEW:
            previous = record.holder if record is not None else None
            log.info("took the Lease %s (previous holder: %s)", self._where,
                     previous or "none")
        return True

    def acquire(self) -> None:
        """Blocks until this process holds the Lease."""
        waiting_for: str | None = None
        while True:
            try:
                if self.try_once():
                    self.on_leading(True)
                    return
            except Exception as exc:  # noqa: BLE001 - the API server may be away; look again
                log.warning("could not read the Lease %s: %s", self._where, exc)
            holder = self._record.holder if self._record else None
            if holder != waiting_for:
                log.info("standing by: the Lease %s is held by %s", self._where, holder)
                waiting_for = holder
            time.sleep(self.timing.retry_period)

    def keep(self, lost: Callable[[str], None] = fence) -> None:
        """Renews the Lease every retry period in a thread; calls `lost` (by default,
        ends the process) when it is held by another or could not be renewed in time."""
        def renew() -> None:
            renewed = self.clock()
            while not self._stop.wait(self.timing.retry_period):
                try:
                    if self.try_once():
                        renewed = self.clock()
                        continue
                    holder = self._record.holder if self._record else None
                    if holder not in (None, self.lease.identity):
                        lost(f"the Lease {self._where} is now held by {holder}")
                        return
                except Exception as exc:  # noqa: BLE001 - retried until the deadline
                    log.warning("could not renew the Lease %s: %s", self._where, exc)
                if self.clock() - renewed > self.timing.renew_deadline:
                    lost(f"the Lease {self._where} could not be renewed for "
                         f"{self.timing.renew_deadline:g}s")
                    return

        self._renewer = threading.Thread(target=renew, name="lease-renewer", daemon=True)
        self._renewer.start()

    def release(self) -> None:
        """On a clean shutdown: stop renewing and hand the Lease over at once."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=self.timing.retry_period * 3)
        record = self._record
        if record is None or record.holder != self.lease.identity:
            return
        try:
            kube.write_lease(self.api, self.lease.namespace, self.lease.name,
                             released_spec(record, self.now()), record.resource_version,
                             self.timing.retry_period * 2)
            log.info("released the Lease %s", self._where)
        except Exception as exc:  # noqa: BLE001 - it expires by itself
            log.warning("could not release the Lease %s (it expires by itself): %s",
                        self._where, exc)
        self.on_leading(False)


@contextmanager
def standby_liveness(port: int | None) -> Iterator[None]:
    """Answers /healthz while this replica waits: standing by is healthy. Kopf serves
    the endpoint once this process leads."""
    if port is None:
        yield
        return

    class Healthz(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            self.send_response(200 if self.path.startswith("/healthz") else 404)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"standing by\n")

        def log_message(self, format: str, *args: object) -> None:
            pass

    http.server.ThreadingHTTPServer.allow_reuse_address = True
    server = http.server.ThreadingHTTPServer(("0.0.0.0", port), Healthz)
    thread = threading.Thread(target=server.serve_forever, name="standby-healthz", daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
