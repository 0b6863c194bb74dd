"""Per-test roles and databases on the session's real PostgreSQL.

Every test gets its own role (with a password) and its own database, owned by that
role, with CONNECT revoked from PUBLIC: the search for missing tables in other
databases then sees only what the test itself set up.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import psycopg
import pytest

from localenv.postgres import LocalPostgres


@dataclass(frozen=True)
class Tenant:
    """A backend's corner of the server: `role` with `password`, owning `database`."""

    server: LocalPostgres
    suffix: str
    role: str
    password: str
    database: str

    def url(self, *, database: str | None = None, role: str | None = None,
            password: str | None = None, scheme: str = "postgresql+psycopg",
            query: str = "") -> str:
        pw = self.password if password is None else password
        url = (f"{scheme}://{quote(role or self.role, safe='')}:{quote(pw, safe='')}"
               f"@{self.server.host}:{self.server.port}/{database or self.database}")
        return f"{url}?{query}" if query else url

    def admin(self, sql: str, *, database: str | None = None) -> None:
        """Run `sql` as the superuser (setup and damage, never the check itself)."""
        admin_sql(self.server, sql, database=database or self.database)

    def add_database(self, name: str, *, owner: str | None = None) -> str:
        """Another database on the same server that only this tenant's roles may reach."""
        create_database(self.server, name, owner=owner or self.role)
        return name

    def add_role(self, name: str, password: str) -> str:
        admin_sql(self.server, f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
        admin_sql(self.server, f"GRANT CONNECT ON DATABASE {self.database} TO {name}")
        return name


def admin_sql(server: LocalPostgres, sql: str, *, database: str = "postgres") -> None:
    with psycopg.connect(server.url(database=database, driver="postgresql"),
                         autocommit=True) as conn:
        conn.execute(sql.encode())


def create_database(server: LocalPostgres, name: str, *, owner: str) -> None:
    admin_sql(server, f"CREATE DATABASE {name} OWNER {owner}")
    admin_sql(server, f"REVOKE CONNECT ON DATABASE {name} FROM PUBLIC")
    admin_sql(server, f"GRANT CONNECT ON DATABASE {name} TO {owner}")


def new_tenant(postgres: LocalPostgres) -> Tenant:
    suffix = uuid.uuid4().hex[:8]
    role, database = f"app_{suffix}", f"app_{suffix}"
    password = f"S3cret-{uuid.uuid4().hex}"
    admin_sql(postgres, f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    create_database(postgres, database, owner=role)
    return Tenant(server=postgres, suffix=suffix, role=role, password=password,
                  database=database)


@pytest.fixture
def tenant(postgres: LocalPostgres) -> Iterator[Tenant]:
    yield new_tenant(postgres)


@pytest.fixture
def other_tenant(postgres: LocalPostgres) -> Tenant:
    """A second tenant on the same server: another role, another database."""
    return new_tenant(postgres)
