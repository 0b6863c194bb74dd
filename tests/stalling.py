"""A TCP proxy in front of a real PostgreSQL that can stop answering, as a frozen server
or a stalled network path does: the connection stays open, every byte is accepted, and
nothing ever comes back.

`frozen` stops forwarding on every connection at once (and on new ones, after they have
authenticated). `Mode.AFTER_AUTH` forwards each connection until the server's first
ReadyForQuery, then stops: the client is connected and authenticated, and its first query
never returns. `Mode.SILENT` reaches no server at all: it accepts each connection and
every byte, and never sends one (an address that swallows the startup packet). URLs
through the proxy must say `sslmode=disable&gssencmode=disable`, so
the server's stream is plain protocol messages the proxy can read.
"""

from __future__ import annotations

import contextlib
import enum
import select
import socket
import threading
import time
from collections.abc import Iterator


class Mode(enum.Enum):
    FORWARD = "forward"        # a healthy path, until `freeze()`
    AFTER_AUTH = "after-auth"  # every connection freezes once it is ready for queries
    SILENT = "silent"          # accepts, reads, never answers (no server behind it)


#: What the URL must add so the proxy sees plain protocol messages.
PLAIN = "sslmode=disable&gssencmode=disable"


class StallingProxy:
    def __init__(self, upstream: tuple[str, int], mode: Mode = Mode.FORWARD) -> None:
        self.upstream = upstream
        self.mode = mode
        self._frozen = threading.Event()
        self._stop = threading.Event()
        # On the upstream's own address: on the cluster that is the host address, which
        # the operator accepts; a loopback URL is refused (only a pod's sidecar has it).
        self._listener = socket.create_server((upstream[0], 0), backlog=256)
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self.connections = 0
        #: Connections held once ready for queries: a check stuck in the database itself.
        self.stalled = 0
        #: When each connection was accepted (time.monotonic()), oldest first.
        self.accepted_at: list[float] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def freeze(self) -> None:
        self._frozen.set()

    def thaw(self) -> None:
        self._frozen.clear()

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            self.accepted_at.append(time.monotonic())
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        if self.mode is Mode.SILENT:
            self._swallow(client)
            return
        try:
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            client.close()
            return
        server.settimeout(None)
        with self._lock:
            self._sockets += [client, server]
        ready = ReadyForQuery()
        stalled = counted = False
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select([client, server], [], [], 0.1)
                holding = stalled or (self._frozen.is_set() and ready.seen)
                if holding and not counted:
                    counted = True
                    with self._lock:
                        self.stalled += 1
                if holding:
                    for sock in readable:  # accept every byte, answer none
                        if not sock.recv(65536):
                            return
                    continue
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (server if sock is client else client).sendall(data)
                    if sock is server and ready.feed(data) and self.mode is Mode.AFTER_AUTH:
                        stalled = True
        except OSError:
            return
        finally:
            client.close()
            server.close()

    def _swallow(self, client: socket.socket) -> None:
        with self._lock:
            self._sockets.append(client)
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select([client], [], [], 0.1)
                if readable and not client.recv(65536):
                    return
        except OSError:
            return
        finally:
            client.close()


class ReadyForQuery:
    """Follows the server's message stream (type byte, int32 length) for a 'Z'."""

    def __init__(self) -> None:
        self._buffer = b""
        self.seen = False

    def feed(self, data: bytes) -> bool:
        """True when `data` completed the first ReadyForQuery."""
        if self.seen:
            return False
        self._buffer += data
        while len(self._buffer) >= 5:
            length = int.from_bytes(self._buffer[1:5], "big")
            if len(self._buffer) < 1 + length:
                return False
            kind, self._buffer = self._buffer[:1], self._buffer[1 + length:]
            if kind == b"Z":
                self.seen = True
                return True
        return False


@contextlib.contextmanager
def stalling_proxy(host: str, port: int, mode: Mode = Mode.FORWARD
                   ) -> Iterator[StallingProxy]:
    proxy = StallingProxy((host, port), mode)
    try:
        yield proxy
    finally:
        proxy.close()
