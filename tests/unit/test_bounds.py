"""No tenant string costs the operator more than a linear pass: each is measured against
its limit before anything reads it, and a breach is that schema's own reason."""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
import time
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from kubernetes.client import ApiClient
from pydantic import ValidationError

from schemagate import kube
from schemagate.core.revisions.graph import ScriptGraph
from schemagate.core.status.outcome import Outcome
from schemagate.core.tenancy import limits
from schemagate.core.wire.models import AlembicSpec, DatabaseSchemaSpec
from schemagate.core.wire.reasons import Reason
from schemagate.metrics import Metrics
from schemagate.postgres import connect, deadlines
from schemagate.reconcile import Context, Registry, migrate
from schemagate.reconcile.steps import explain_invalid, secret_url
from tests.support.fake_kube import FakeKube

SPEC = DatabaseSchemaSpec.model_validate({
    "database": {"urlSecretRef": {"name": "db", "key": "url"}}, "tables": ["t"]})


class OneSecret:
    """The Kubernetes client's CoreV1Api as far as one Secret goes."""

    def __init__(self, value: str) -> None:
        self.data = {"url": base64.b64encode(value.encode()).decode()}

    def read_namespaced_secret(self, name: str, namespace: str) -> Any:
        return SimpleNamespace(data=self.data)


def kube_with(value: str) -> kube.Kube:
    k = kube.Kube(ApiClient())
    fake: Any = OneSecret(value)
    k.core = fake
    return k


def context(value: str) -> Context:
    return Context(kube=kube_with(value), registry=Registry(), metrics=Metrics(),
                   announce=lambda *_: None, keep_secrets=False)


def read(ctx: Context) -> str | Outcome:
    return asyncio.run(secret_url(SPEC, "team-a", ctx))


def test_a_huge_secret_value_is_the_schemas_invalid_spec_at_once() -> None:
    """96 KB of `a-a-a-...` froze the operator for tens of seconds in the scrubber."""
    hostile = "postgresql://app:" + "a-" * 48_000 + "@db/app"
    ctx = context(hostile)
    started = time.perf_counter()
    outcome = read(ctx)
    elapsed = time.perf_counter() - started

    assert isinstance(outcome, Outcome)
    assert outcome.reason is Reason.INVALID_SPEC
    assert outcome.message == (f"the URL in Secret db key url is {len(hostile):,} bytes, "
                               "over the 4096-byte limit")
    assert elapsed < 0.5


def test_a_url_of_the_limit_is_read() -> None:
    url = "postgresql://app:pw@db/app?application_name=" + "x" * 4000
    url = url[:limits.MAX_URL_BYTES]
    assert read(context(url)) == url


def config_map(data: dict[str, str]) -> FakeKube:
    kube = FakeKube()
    kube.config_maps[("team-a", "scripts")] = {"data": data}
    return kube


def test_revision_files_are_read_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ConfigMap holds up to 1 MiB of them: the loop keeps answering meanwhile."""
    hostile = "revision = 'a1'\n" + "x = [" + "0," * 500_000 + "]\n"
    fake = config_map({"a1.py": hostile})
    alembic = AlembicSpec.model_validate({"configMapRef": {"name": "scripts"}})
    read_in: list[threading.Thread] = []
    read_graph = migrate.read_graph

    def spy(files: Mapping[str, str]) -> ScriptGraph:
        read_in.append(threading.current_thread())
        return read_graph(files)

    monkeypatch.setattr(migrate, "read_graph", spy)
    scripts = asyncio.run(migrate.read_scripts("team-a", alembic, fake))

    assert isinstance(scripts, migrate.AlembicScripts) and scripts.heads == {"a1"}
    assert read_in and read_in[0] is not threading.main_thread()


def test_a_revision_file_that_cannot_be_followed_is_the_schemas_invalid_spec() -> None:
    fake = config_map({"a1.py": "revision = 'a1'\nx = '''" + "0" * 900_000})
    alembic = AlembicSpec.model_validate({"configMapRef": {"name": "scripts"}})
    outcome = asyncio.run(migrate.read_scripts("team-a", alembic, fake))

    assert isinstance(outcome, Outcome) and outcome.reason is Reason.INVALID_SPEC
    assert outcome.message == ("ConfigMap scripts: a1.py, line 2: unterminated "
                               "triple-quoted string literal")


@pytest.mark.parametrize("url", [
    "postgresql://app:pw@/app?host=a,b,c,d,e&port=1,2,3,4,5",
    "postgresql://app:pw@/app?host=a:1&host=b:2&host=c&host=d&host=e",
    "postgresql://app:pw@/app?hostaddr=10.0.0.1,10.0.0.2,10.0.0.3,10.0.0.4,10.0.0.5",
])
def test_a_url_naming_more_than_four_hosts_cannot_be_used(url: str) -> None:
    with pytest.raises(connect.InvalidDatabaseUrl,
                       match="^the URL names 5 hosts, over the limit of 4; each is tried "
                             "within the same deadline$"):
        connect.parse_url(url)


def test_every_host_of_a_url_counts_however_it_is_spelt() -> None:
    """The loopback check reads them all: `host=` repeated reached it as its last only."""
    url = "postgresql://app:pw@/app?host=127.0.0.1:5432&host=db.example:5432"
    assert connect.url_hosts(url) == ["127.0.0.1", "db.example"]
    assert connect.url_hosts("postgresql://app:pw@db/app") == ["db"]
    assert connect.url_hosts("postgresql://app:pw@/app") == [None]


def spec_with_selector(selector: dict[str, Any]) -> dict[str, Any]:
    return {"database": {"urlSecretRef": {"name": "db", "key": "url"}}, "tables": ["t"],
            "gate": {"podSelector": selector}}


@pytest.mark.parametrize(("selector", "says"), [
    ({"matchLabels": {"app": "a" * 64}},
     "spec.gate.podSelector.matchLabels.app: String should have at most 63 characters"),
    ({"matchLabels": {"k" * 318: "v"}}, f"spec.gate.podSelector.matchLabels.{'k' * 64}.[key]: "
                                        "String should have at most 317 characters"),
    ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["a" * 64]}]},
     "spec.gate.podSelector.matchExpressions.0.values.0: String should have at most 63 "
     "characters"),
    ({"matchLabels": {f"k{i}": "v" for i in range(65)}},
     "spec.gate.podSelector.matchLabels: Dictionary should have at most 64 items after "
     "validation, not more"),
])
def test_a_selector_over_the_label_limits_is_an_invalid_spec(selector: dict[str, Any],
                                                             says: str) -> None:
    with pytest.raises(ValidationError) as caught:
        DatabaseSchemaSpec.model_validate(spec_with_selector(selector))
    assert explain_invalid(caught.value) == says


def test_a_selector_at_the_label_limits_is_valid() -> None:
    key = "p" * 253 + "/" + "n" * 63
    spec = DatabaseSchemaSpec.model_validate(spec_with_selector({
        "matchLabels": {key: "v" * 63, **{f"k{i}": "" for i in range(63)}},
        "matchExpressions": [{"key": key, "operator": "In", "values": ["v" * 63] * 64}]}))
    assert spec.gate.pod_selector.match_labels[key] == "v" * 63


def test_a_host_name_that_never_resolves_ends_within_the_connect_deadline(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A tenant's name server that never answers held a worker for the resolver's own
    timeouts, once per host."""
    released = threading.Event()

    def never_answers(*_: object, **__: object) -> list[Any]:
        released.wait(30)
        raise OSError("gave up")

    monkeypatch.setattr(socket, "getaddrinfo", never_answers)
    started = time.monotonic()
    try:
        with pytest.raises(psycopg.errors.ConnectionTimeout,
                           match="host names were not resolved within 2 s"):
            deadlines.connect_within("host=a.example,b.example port=5432,5432 "
                                     "connect_timeout=2")
        assert time.monotonic() - started < 2.5
    finally:
        released.set()
