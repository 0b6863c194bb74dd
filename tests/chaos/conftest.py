"""The chaos tier: faults beside healthy work, on the real node cluster, with the operator
as a local process. Each test asserts what a user sees (gates, status, the time things
take) while something is broken, and after it is mended."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from localenv import operator as local_operator
from localenv.cluster import Cluster
from localenv.postgres import LocalPostgres
from tests.cluster.scenario import Backend, Database
from tests.stalling import PLAIN, Mode, StallingProxy
from tests.support.wait import wait_for


class Operator:
    """The operator as a process of its own, which a test may kill and start again."""

    def __init__(self, cluster: Cluster, namespace: str, log_dir: Path) -> None:
        self.cluster, self.namespace, self.log_dir = cluster, namespace, log_dir
        self.process: local_operator.OperatorProcess | None = None

    def start(self) -> local_operator.OperatorProcess:
        self.process = local_operator.start(self.cluster.kubeconfig, [self.namespace],
                                            self.log_dir / "operator.log")
        return self.process

    def kill(self) -> None:
        assert self.process is not None
        self.process.stop(kill=True)

    def healthz(self) -> int:
        assert self.process is not None
        url = f"http://127.0.0.1:{self.process.liveness_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def log(self) -> str:
        path = self.log_dir / "operator.log"
        return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture
def chaos_operator(cluster: Cluster, namespace: str, tmp_path: Path, crd: None
                   ) -> Iterator[Operator]:
    """Not started: the test starts it when its scene is set, and may kill it."""
    running = Operator(cluster, namespace, tmp_path)
    yield running
    if running.process is not None and running.process.process.poll() is None:
        cluster.kubectl("-n", namespace, "delete", "dbschema", "--all", "--timeout=60s",
                        "--wait=false")
        try:
            wait_for("the DatabaseSchemas gone (their finalizers removed)",
                     lambda: cluster.kubectl("-n", namespace, "get", "dbschema", "-o",
                                             "name").stdout.split(),
                     lambda left: not left, timeout=60, interval=0.5)
        finally:
            running.process.stop()
    else:  # nothing will remove the finalizers: drop them, or the namespace stays
        names = cluster.kubectl("-n", namespace, "get", "dbschema", "-o", "name").stdout.split()
        for name in names:
            cluster.kubectl("-n", namespace, "patch", name, "--type=merge", "-p",
                            '{"metadata":{"finalizers":null}}')


@pytest.fixture
def stalled(postgres: LocalPostgres) -> Iterator[StallingProxy]:
    """The session's PostgreSQL behind a proxy whose every connection authenticates and
    then never hears another word."""
    proxy = StallingProxy((postgres.pod_host or postgres.host, postgres.port), Mode.AFTER_AUTH)
    yield proxy
    proxy.close()


@pytest.fixture
def path(postgres: LocalPostgres) -> Iterator[StallingProxy]:
    """The session's PostgreSQL behind a proxy that forwards until told to freeze."""
    proxy = StallingProxy((postgres.pod_host or postgres.host, postgres.port), Mode.FORWARD)
    yield proxy
    proxy.close()


def through(db: Database, proxy: StallingProxy) -> str:
    """The database's URL through `proxy` (the operator runs on the host)."""
    # At the cluster's host address, where the proxy listens: a loopback URL is refused
    # (from the operator's pod it is the operator itself).
    url = db.pg.url(database=db.name, user=db.user, password=db.password,
                    host=proxy.upstream[0])
    return url.replace(f":{db.pg.port}/", f":{proxy.port}/") + "?" + PLAIN


def superuser_sql(db: Database, sql: str, database: str | None = None) -> None:
    """`sql` as the superuser, in the database's own database by default: several
    statements at once, `%` as it is (no parameters, the simple protocol)."""
    with psycopg.connect(db.pg.url(database=database or db.name, driver="postgresql"),
                         autocommit=True) as conn:
        conn.execute(sql.encode())


def tables_exist(db: Database, tables: list[str]) -> None:
    for table in tables:
        db.execute(f'CREATE TABLE "{table}" (id int)')
        db.execute(f'ALTER TABLE "{table}" OWNER TO "{db.user}"')


def stamped(db: Database) -> None:
    """The version table at the examples' revision (3f2a9c)."""
    db.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
    db.execute(f'ALTER TABLE alembic_version OWNER TO "{db.user}"')
    db.execute("INSERT INTO alembic_version VALUES ('3f2a9c')")


def healthy(backend: Backend, db: Database, tables: list[str]) -> None:
    tables_exist(db, tables)
    stamped(db)
    backend.secret(db.url())


__all__ = ["Backend", "Database", "Operator", "healthy", "stamped", "superuser_sql",
           "tables_exist", "through"]
