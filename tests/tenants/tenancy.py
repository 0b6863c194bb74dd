"""The tenancy tier's view of the cluster: the operator as the chart installs it, a
victim namespace whose backend must never notice the others, and what every test
checks after its hostile input (the victim's new pod opens within seconds, its status
is intact, the operator neither restarted nor stopped answering /healthz)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from localenv.cluster import Cluster
from tests.cluster.scenario import BACKEND_IMAGE, Backend, Database
from tests.support.wait import wait_for

IMAGE = "schemagate:dev"
LIVENESS_PORT = 8081
#: A victim's new pod opens within this many seconds whatever another namespace holds.
OPENS_WITHIN = 20.0
VICTIM_SCHEMA = "backend-schema"


@dataclass
class ChartOperator:
    """The operator installed by the chart (its default resources, 384Mi limit): one
    pod, seen through the API server and its /healthz on the pod's own address (the host
    routes the pods' network to the node)."""

    cluster: Cluster
    release: str
    namespace: str

    def kubectl(self, *args: str) -> str:
        result = self.cluster.kubectl("-n", self.namespace, *args)
        assert result.returncode == 0, f"kubectl {args}: {result.stderr}"
        return result.stdout

    def pod(self) -> dict[str, Any]:
        items = json.loads(self.kubectl("get", "pods", "-l",
                                        f"app.kubernetes.io/instance={self.release}",
                                        "-o", "json"))["items"]
        live = [p for p in items if not p["metadata"].get("deletionTimestamp")]
        assert len(live) == 1, [p["metadata"]["name"] for p in items]
        pod: dict[str, Any] = live[0]
        return pod

    def restarts(self) -> tuple[str, int]:
        """(pod uid, its container's restart count): an OOMKill or a failed liveness
        probe raises the count; a pod replaced changes the uid."""
        pod = self.pod()
        statuses = pod.get("status", {}).get("containerStatuses") or [{}]
        return pod["metadata"]["uid"], int(statuses[0].get("restartCount", 0))

    def last_termination(self) -> str:
        statuses = self.pod().get("status", {}).get("containerStatuses") or [{}]
        last = statuses[0].get("lastState", {}).get("terminated") or {}
        return f"{last.get('reason')} (exit {last.get('exitCode')})" if last else "none"

    def healthz(self) -> int | str:
        """The HTTP status of GET /healthz, or why there was none."""
        address = self.pod().get("status", {}).get("podIP")
        try:
            with urllib.request.urlopen(f"http://{address}:{LIVENESS_PORT}/healthz",
                                        timeout=3) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError as exc:
            return f"{type(exc).__name__}: {exc}"

    def log(self, tail: int = 60) -> str:
        result = self.cluster.kubectl("-n", self.namespace, "logs", f"deployment/{self.release}",
                                      f"--tail={tail}")
        return result.stdout + result.stderr

    def ready(self) -> bool:
        pod = self.pod()
        return any(c["type"] == "Ready" and c["status"] == "True"
                   for c in pod.get("status", {}).get("conditions", []))

    def mend(self) -> None:
        """A new operator pod when this one restarted or stopped answering, so the next
        test starts from a healthy operator (its hostile input is gone by then)."""
        self.kubectl("rollout", "restart", f"deployment/{self.release}")
        result = self.cluster.kubectl("-n", self.namespace, "rollout", "status",
                                      f"deployment/{self.release}", "--timeout=120s",
                                      timeout=150)
        assert result.returncode == 0, result.stderr
        wait_for("the mended operator's /healthz", self.healthz, lambda code: code == 200,
                 timeout=60)


@dataclass
class Alive:
    """The operator as a test found it, to compare with after the hostile input."""

    operator: ChartOperator
    before: tuple[str, int] = field(default=("", 0))

    def __post_init__(self) -> None:
        self.before = self.operator.restarts()

    def problems(self) -> list[str]:
        found = []
        now = self.operator.restarts()
        if now != self.before:
            found.append(f"the operator restarted: (pod uid, restarts) {self.before} -> {now}, "
                         f"last termination {self.operator.last_termination()}")
        code = self.operator.healthz()
        if code != 200:
            found.append(f"/healthz answered {code!r}")
        return found


def parses_as_rfc3339(value: object) -> bool:
    if not isinstance(value, str) or not value.endswith("Z"):
        return False
    try:
        datetime.fromisoformat(value[:-1] + "+00:00")
    except ValueError:
        return False
    return True


@dataclass
class Victim:
    """A namespace whose verified backend (one replica, gated, on the embedded
    PostgreSQL at the cluster's host address) must not notice any other namespace."""

    backend: Backend
    db: Database

    @property
    def namespace(self) -> str:
        return self.backend.namespace

    def gate_counts(self) -> tuple[int, int]:
        """(pods, ready) as the victim's status last said."""
        gate = self.backend.get("dbschema", VICTIM_SCHEMA).get("status", {}).get("gate") or {}
        return int(gate.get("pods", 0)), int(gate.get("ready", 0))

    def scale_up(self, within: float = OPENS_WITHIN) -> list[str]:
        """Scale the backend up by one: its new pod's gate must open within `within`
        seconds, and the status the operator writes for it must be intact (a status
        written after whatever the test did before). What went wrong, if anything."""
        before = {p["metadata"]["name"] for p in self.backend.pods(VICTIM_SCHEMA)}
        counts = (len(before) + 1, len(before) + 1)

        def new_gates() -> dict[str, str]:
            return {p["metadata"]["name"]: Backend.pod_condition(
                p, f"schemagate.io/{VICTIM_SCHEMA}").get("status", "absent")
                for p in self.backend.pods(VICTIM_SCHEMA) if p["metadata"]["name"] not in before}

        self.backend.kubectl("scale", "deployment/backend", f"--replicas={len(before) + 1}")
        started = time.monotonic()
        try:
            wait_for("the victim's new pod's gate to open", new_gates,
                     lambda gates: "True" in gates.values(), timeout=within, interval=0.25)
            wait_for(f"the victim's status to count (pods, ready) {counts}", self.gate_counts,
                     lambda seen: seen == counts,
                     timeout=max(within - (time.monotonic() - started), 2))
        except AssertionError as exc:
            return [f"{exc}; the victim's status: {self.status_problems() or 'intact'}"]
        finally:
            self.backend.kubectl("scale", "deployment/backend", f"--replicas={len(before)}")
        return self.status_problems()

    def status_problems(self) -> list[str]:
        """What is wrong with the victim's status as another namespace might garble it:
        timestamps that do not parse, condition statuses other than "True"/"False", the
        database's name masked in the message."""
        status = self.backend.get("dbschema", VICTIM_SCHEMA).get("status", {})
        found = []
        if not parses_as_rfc3339(status.get("lastVerifiedTime")):
            found.append(f"lastVerifiedTime {status.get('lastVerifiedTime')!r}")
        for condition in status.get("conditions", []):
            if not parses_as_rfc3339(condition.get("lastTransitionTime")):
                found.append(f"{condition['type']} lastTransitionTime "
                             f"{condition.get('lastTransitionTime')!r}")
            if condition.get("status") not in ("True", "False"):
                found.append(f"{condition['type']} status {condition.get('status')!r}")
        verified = self.backend.condition(VICTIM_SCHEMA)
        if verified.get("reason") != "Verified" or verified.get("status") != "True":
            found.append(f"SchemaVerified {verified.get('status')!r} {verified.get('reason')!r}")
        if f"database {self.db.name} " not in verified.get("message", ""):
            found.append(f"SchemaVerified message {verified.get('message')!r} does not say "
                         f"database {self.db.name}")
        return found

    def restored(self) -> bool:
        """Verified, every pod open, the status intact: as before any test."""
        return self.backend.condition(VICTIM_SCHEMA).get("reason") == "Verified" and \
            set(self.backend.gate_states(VICTIM_SCHEMA)) == {"True"} and \
            not self.status_problems()


def unharmed(victim: Victim, alive: Alive) -> None:
    """(a) the victim's new pod opens within seconds, (b) the status written for it is
    intact, (c) the operator neither restarted nor stopped answering /healthz: every
    problem in one failure, with the operator's last log lines."""
    problems = victim.scale_up() + alive.problems()
    assert not problems, "\n".join(problems) + f"\noperator log:\n{alive.operator.log()}"


def reasons(backend: Backend) -> dict[str, str]:
    """Each DatabaseSchema of the namespace and its SchemaVerified reason ("" for none)."""
    items = json.loads(backend.kubectl("get", "dbschema", "-o", "json"))["items"]
    return {item["metadata"]["name"]: next(
        (c.get("reason", "") for c in item.get("status", {}).get("conditions", [])
         if c["type"] == "SchemaVerified"), "") for item in items}


def taken(backend: Backend, names: list[str], timeout: float = 30, every: bool = True) -> None:
    """Wait until the operator has taken up each named DatabaseSchema (its finalizer is
    on; `every=False`: one of them): from then on the hostile input is the operator's."""
    def finalized() -> dict[str, list[str]]:
        items = json.loads(backend.kubectl("get", "dbschema", "-o", "json"))["items"]
        return {i["metadata"]["name"]: i["metadata"].get("finalizers") or [] for i in items}
    which = all if every else any
    wait_for(f"the operator to take up {len(names)} schema(s) in {backend.namespace}",
             finalized, lambda seen: which(seen.get(name) for name in names), timeout=timeout)


def revision_pod(schema: str, name: str, revision: str) -> dict[str, Any]:
    """A pod gated by `schema` (labelled app=`schema`) whose code needs `revision`."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": name, "labels": {"app": schema},
        "annotations": {"schemagate.io/revision": revision}},
        "spec": {"readinessGates": [{"conditionType": f"schemagate.io/{schema}"}],
                 "terminationGracePeriodSeconds": 2,
                 "containers": [{"name": "app", "image": BACKEND_IMAGE,
                                 "imagePullPolicy": "Never", "command": ["sleep", "infinity"]}]}}


def pod_gates(backend: Backend, schema: str) -> dict[str, dict[str, Any]]:
    """Each pod gated by `schema` and its gate condition ({} before the operator's)."""
    return {p["metadata"]["name"]: Backend.pod_condition(p, f"schemagate.io/{schema}")
            for p in backend.pods(schema)}


def stamp(db: Database, revision: str) -> None:
    """The version table set to `revision`, as `alembic stamp` or a restore leaves it."""
    engine = sa.create_engine(db.pg.url(database=db.name), poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = :revision"),
                     {"revision": revision})
    engine.dispose()


def revision_status(backend: Backend, schema: str) -> dict[str, Any]:
    """`status.revision` of `schema`: current, history, historyOf."""
    revision: dict[str, Any] = backend.get("dbschema", schema).get("status", {}).get(
        "revision") or {}
    return revision
