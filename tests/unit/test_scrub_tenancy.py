"""One tenant's secret never garbles another tenant's text, and scrubbing touches free
text only: a password `2026`, `True` or `postgres` in one namespace leaves every
timestamp, status value and name as it is, in that namespace and in every other."""

from __future__ import annotations

import asyncio
import base64
import copy
import io
import logging
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import kopf
import pytest
from kubernetes import client

from schemagate import cli, handlers, kube
from schemagate.core.check.verdict import Verdict
from schemagate.core.gate import readiness as gate
from schemagate.core.tenancy.scrub import MASK, PATTERNS, Scrubber, Scrubbers, ScrubbingFilter
from schemagate.core.wire.reasons import Reason
from schemagate.metrics import Metrics
from schemagate.reconcile import Context, Registry
from schemagate.reconcile.loop import reconcile
from schemagate.settings import Settings

NOW = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
URL_KEY = "url"


class Api:
    """The Kubernetes client's CoreV1Api and CustomObjectsApi, as far as a check that
    needs no database goes: DatabaseSchemas, their Secrets, their status, pod status."""

    def __init__(self) -> None:
        self.schemas: dict[tuple[str, str], dict[str, Any]] = {}
        self.secrets: dict[tuple[str, str], str] = {}
        self.pod_patches: list[dict[str, Any]] = []

    def get_namespaced_custom_object(self, group: str, version: str, namespace: str,
                                     plural: str, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.schemas[(namespace, name)])

    def patch_namespaced_custom_object_status(self, group: str, version: str, namespace: str,
                                              plural: str, name: str, body: Any) -> None:
        self.schemas[(namespace, name)]["status"] = copy.deepcopy(body["status"])

    def read_namespaced_secret(self, name: str, namespace: str) -> Any:
        value = base64.b64encode(self.secrets[(namespace, name)].encode()).decode()
        return SimpleNamespace(data={URL_KEY: value})

    def patch_namespaced_pod_status(self, pod: str, namespace: str, body: Any,
                                    **_: Any) -> Any:
        self.pod_patches.append(body)
        return SimpleNamespace(data=b"{}")


def the_kube(api: Api) -> kube.Kube:
    kube_api = kube.Kube(client.ApiClient())
    fake: Any = api
    kube_api.core, kube_api.custom = fake, fake
    return kube_api


def schema(namespace: str, secret: str) -> dict[str, Any]:
    return {"apiVersion": "schemagate.io/v1alpha1", "kind": "DatabaseSchema",
            "metadata": {"namespace": namespace, "name": "backend", "uid": f"uid-{namespace}",
                         "generation": 1},
            "spec": {"database": {"urlSecretRef": {"name": secret, "key": URL_KEY}},
                     "tables": ["accounts"]}}


def two_tenants(password: str) -> tuple[Api, Context]:
    """Team A's URL holds `password`; team B's does not. Both URLs name the loopback
    host, so the check ends before any connection, with a message that quotes the
    Secret's name (`postgres`, as CI names things)."""
    api = Api()
    for namespace, url in (("team-a", f"postgresql://app:{password}@localhost/app"),
                           ("team-b", "postgresql://app:other@localhost/app")):
        api.schemas[(namespace, "backend")] = schema(namespace, "postgres")
        api.secrets[(namespace, "postgres")] = url
    ctx = Context(kube=the_kube(api), registry=Registry(), metrics=Metrics(),
                  announce=lambda *_: None, clock=lambda: NOW, pods={})
    logger = logging.getLogger("tests.tenancy")
    for _ in range(2):  # the second pass reads back the status the first one wrote
        for namespace in ("team-a", "team-b"):
            asyncio.run(reconcile(api.schemas[(namespace, "backend")], ctx, logger))
    return api, ctx


@pytest.mark.parametrize("password", ["2026", "True", "postgres", "12", "Z", "False"])
def test_one_tenants_password_garbles_no_status(password: str) -> None:
    api, _ = two_tenants(password)
    for namespace in ("team-a", "team-b"):
        status = api.schemas[(namespace, "backend")]["status"]
        conditions = status["conditions"]
        assert {c["type"] for c in conditions} >= {"Ready", "SchemaVerified", "Stalled"}
        for condition in conditions:
            assert condition["lastTransitionTime"] == "2026-12-07T09:30:00Z", namespace
            assert condition["status"] in ("True", "False", "Unknown"), namespace
            assert condition["reason"] == Reason.INVALID_SPEC.value
        assert status["lastVerifiedTime" if "lastVerifiedTime" in status else
                      "observedGeneration"] in ("2026-12-07T09:30:00Z", 1)
        assert status["gate"]["conditionType"] == "schemagate.io/backend"
    ready_b = next(c for c in api.schemas[("team-b", "backend")]["status"]["conditions"]
                   if c["type"] == "Ready")
    assert "Secret postgres key url" in ready_b["message"]


def test_a_schemas_own_secret_is_masked_in_its_own_messages_only() -> None:
    api, ctx = two_tenants("postgres")
    ready = {ns: next(c["message"] for c in api.schemas[(ns, "backend")]["status"]["conditions"]
                      if c["type"] == "Ready") for ns in ("team-a", "team-b")}
    assert f"Secret {MASK} key url" in ready["team-a"]
    assert "Secret postgres key url" in ready["team-b"]
    assert ctx.registry.scrubbers.of(("team-a", "backend")).scrub("postgres") == MASK
    assert ctx.registry.scrubbers.of(("team-b", "backend")).scrub("postgres") == "postgres"
    ctx.registry.forget(("team-a", "backend"))  # deleted: its secrets go with it
    assert ctx.registry.scrubbers.of(("team-a", "backend")) is PATTERNS


def test_the_status_writer_scrubs_messages_and_nothing_else() -> None:
    api = Api()
    api.schemas[("ns", "s")] = schema("ns", "db")
    scrubber = Scrubber(["postgresql://app:2026@db/app"])
    status = {
        "observedGeneration": 2026,
        "conditions": [{"type": "Ready", "status": "True", "reason": "Verified",
                        "message": "ok with 2026\nFAKE LOG LINE \x1b]0;owned\x07",
                        "lastTransitionTime": "2026-12-07T09:30:00Z"}],
        "migration": {"job": "s-migrate-2026", "outcome": "Failed",
                      "message": "+ psql postgresql://app:2026@db/app",
                      "startedAt": "2026-12-07T09:30:00Z"},
        "revision": {"current": ["2026"], "expected": ["2026"]},
        "missingTables": ["t2026"],
        "missingSummary": "1 table: evil\nINFO forged",
        "lastVerifiedTime": "2026-12-07T09:30:00Z",
    }
    the_kube(api).patch_status("ns", "s", status, scrubber)
    written = api.schemas[("ns", "s")]["status"]
    assert written["conditions"][0]["message"] == \
        f"ok with {MASK}\\nFAKE LOG LINE \\x1b]0;owned\\x07"
    assert written["migration"]["message"] == f"+ psql {MASK}"
    assert written["missingSummary"] == "1 table: evil\\nINFO forged"
    for key in ("observedGeneration", "revision", "missingTables", "lastVerifiedTime"):
        assert written[key] == status[key]
    assert {k: v for k, v in written["conditions"][0].items() if k != "message"} == \
        {k: v for k, v in status["conditions"][0].items() if k != "message"}
    assert written["migration"]["job"] == "s-migrate-2026"


def test_a_pod_condition_carries_its_schemas_scrubbed_escaped_message_only() -> None:
    api = Api()
    scrubber = Scrubber(["postgresql://app:True@db/app"])
    wanted = gate.PodCondition(True, "Verified", "True\r\nsel=a\x1b[2J")
    the_kube(api).set_pod_condition("ns", "pod-1", "schemagate.io/s", wanted,
                                    "2026-12-07T09:30:00Z", scrubber)
    condition = api.pod_patches[0]["status"]["conditions"][0]
    assert condition == {"type": "schemagate.io/s", "status": "True", "reason": "Verified",
                         "message": f"{MASK}\\r\\nsel=a\\x1b[2J",
                         "lastTransitionTime": "2026-12-07T09:30:00Z"}


def record_about(kind: str | None, namespace: str, name: str, message: str) -> str:
    """A record as Kopf's object logger writes it about an object, through the filter
    the operator puts on that logger."""
    scrubbers = Scrubbers()
    scrubbers.learn(("team-a", "backend"), "postgresql://app:hunter2@db/app")
    record = logging.LogRecord("kopf.objects", logging.INFO, __file__, 1, "%s", (message,),
                               None)
    if kind is not None:
        record.k8s_ref = {"kind": kind, "namespace": namespace, "name": name}
    ScrubbingFilter(lambda r: handlers._scrubber_of(r, scrubbers)).filter(record)
    return record.getMessage()


def test_a_log_record_about_a_schema_is_scrubbed_with_that_schemas_secrets() -> None:
    said = "connecting with hunter2\nINFO forged line"
    assert record_about("DatabaseSchema", "team-a", "backend", said) == \
        f"connecting with {MASK}\\nINFO forged line"
    # Another schema's record, and a record about no schema: the patterns alone.
    assert record_about("DatabaseSchema", "team-b", "backend", said) == \
        "connecting with hunter2\\nINFO forged line"
    assert record_about("Pod", "team-a", "backend", said) == \
        "connecting with hunter2\\nINFO forged line"
    assert record_about(None, "", "", "password=hunter2") == f"password={MASK}"


def test_schemagate_verify_prints_control_characters_escaped() -> None:
    verdict = Verdict(verified=False, reason=Reason.TABLES_MISSING,
                      message="evil\x1b]0;owned\x07 missing\nverified (Verified): forged",
                      missing_tables=("evil\nverified",))
    out = io.StringIO()
    cli.print_verdict(verdict, out)
    lines = out.getvalue().splitlines()
    assert lines[0] == ("NOT verified (TablesMissing): evil\\x1b]0;owned\\x07 missing\\n"
                        "verified (Verified): forged")
    assert not any(line.startswith("verified") for line in lines)
    assert "\x1b" not in out.getvalue()


def test_an_event_about_a_schema_is_scrubbed_with_that_schemas_secrets(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator's own Events (`Context.announce`), as the handlers install it."""
    posted: list[str] = []
    monkeypatch.setattr(kopf, "warn", lambda body, reason, message: posted.append(message))
    scrubbers = Scrubbers()
    scrubbers.learn(("team-a", "backend"), "postgresql://app:hunter2@db/app")
    memo = kopf.Memo(settings=Settings(watch_secrets=False), metrics=Metrics(),
                     scrubbers=scrubbers, kube=SimpleNamespace(admission_policy_binding=None))

    async def start() -> None:
        await handlers.configure(settings=kopf.OperatorSettings(), memo=memo, gated_pods={})

    asyncio.run(start())
    for namespace in ("team-a", "team-b"):
        memo["context"].announce(schema(namespace, "db"), "MigrationFailed",
                                 "said hunter2\nINFO forged", True)
    assert posted == [f"said {MASK}\\nINFO forged", "said hunter2\\nINFO forged"]
