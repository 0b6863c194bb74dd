"""`run: Alembic`: the revision files of a ConfigMap run in a Job of the operator's own
image (`schemagate:dev`, a real container on the node), never in the operator. The
operator judges the run by the database; a revision that exits, hangs, raises or
reaches for a Secret fails its own Job, and no other schema notices."""

from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa

from localenv import operator as local_operator
from localenv.cluster import Cluster
from tests.cluster.scenario import MIGRATIONS, Backend, Database
from tests.support.wait import wait_for

FIRST = (MIGRATIONS / "versions" / "3f2a9c_billing_and_agents.py").read_text()
SECOND = '''"""invoices"""
import sqlalchemy as sa
from alembic import op

revision = "7b1e44"
down_revision = "3f2a9c"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SELECT pg_sleep(%(sleep)s)")
    op.create_table("invoices", sa.Column("id", sa.BigInteger, primary_key=True))


def downgrade() -> None:
    op.drop_table("invoices")
'''
MIGRATION_LABEL = "schemagate.io/migration-of"


def config_map(backend: Backend, files: dict[str, str], name: str = "backend-migrations"
               ) -> None:
    backend.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                   "data": files})


def alembic_schema(backend: Backend, name: str = "backend-schema",
                   tables: list[str] | None = None, config: str = "backend-migrations",
                   **migrations: Any) -> None:
    extra: dict[str, Any] = {"tables": tables} if tables else {}
    alembic = {"configMapRef": {"name": config}}
    if "activeDeadlineSeconds" in migrations:
        alembic["activeDeadlineSeconds"] = migrations.pop("activeDeadlineSeconds")
    backend.schema(name=name, migrations={"run": "Alembic", "alembic": alembic, **migrations},
                   **extra)


def migration(backend: Backend, name: str = "backend-schema") -> dict[str, Any]:
    return dict(backend.get("dbschema", name).get("status", {}).get("migration") or {})


def migration_pods(backend: Backend, name: str = "backend-schema") -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(backend.kubectl(
        "get", "pods", "-l", f"{MIGRATION_LABEL}={name}", "-o", "json"))["items"]
    return items


def test_scripts_run_in_a_job_without_rights_and_the_gate_opens(
        backend: Backend, db: Database, operator: local_operator.OperatorProcess) -> None:
    backend.secret(db.url())
    config_map(backend, {"3f2a9c_billing_and_agents.py": FIRST, "README.md": "notes"})
    alembic_schema(backend)
    backend.deployment(replicas=1)
    verified = backend.wait_reason("Verified", timeout=90)
    assert "3f2a9c" in verified["message"]
    # The schema may verify a moment before the Job is seen to end; the run is judged then.
    wait_for("the run judged", lambda: migration(backend).get("outcome") == "Applied",
             timeout=30)
    assert migration(backend)["job"].startswith("backend-schema-migrate-")
    assert backend.get("dbschema", "backend-schema")["status"]["revision"]["expected"] == \
        ["3f2a9c"]
    wait_for("the Deployment Available", backend.available, timeout=30)

    # The migrator ran as a pod of the operator's image, with no token and no rights.
    (pod,) = migration_pods(backend)
    spec = pod["spec"]
    assert spec["serviceAccountName"] == "schemagate-migrator"
    assert spec["automountServiceAccountToken"] is False
    assert not [v for v in spec.get("volumes", []) if "projected" in v], "no token volume"
    (container,) = spec["containers"]
    assert container["image"].endswith("schemagate:dev")
    assert container["command"] == ["schemagate", "migrate"]
    assert db.password not in json.dumps(pod), "the URL only by secretKeyRef"
    assert {i["key"] for v in spec["volumes"] if "configMap" in v
            for i in v["configMap"]["items"]} == {"3f2a9c_billing_and_agents.py"}
    account = backend.get("serviceaccount", "schemagate-migrator")
    assert account["automountServiceAccountToken"] is False
    can_i = backend.cluster.kubectl(
        "auth", "can-i", "--list", "-n", backend.namespace,
        f"--as=system:serviceaccount:{backend.namespace}:schemagate-migrator")
    assert can_i.returncode == 0, can_i.stderr
    resources = [line.split()[0] for line in can_i.stdout.splitlines()[1:]
                 if line.strip() and not line.startswith(" ")]
    # What every authenticated identity may do (ask who it is, review its own access).
    assert all(r.startswith("selfsubject") for r in resources), can_i.stdout

    config_map(backend, {"3f2a9c_billing_and_agents.py": FIRST,
                         "7b1e44_invoices.py": SECOND % {"sleep": 0}})
    wait_for("the new head applied",
             lambda: backend.get("dbschema", "backend-schema")["status"]["revision"][
                 "current"] == ["7b1e44"], timeout=90)
    wait_for("its run recorded", lambda: migration(backend).get("heads") == ["7b1e44"]
             and migration(backend).get("outcome") == "Applied", timeout=30)
    assert len(migration_pods(backend)) == 2, "one Job per change of the revision files"


def test_an_empty_config_map_is_invalid_never_a_success(
        backend: Backend, db: Database, operator: local_operator.OperatorProcess) -> None:
    backend.secret(db.url())
    config_map(backend, {"README": "no revisions here"})
    alembic_schema(backend)
    invalid = backend.wait_reason("InvalidSpec")
    assert "no revision files" in invalid["message"]
    assert backend.condition(type="Stalled")["status"] == "True"
    assert json.loads(backend.kubectl("get", "jobs", "-o", "json"))["items"] == []


def test_four_schemas_on_one_database_migrate_it_once(
        backend: Backend, db: Database, operator: local_operator.OperatorProcess) -> None:
    backend.secret(db.url())
    config_map(backend, {"3f2a9c_billing_and_agents.py": FIRST,
                         "7b1e44_invoices.py": SECOND % {"sleep": 1}})
    names = [f"schema-{i}" for i in range(4)]
    for name in names:
        alembic_schema(backend, name=name)
    for name in names:
        backend.wait_reason("Verified", name=name, timeout=120)
    wait_for("every run judged", lambda: all(migration(backend, name).get("outcome") not in
                                             (None, "Running") for name in names), timeout=30)
    outcomes = sorted(migration(backend, name).get("outcome", "") for name in names)
    assert outcomes.count("Applied") == 1, outcomes
    assert set(outcomes) <= {"Applied", "AlreadyApplied"}, outcomes
    for name in names:
        assert backend.condition(name, "MigrationsApplied")["status"] == "True"


def test_a_migrator_killed_mid_statement_leaves_the_database_as_before(
        backend: Backend, db: Database, operator: local_operator.OperatorProcess) -> None:
    db.migrate()  # at 3f2a9c; the next revision sleeps 30 s before creating its table
    backend.secret(db.url())
    config_map(backend, {"3f2a9c_billing_and_agents.py": FIRST,
                         "7b1e44_invoices.py": SECOND % {"sleep": 30}})
    alembic_schema(backend)
    engine = sa.create_engine(db.pg.url(database=db.name), poolclass=sa.pool.NullPool)

    def migrators() -> int:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                "'schemagate-migrator' AND datname = :db"), {"db": db.name}).scalar_one())

    try:
        wait_for("the migrator mid-statement", lambda: migrators() == 1 or None, timeout=90)
        (pod,) = migration_pods(backend)
        backend.kubectl("delete", "pod", pod["metadata"]["name"], "--grace-period=0",
                        "--force", "--wait=false")
        killed = time.monotonic()
        wait_for("the server to drop the dead migrator", lambda: migrators() == 0, timeout=20)
        released_after = time.monotonic() - killed
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")
                                ).scalars().all() == ["3f2a9c"]
            assert conn.execute(sa.text("SELECT to_regclass('invoices')")).scalar() is None
        assert released_after < 10
    finally:
        engine.dispose()
    assert operator.process.poll() is None, "the operator never noticed the kill"
    failed = backend.wait_reason("MigrationFailed", timeout=60)
    assert migration(backend)["outcome"] == "Failed", failed

    config_map(backend, {"3f2a9c_billing_and_agents.py": FIRST,
                         "7b1e44_invoices.py": SECOND % {"sleep": 0}})
    wait_for("the next attempt applied",
             lambda: backend.get("dbschema", "backend-schema").get("status", {}).get(
                 "revision", {}).get("current") == ["7b1e44"], timeout=120)


def hostile(revision: str, imports: str, body: str) -> str:
    return (f'"""{revision}"""\n{imports}\nfrom alembic import op\n\n'
            f'revision = "{revision}"\ndown_revision = None\nbranch_labels = None\n'
            f'depends_on = None\n\n\ndef upgrade() -> None:\n{body}\n')


def thief(vault: str) -> str:
    return hostile("t1", "import os, ssl, urllib.error, urllib.request", f'''\
    errors = []
    try:  # the operator's way in: its service account
        from kubernetes import client, config
        config.load_incluster_config()
        stolen = client.CoreV1Api().read_namespaced_secret("crown-jewels", "{vault}")
        errors.append("stolen: " + str(stolen.data))
    except Exception as exc:
        errors.append(f"in-cluster login: {{exc}}")
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT")
    url = f"https://{{host}}:{{port}}/api/v1/namespaces/{vault}/secrets/crown-jewels"
    try:  # and without a token at all
        body = urllib.request.urlopen(url, context=ssl._create_unverified_context(),
                                      timeout=5).read()
        errors.append("stolen: " + body.decode())
    except urllib.error.HTTPError as exc:
        errors.append(f"anonymous: HTTP {{exc.code}}")
    except Exception as exc:
        errors.append(f"anonymous: {{exc}}")
    raise RuntimeError("; ".join(errors))''')


def test_revisions_that_exit_hang_raise_or_steal_fail_alone(
        cluster: Cluster, backend: Backend, db: Database,
        operator: local_operator.OperatorProcess) -> None:
    vault = f"{backend.namespace}-vault"
    cluster.kubectl("create", "namespace", vault)
    try:
        cluster.kubectl("-n", vault, "create", "secret", "generic", "crown-jewels",
                        "--from-literal=token=TOPSECRET-crown-jewels")
        backend.secret(db.url())
        # A schema of another team that must never notice.
        config_map(backend, {"3f2a9c_billing_and_agents.py": FIRST}, name="good-migrations")
        alembic_schema(backend, name="good", config="good-migrations")
        backend.deployment(name="good-backend", gate="good", replicas=1)
        backend.wait_reason("Verified", name="good", timeout=90)
        wait_for("the good backend open", lambda: backend.ready_states("good") == ["True"],
                 timeout=30)

        attacks = {
            # Tables of their own: the hanging revision's uncommitted CREATE TABLE would
            # make another revision creating the same name wait on it (a lock timeout).
            "exits": hostile("e1", "import os", '    op.execute("CREATE TABLE never_made_e '
                                                '(id int)")\n    os._exit(1)'),
            "hangs": hostile("h1", "import time", '    op.execute("CREATE TABLE never_made_h '
                                                  '(id int)")\n    time.sleep(100000)'),
            "raises": hostile("r1", "import os", '    raise RuntimeError("cannot migrate " + '
                                                 'os.environ["DATABASE_URL"])'),
            "steals": thief(vault),
        }
        for kind, text in attacks.items():
            config_map(backend, {f"{kind}.py": text}, name=f"{kind}-migrations")
            alembic_schema(backend, name=kind, tables=["never_made"],
                           config=f"{kind}-migrations", versionTable=f"v_{kind}",
                           activeDeadlineSeconds=20)
        seen_good = []
        failed: dict[str, dict[str, Any]] = {}

        def all_failed() -> bool:
            seen_good.append(backend.condition("good")["status"])
            for kind in attacks:
                condition = backend.condition(kind)
                if condition.get("reason") == "MigrationFailed":
                    failed[kind] = condition
            return len(failed) == len(attacks)

        wait_for("every attack to fail", all_failed, timeout=150, interval=1)
        assert set(seen_good) == {"True"}, "the good schema never noticed"
        assert backend.ready_states("good") == ["True"]
        assert operator.process.poll() is None, "the operator never crashed"

        assert "exit code 1" in failed["exits"]["message"]
        assert "activeDeadlineSeconds (20 s)" in failed["hangs"]["message"]
        assert "RuntimeError: cannot migrate" in failed["raises"]["message"]
        assert "***" in failed["raises"]["message"]
        stolen = failed["steals"]["message"]
        # No token to log in with; the API server refuses an anonymous request (403).
        assert "in-cluster login" in stolen and "anonymous:" in stolen, stolen
        assert "stolen:" not in stolen, stolen
        for kind in attacks:
            assert backend.condition(kind, "Stalled")["status"] == "True"
            assert migration(backend, kind)["outcome"] == "Failed"

        # Nothing secret anywhere a person or a log collector reads.
        with engine_of(db) as conn:
            for table in ("never_made", "never_made_e", "never_made_h"):
                assert conn.execute(sa.text(f"SELECT to_regclass('{table}')")).scalar() is None
        outputs = [backend.kubectl("describe", "dbschema"),
                   json.dumps(backend.events()),
                   backend.kubectl("get", "dbschema", "-o", "json"),
                   operator.log.read_text()]
        for text in outputs:
            assert db.password not in text
            assert "TOPSECRET" not in text
    finally:
        cluster.kubectl("delete", "namespace", vault, "--wait=false")


class engine_of:  # noqa: N801 - used as a context manager, like a function
    def __init__(self, db: Database) -> None:
        self.engine = sa.create_engine(db.pg.url(database=db.name), poolclass=sa.pool.NullPool)

    def __enter__(self) -> sa.Connection:
        self.conn = self.engine.connect()
        return self.conn

    def __exit__(self, *_: object) -> None:
        self.conn.close()
        self.engine.dispose()
