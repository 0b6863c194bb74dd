"""Connecting to PostgreSQL: the URL, the driver's parameters, the session and its
failures.

The backend's own URL is used as given (host, role, database and query options,
`options=-csearch_path=...` included); only the driver is switched to psycopg. Every
session is a fresh connection (a cached engine with `NullPool`), because a pooled
connection would go on reporting `Verified` after the password was rotated or the
server moved, which is exactly what must be seen. Failures leave as `ConnectionFailed`
or `InvalidDatabaseUrl`, in the user's words and never with the password.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo
from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import NullPool

from schemagate.core.tenancy import limits
from schemagate.core.tenancy import scrub as scrubbing
from schemagate.core.wire.reasons import Reason
from schemagate.postgres.deadlines import (
    Silence,
    begin,
    guarded_connect,
    session_budget,
    whole_seconds,
)

DRIVER = "postgresql+psycopg"
#: TCP keepalives and TCP_USER_TIMEOUT (libpq's names): a peer gone from the network is
#: noticed by the kernel within about 10 s even mid-read. The URL's own values win.
SOCKET_TIMEOUTS = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2,
                   "keepalives_count": 3, "tcp_user_timeout": 10_000}

# The server's own words for refusing a role (libpq reports no SQLSTATE for them).
_AUTH_REFUSED = re.compile(
    r"authentication failed|no password supplied|pg_hba\.conf|role \".*\" does not exist",
    re.IGNORECASE)
_BAD_OPTION = re.compile(r"invalid \S+ value|invalid connection option|invalid port",
                         re.IGNORECASE)


class DatabaseError(Exception):
    """Something of the PostgreSQL edge failed; the text never holds the password."""


class InvalidDatabaseUrl(DatabaseError, ValueError):
    """The URL cannot be used as a PostgreSQL URL; the text never holds the password."""


class ConnectionFailed(DatabaseError):
    """The database could not be read. `reason` is `DatabaseUnreachable` or
    `AuthenticationFailed`; the text says why and never holds the password."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def parse_url(url: str) -> URL:
    """The backend's URL with the psycopg driver, its own settings kept.

    Accepts `postgres://`, `postgresql://` and `postgresql+<driver>://`; raises
    `InvalidDatabaseUrl` otherwise.
    """
    text = url.strip()
    if not text:
        raise InvalidDatabaseUrl("the URL is empty")
    try:
        parsed = make_url(text)
    except (ArgumentError, ValueError) as exc:
        detail = "the port is not a number" if isinstance(exc, ValueError) else "not a URL"
        raise InvalidDatabaseUrl(
            f"{detail}; expected postgresql://user:password@host:port/database") from None
    backend = parsed.drivername.partition("+")[0]
    if backend not in ("postgres", "postgresql"):
        raise InvalidDatabaseUrl(
            f"{backend}:// is not a PostgreSQL URL; expected postgresql://...") from None
    if parsed.host and "@" in parsed.host:
        raise InvalidDatabaseUrl(
            "the host part contains '@'; percent-encode '@' in the password as %40") from None
    parsed = parsed.set(drivername=DRIVER)
    try:
        params = connect_params(parsed, 2)
        make_conninfo("", **params)
    except psycopg.ProgrammingError as exc:
        raise InvalidDatabaseUrl(scrub(one_line(exc), text, parsed)) from None
    if (too_many := limits.too_many_hosts(_host_count(params))) is not None:
        raise InvalidDatabaseUrl(f"{too_many}; each is tried within the same deadline")
    return parsed


def _host_count(params: dict[str, Any]) -> int:
    """The hosts libpq would try, as the driver's parameters list them (comma-separated
    `host` or `hostaddr`, however the URL spelt them)."""
    return max(len(str(params.get(key) or "").split(",")) for key in ("host", "hostaddr"))


def url_hosts(url: str) -> list[str | None]:
    """The hosts the URL connects to, as libpq reads what psycopg is given: each `host`
    (the URL's, or its `host=` option, which wins; comma-separated for several), or its
    `hostaddr` where one is given (libpq then connects to that address, and the name only
    serves authentication); None: the local socket. Raises `InvalidDatabaseUrl` as
    `parse_url` does."""
    params = connect_params(parse_url(url), 2)
    hosts, addresses = _listed(params.get("host")), _listed(params.get("hostaddr"))
    return [address or host for host, address in itertools.zip_longest(hosts, addresses)]


def _listed(value: object) -> list[str | None]:
    return [h.strip() or None for h in str(value).split(",")] if value else [None]


def server_of(url: str) -> str:
    """The server a URL reaches ("host:port", or the local socket), for the caller's
    per-server bounds; an unusable URL is its own server."""
    try:
        target = parse_url(url)
    except InvalidDatabaseUrl:
        return "(invalid URL)"
    host = target.host or query_value(target, "host") or "local socket"
    return f"{host}:{target.port or query_value(target, 'port') or 5432}"


def scrub(text: str, url: str, parsed: URL | None = None) -> str:
    """`text` without the password of `url`, in any spelling a driver might echo, and
    without any other URL password or DSN password (`schemagate.core.tenancy.scrub`)."""
    passwords = [] if parsed is None else [parsed.password, query_value(parsed, "password")]
    return scrubbing.scrub(text, url, *(p for p in passwords if isinstance(p, str) and p))


# Connections.

@dataclass
class Server:
    """A cached engine for one URL (for the dialect's one-time setup queries; NullPool
    still opens a fresh connection per check, see the module's docstring), and whether
    the role may read `pg_control_system()`, learnt on the first check."""

    engine: Engine
    control_readable: bool | None = None


@lru_cache(maxsize=32)
def server_for(url: URL, connect_timeout: int) -> Server:
    engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT",
                           connect_args=own_params(url, connect_timeout))
    event.listen(engine, "do_connect", guarded_connect)
    return Server(engine)


@contextlib.contextmanager
def session(server: Server, url: str, target: URL, connect_timeout: float,
            query_timeout: float | None = None) -> Iterator[Connection]:
    """A fresh connection in a read-only transaction whose statements the server cancels
    after `query_timeout` (default: `connect_timeout`), and whose socket is shut down if
    the server has said nothing by the session's wall-clock deadline; driver errors leave
    as `ConnectionFailed` (or `InvalidDatabaseUrl`), without the password."""
    timeout = connect_timeout if query_timeout is None else query_timeout
    with Silence(session_budget(connect_timeout, timeout)) as silence:
        try:
            conn = server.engine.connect()
        except DBAPIError as exc:
            if silence.fired:
                raise _silent(silence, target) from None
            raise connection_failure(exc, url, target, connect_timeout) from None
        try:
            with conn:
                conn.info["statement_timeout"] = timeout
                begin(conn, timeout)
                yield conn
        except DBAPIError as exc:
            if silence.fired:
                raise _silent(silence, target) from None
            raise query_failure(exc, url, target, timeout) from None


def _silent(silence: Silence, target: URL) -> ConnectionFailed:
    return ConnectionFailed(Reason.DATABASE_UNREACHABLE,
                            f"connected to {endpoint(target)} but no answer within "
                            f"{silence.seconds:g} s: the server stopped answering (frozen, "
                            "or a proxy in between stalled); the connection was closed")


def own_params(url: URL, connect_timeout: int) -> dict[str, Any]:
    """What we add to the backend's settings: a bound on connecting, and a name in
    pg_stat_activity when the URL gives none. A shorter `connect_timeout` in the URL
    stays; nothing else of the URL is overridden."""
    own = query_value(url, "connect_timeout")
    with contextlib.suppress(ValueError):
        if own is not None and 0 < float(own) < connect_timeout:
            connect_timeout = whole_seconds(float(own))
    sockets = {k: v for k, v in SOCKET_TIMEOUTS.items() if query_value(url, k) is None}
    return {**sockets, "connect_timeout": connect_timeout,
            "fallback_application_name": "schemagate"}


def connect_params(url: URL, connect_timeout: int) -> dict[str, Any]:
    """psycopg's keyword arguments for `url`, as SQLAlchemy's dialect builds them."""
    _, params = url.get_dialect()().create_connect_args(url)
    return {**params, **own_params(url, connect_timeout)}


def query_value(url: URL, key: str) -> str | None:
    value = url.query.get(key)
    if isinstance(value, tuple):
        return value[-1] if value else None
    return value


# Failures, in the user's words and without the password.

def connection_failure(exc: DBAPIError, url: str, target: URL,
                       connect_timeout: float) -> Exception:
    detail = scrub(driver_text(exc), url, target)
    if isinstance(exc.orig, psycopg.ProgrammingError) or _BAD_OPTION.search(detail):
        return InvalidDatabaseUrl(detail)
    who = f"{endpoint(target)} as {target.username or 'the default role'}"
    if getattr(exc.orig, "sqlstate", None) in ("28P01", "28000") or _AUTH_REFUSED.search(detail):
        return ConnectionFailed(Reason.AUTHENTICATION_FAILED,
                                f"{who}: the server refused the credentials ({detail}); "
                                "check the user and password in the URL")
    if "timeout" in detail.lower():
        detail += f" (after {whole_seconds(connect_timeout)} s)"
    return ConnectionFailed(Reason.DATABASE_UNREACHABLE, f"cannot connect to {who}: {detail}")


def query_failure(exc: DBAPIError, url: str, target: URL, timeout: float) -> ConnectionFailed:
    detail = scrub(driver_text(exc), url, target)
    if isinstance(exc.orig, psycopg.errors.QueryCanceled):
        detail = f"no answer within {timeout:g} s, cancelled (a lock on the version table?)"
    return ConnectionFailed(Reason.DATABASE_UNREACHABLE,
                            f"connected to {endpoint(target)} but the check failed: {detail}")


def endpoint(url: URL) -> str:
    host = url.host or query_value(url, "host") or "the local socket"
    port = f":{url.port}" if url.port else ""
    return f"database {url.database or '(default)'} on {host}{port}"


def driver_text(exc: DBAPIError) -> str:
    return one_line(exc.orig) if exc.orig is not None else type(exc).__name__


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text.removeprefix("connection failed: ").removeprefix("connection is bad: ")
