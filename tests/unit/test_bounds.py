"""No tenant string costs the operator more than a linear pass: each is measured against
its limit before anything reads it, and a breach is that schema's own reason."""

from __future__ import annotations

import asyncio
import base64
import time
from types import SimpleNamespace
from typing import Any

from kubernetes.client import ApiClient

from schemagate import kube
from schemagate.core import limits
from schemagate.core.models import DatabaseSchemaSpec
from schemagate.core.reasons import Reason
from schemagate.metrics import Metrics
from schemagate.reconcile import Context, Registry
from schemagate.reconcile.loop import Outcome, read_url

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
    return asyncio.run(read_url(SPEC, "team-a", ctx))


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
