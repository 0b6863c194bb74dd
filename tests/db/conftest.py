"""Per-test roles and databases on the session's real PostgreSQL (tests.support.database)."""

from __future__ import annotations

import pytest

from localenv.postgres import LocalPostgres
from tests.support.database import Tenant, new_tenant


@pytest.fixture
def tenant(postgres: LocalPostgres) -> Tenant:
    return new_tenant(postgres)


@pytest.fixture
def other_tenant(postgres: LocalPostgres) -> Tenant:
    """A second tenant on the same server: another role, another database."""
    return new_tenant(postgres)
