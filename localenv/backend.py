"""The demo backend, `python /app/backend.py` in schemagate/backend:dev: a backend that
cannot start without its tables, as the incident's could not.

At start-up it connects with its own settings (DATABASE_URL, the env its pods get) and
looks its tables up where its queries would find them: unqualified, through the
connection's search_path. When any is missing it logs which, raises
DeterministicStartupError and exits 3, the code of a worker that failed to boot; the
kubelet then restarts it after a growing backoff (10 s, 20 s, 40 s ... 5 min). When
all are there it serves HTTP.

It runs in the image with only the standard library, SQLAlchemy and psycopg: it
imports nothing from this repository.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import sqlalchemy as sa

#: The tables the backend's code queries (those examples/incident/migrations creates).
TABLES = ("credit_transactions", "agent_executions", "subscriptions")
#: The code a worker that failed to boot exits with (gunicorn's WORKER_BOOT_ERROR).
STARTUP_ERROR_EXIT = 3
CONNECT_TIMEOUT_SECONDS = 5


class DeterministicStartupError(Exception):
    """The backend cannot start as the database is, and a restart will not change it."""


def say(message: str) -> None:
    print(f"backend: {message}", file=sys.stderr, flush=True)


def engine_for(url: str) -> sa.Engine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return sa.create_engine(url, poolclass=sa.pool.NullPool,
                            connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS})


def missing_tables(engine: sa.Engine) -> list[str]:
    lookup = sa.text("SELECT to_regclass(quote_ident(:name)) IS NULL")
    with engine.connect() as conn:
        return [name for name in TABLES if conn.execute(lookup, {"name": name}).scalar()]


def check_tables(url: str) -> None:
    engine = engine_for(url)
    where = (f"database {engine.url.database} on {engine.url.host} as "
             f"{engine.url.username}")  # never the password
    try:
        missing = missing_tables(engine)
    finally:
        engine.dispose()
    if missing:
        raise DeterministicStartupError(f"tables missing: {', '.join(missing)} ({where})")
    say(f"tables present: {', '.join(TABLES)} ({where})")


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        body = b"backend: serving\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Quiet: one line per request would drown the start-up lines."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8000, help="0: any free port")
    port = parser.parse_args(argv).port
    url = os.environ.get("DATABASE_URL")
    if not url:
        say("DATABASE_URL is not set")
        return 1
    try:
        check_tables(url)
    except DeterministicStartupError as exc:
        say(f"DeterministicStartupError: {exc}; exiting {STARTUP_ERROR_EXIT}")
        return STARTUP_ERROR_EXIT
    except sa.exc.OperationalError as exc:
        # psycopg's message names the host and the failure, never the password.
        say(f"cannot reach the database: {str(exc.orig).strip()[:500]}")
        return 1
    server = ThreadingHTTPServer(("", port), Hello)
    # A rollout's SIGTERM is a clean stop (exit 0), not a crash.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    say(f"serving on port {server.server_address[1]}")
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
