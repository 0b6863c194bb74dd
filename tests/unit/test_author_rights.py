"""`run: Job`, `run: Alembic` and `verifyFrom: Pod` lend the operator's rights: they run
only while the API server checks the author's (the chart's policy binding), or when the
operator was told the cluster has no such policy."""

import asyncio
import logging
import threading
import time
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from schemagate.cli import build_parser
from schemagate.core.tenancy import author_rights
from schemagate.core.tenancy.author_rights import Binding
from schemagate.core.wire.models import DatabaseSchemaSpec
from schemagate.core.wire.reasons import Reason
from schemagate.reconcile import AuthorRights
from schemagate.reconcile.loop import reconcile
from tests.support.fake_kube import FakeKube

DATABASE: dict[str, Any] = {"urlSecretRef": {"name": "db", "key": "url"}}
JOB = {"run": "Job", "job": {"fromDeployment": {"name": "backend"},
                             "command": ["alembic", "upgrade", "head"]}}
ALEMBIC = {"run": "Alembic", "alembic": {"configMapRef": {"name": "migrations"}}}
POD = {**DATABASE, "verifyFrom": "Pod",
       "verifyPod": {"fromDeployment": {"name": "backend"}}}
ENFORCED = {"spec": {"policyName": "sg-author-rights", "validationActions": ["Deny"]}}


def spec(database: dict[str, Any] = DATABASE, **migrations: Any) -> DatabaseSchemaSpec:
    return DatabaseSchemaSpec.model_validate({"database": database, "tables": ["t"],
                                              "migrations": migrations})


@pytest.mark.parametrize(("schema", "modes"), [
    (spec(), ()),
    (spec(**{"run": "External"}), ()),
    (spec(**JOB), ("migrations.run: Job",)),
    (spec(**ALEMBIC), ("migrations.run: Alembic",)),
    (spec(POD), ("database.verifyFrom: Pod",)),
    (spec(POD, **JOB), ("migrations.run: Job", "database.verifyFrom: Pod")),
])
def test_the_modes_that_lend_the_operators_rights(schema: DatabaseSchemaSpec,
                                                  modes: tuple[str, ...]) -> None:
    assert author_rights.borrowing(schema) == modes


@pytest.mark.parametrize(("binding", "state"), [
    (ENFORCED, Binding.ENFORCED),
    ({"spec": {"validationActions": ["Warn", "Audit"]}}, Binding.NOT_DENYING),
    ({"spec": {}}, Binding.NOT_DENYING),
    (None, Binding.MISSING),
])
def test_a_binding_is_in_force_only_when_it_denies(binding: dict[str, Any] | None,
                                                   state: Binding) -> None:
    assert author_rights.state_of(binding) is state


def test_without_the_binding_the_borrowing_modes_are_refused_and_told_how_to_fix() -> None:
    modes = ("migrations.run: Job", "database.verifyFrom: Pod")
    message = author_rights.refusal(modes, "sg-author-rights", Binding.MISSING)
    assert message == (
        "migrations.run: Job and database.verifyFrom: Pod: the operator would create a Job "
        "or a pod with its own rights, and the admission policy binding sg-author-rights, "
        "which refuses "
        "a DatabaseSchema whose author lacks those rights, is not installed: nothing runs "
        "until it is in force. Install the chart with authorRights.enabled=true (Kubernetes "
        "1.30 and later); on a cluster without that policy, the chart's "
        "authorRights.enabled=false (schemagate run --no-author-rights) runs them for "
        "whoever may write a DatabaseSchema")
    assert "only warns or audits" in str(author_rights.refusal(modes, "b",
                                                               Binding.NOT_DENYING))
    assert "needs get on validatingadmissionpolicybindings" in str(
        author_rights.refusal(modes, "b", Binding.UNREADABLE))
    assert author_rights.refusal(modes, "b", Binding.ENFORCED) is None
    assert author_rights.refusal((), "b", Binding.MISSING) is None  # External, Operator
    assert author_rights.refusal(modes, None, None) is None  # told: no such policy


class Bindings:
    """The API's ValidatingAdmissionPolicyBindings, as `kube.Kube` reads them."""

    def __init__(self, found: dict[str, Any] | None = None,
                 error: ApiException | None = None) -> None:
        self.found, self.error, self.reads = found, error, 0
        self.lock = threading.Lock()

    def __call__(self, name: str) -> dict[str, Any] | None:
        with self.lock:
            self.reads += 1
        time.sleep(0.05)  # a round trip: schemas that ask together overlap
        if self.error is not None:
            raise self.error
        return self.found


def test_schemas_that_ask_together_share_one_lookup_kept_a_minute() -> None:
    now = [0.0]
    read = Bindings(ENFORCED)
    rights = AuthorRights("sg-author-rights", read, clock=lambda: now[0])

    async def many() -> list[str | None]:
        return await asyncio.gather(*(rights.refusal(spec(**JOB)) for _ in range(200)))

    assert asyncio.run(many()) == [None] * 200
    assert read.reads == 1
    now[0] = 59.0
    assert asyncio.run(rights.refusal(spec(POD))) is None and read.reads == 1
    read.found = None  # uninstalled: seen at the next lookup
    now[0] = 61.0
    assert "is not installed" in str(asyncio.run(rights.refusal(spec(POD))))
    assert read.reads == 2
    read.found = ENFORCED  # installed: a refusal lifts within seconds
    now[0] = 72.0
    assert asyncio.run(rights.refusal(spec(**ALEMBIC))) is None
    assert read.reads == 3


def test_schemas_that_lend_nothing_look_nothing_up() -> None:
    read = Bindings(None)
    assert asyncio.run(AuthorRights("b", read).refusal(spec())) is None
    assert asyncio.run(AuthorRights(None, read).refusal(spec(**JOB))) is None
    assert read.reads == 0


def test_a_binding_the_operator_may_not_read_is_said_and_a_failing_api_is_retried() -> None:
    forbidden = AuthorRights("b", Bindings(error=ApiException(status=403, reason="Forbidden")))
    assert "cannot be read by the operator" in str(asyncio.run(forbidden.refusal(spec(**JOB))))
    failing = AuthorRights("b", Bindings(error=ApiException(status=503)))
    with pytest.raises(ApiException):  # the pass fails and is retried: no verdict
        asyncio.run(failing.refusal(spec(**JOB)))


def test_a_job_schema_without_the_binding_is_invalid_and_reads_no_secret() -> None:
    kube = FakeKube()
    body = kube.add_schema("team-a", "backend-schema", spec(**JOB).model_dump(
        by_alias=True, mode="json", exclude_none=True))
    kube.add_secret("team-a", "db", url="postgresql://app@db/app")
    ctx = kube.context(author_rights=AuthorRights("sg-author-rights", Bindings(None)))
    asyncio.run(reconcile(body, ctx, logging.getLogger("test")))
    ready = kube.status("team-a", "backend-schema")["conditions"][0]
    assert ready["reason"] == Reason.INVALID_SPEC.value
    assert ready["message"].startswith("migrations.run: Job: the operator would create a "
                                       "Job or a pod with its own rights, and the "
                                       "admission policy binding sg-author-rights")
    assert kube.secret_reads == 0 and kube.jobs == {}


@pytest.mark.parametrize(("argv", "binding"), [
    ([], "schemagate-author-rights"),
    (["--author-rights-binding", "sg-author-rights"], "sg-author-rights"),
    (["--no-author-rights"], None),
])
def test_the_command_line_names_the_binding_or_says_there_is_none(
        argv: list[str], binding: str | None) -> None:
    args = build_parser().parse_args(["run", "-A", *argv])
    assert (None if args.no_author_rights else args.author_rights_binding) == binding
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "-A", "--no-author-rights",
                                   "--author-rights-binding", "x"])
