"""Fixtures shared by the tiers. `postgres` is a real server, never a mock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from localenv import postgres as local_postgres


@pytest.fixture(scope="session")
def postgres() -> Iterator[local_postgres.LocalPostgres]:
    """One embedded PostgreSQL for the session, on 127.0.0.1 with password auth."""
    with local_postgres.running() as server:
        yield server


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
