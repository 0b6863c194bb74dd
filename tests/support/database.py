"""A database of a test's own on the session's real PostgreSQL, never a mock.

`postgres` is one embedded server for the session. `new_tenant` gives a test a role
with a password and a database that role owns, with CONNECT revoked from PUBLIC: a
search for missing tables in other databases then sees only what the test set up.
`admin_sql` does what the test sets up or damages, as the superuser.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import psycopg
import pytest

from localenv import node as local_node
from localenv import postgres as local_postgres
from localenv.postgres import LocalPostgres


def _uses_cluster(item: pytest.Item) -> bool:
    return "cluster" in getattr(item, "fixturenames", ())


@pytest.fixture(scope="session")
def postgres(request: pytest.FixtureRequest) -> Iterator[LocalPostgres]:
    """One embedded PostgreSQL for the session, on 127.0.0.1 with password auth; when the
    session has cluster tests, also on the cluster's host address, where pods reach it
    (the cluster comes up first, so that address exists)."""
    if any(_uses_cluster(item) for item in request.session.items):
        cluster = request.getfixturevalue("cluster")
        with local_postgres.running(pod_host=cluster.host_address,
                                    pod_networks=local_node.CLIENT_NETWORKS) as server:
            yield server
    else:
        with local_postgres.running() as server:
            yield server


def admin_sql(server: LocalPostgres, sql: str, *, database: str = "postgres") -> None:
    """Run `sql` as the superuser (set-up and damage, never the check itself)."""
    with psycopg.connect(server.url(database=database, driver="postgresql"),
                         autocommit=True) as conn:
        conn.execute(sql.encode())


def create_database(server: LocalPostgres, name: str, *, owner: str) -> None:
    admin_sql(server, f"CREATE DATABASE {name} OWNER {owner}")
    admin_sql(server, f"REVOKE CONNECT ON DATABASE {name} FROM PUBLIC")
    admin_sql(server, f"GRANT CONNECT ON DATABASE {name} TO {owner}")


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
        """Run `sql` as the superuser in this tenant's database (or `database`)."""
        admin_sql(self.server, sql, database=database or self.database)

    def add_database(self, name: str, *, owner: str | None = None) -> str:
        """Another database on the same server that only this tenant's roles may reach."""
        create_database(self.server, name, owner=owner or self.role)
        return name

    def add_role(self, name: str, password: str) -> str:
        admin_sql(self.server, f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
        admin_sql(self.server, f"GRANT CONNECT ON DATABASE {self.database} TO {name}")
        return name


def new_tenant(server: LocalPostgres, *, role_prefix: str = "app") -> Tenant:
    """A new role (named `role_prefix`_ and a suffix) and the database it owns."""
    suffix = uuid.uuid4().hex[:8]
    role, database = f"{role_prefix}_{suffix}", f"app_{suffix}"
    password = f"S3cret-{uuid.uuid4().hex}"
    admin_sql(server, f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    create_database(server, database, owner=role)
    return Tenant(server=server, suffix=suffix, role=role, password=password,
                  database=database)
