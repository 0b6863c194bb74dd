"""Deadlines for a PostgreSQL session, whatever the server or the network does.

libpq's connect_timeout bounds the handshake, a transaction-local statement_timeout
bounds each statement on a server that still works, keepalives and TCP_USER_TIMEOUT
bound a peer that left the network. What none of them bounds is a server that accepted,
authenticated and then froze: its kernel still acknowledges every packet. `Silence`
shuts that socket down from a timer thread at the session's wall-clock deadline, which
wakes the blocked read at once; a cancel request would need a new connection to the
same frozen server. `connect_within` makes all the URL's hosts share one deadline.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
import time
from typing import Any

import psycopg
from psycopg.conninfo import (
    conninfo_attempts,
    conninfo_to_dict,
    make_conninfo,
    timeout_from_conninfo,
)
from sqlalchemy.engine import Connection

#: After the statement timeout, how long a server may take to say so before its socket is
#: shut down: a frozen server (SIGSTOP, a proxy that stopped forwarding) never says anything.
SILENCE_GRACE = 1.0


def whole_seconds(seconds: float) -> int:
    return max(2, math.ceil(seconds))


def session_budget(connect_timeout: float, query_timeout: float) -> float:
    return whole_seconds(connect_timeout) + query_timeout + SILENCE_GRACE


class Silence:
    """Shuts down the socket of the connection attached to it when `seconds` have passed
    since it was armed; `fired` says it did. It holds a duplicate of the socket until it
    is disarmed, so the number it acts on is never one reused by another connection."""

    _current = threading.local()

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.fired = False
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    @classmethod
    def current(cls) -> Silence | None:
        silence: Silence | None = getattr(cls._current, "silence", None)
        return silence

    def attach(self, connection: psycopg.Connection[Any]) -> None:
        with self._lock:
            with contextlib.suppress(OSError, psycopg.Error):
                self._sock = socket.socket(fileno=os.dup(connection.pgconn.socket))
            if self.fired:
                self._shut_down()

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            self._shut_down()

    def _shut_down(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> Silence:
        self._current.silence = self
        self._timer.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._timer.cancel()
        self._current.silence = None
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def _attempts_within(params: dict[str, Any], seconds: float) -> list[dict[str, Any]]:
    """The connection attempts of `params` (each host's addresses), its host names looked
    up within `seconds`: a name server that never answers would otherwise hold the worker
    for the resolver's own timeouts, once per host. A lookup not done by then goes on in
    its own thread until the resolver gives up; nothing waits for it."""
    done = threading.Event()
    found: list[list[dict[str, Any]] | psycopg.Error] = []

    def look_up() -> None:
        try:
            found.append(conninfo_attempts(params))
        except psycopg.Error as exc:
            found.append(exc)
        finally:
            done.set()

    threading.Thread(target=look_up, name="schemagate-resolve", daemon=True).start()
    if not done.wait(seconds):
        raise psycopg.errors.ConnectionTimeout(
            f"connection timeout expired: the URL's host names were not resolved within "
            f"{seconds:g} s")
    if isinstance(found[0], psycopg.Error):
        raise found[0]
    return found[0]


#: What `psycopg.connect` takes besides the connection string.
_CONNECTION_OPTIONS = frozenset({"autocommit", "prepare_threshold", "context", "row_factory",
                                 "cursor_factory"})


def guarded_connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any
                     ) -> psycopg.Connection[Any]:
    """SQLAlchemy's connect, within one deadline for all the URL's hosts, with the
    connection handed to the session's `Silence` before the dialect's first queries
    run on it."""
    # SQLAlchemy hands the same dict to every connect: read, never changed.
    options = {key: value for key, value in cparams.items() if key in _CONNECTION_OPTIONS}
    params = {key: value for key, value in cparams.items() if key not in _CONNECTION_OPTIONS}
    connection = connect_within(make_conninfo(*cargs, **params), **options)
    silence = Silence.current()
    if silence is not None:
        silence.attach(connection)
    return connection


def connect_within(conninfo: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """A connection to the first of the conninfo's hosts that answers, all of them tried
    within its `connect_timeout` in total. libpq, and psycopg after it, wait the whole
    `connect_timeout` for each host (and each address a name resolves to), so a URL
    naming several hosts that never answer would hold a worker that many times over:
    here the attempts share the one deadline, in whole seconds (libpq's unit), and none
    starts with less than libpq's minimum of 2 s left."""
    params = conninfo_to_dict(conninfo)
    seconds = timeout_from_conninfo(params)
    deadline = time.monotonic() + seconds
    failed: psycopg.OperationalError | None = None
    attempts = _attempts_within(params, seconds)
    for index, attempt in enumerate(attempts):
        # A quarter second of slack: setting up an attempt costs a little of its budget.
        left = math.floor(deadline - time.monotonic() + 0.25)
        if left < 2:
            raise psycopg.errors.ConnectionTimeout(
                f"connection timeout expired: {seconds} s for all the URL's hosts")
        # An equal share for each attempt still to make: a first host that never answers
        # leaves the next ones their turn.
        share = min(left, max(2, left // (len(attempts) - index)))
        try:
            return psycopg.connect(make_conninfo("", **{**attempt, "connect_timeout": share}),
                                   **kwargs)
        except psycopg.OperationalError as exc:
            failed = exc
    assert failed is not None  # conninfo_attempts raises rather than return no attempt
    raise failed


def begin(conn: Connection, statement_timeout: float) -> None:
    """A read-only transaction whose statements the server cancels after
    `statement_timeout`. Transaction-local: behind a pooler it never reaches another
    client's session, and poolers that refuse a startup option accept it."""
    conn.exec_driver_sql("BEGIN READ ONLY")
    conn.exec_driver_sql("SELECT pg_catalog.set_config('statement_timeout', %(t)s, true)",
                         {"t": f"{max(1, round(statement_timeout * 1000))}ms"})
