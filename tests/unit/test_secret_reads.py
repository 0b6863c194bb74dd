"""While Secrets are watched, a schema's check reads its Secret once, not at every
check; a change of the Secret is read again at once."""

import asyncio
import threading
import time
from typing import Any

from schemagate.core.wire.models import DatabaseSchemaSpec, SecretKeyRef
from schemagate.metrics import Metrics
from schemagate.reconcile import Context, Registry
from schemagate.reconcile.loop import read_url

SPEC = DatabaseSchemaSpec.model_validate({
    "database": {"urlSecretRef": {"name": "db", "key": "url"}}, "tables": ["t"]})


class SecretsOnly:
    """The project's `kube.Kube` as far as Secrets go: a value, and how often it was read."""

    def __init__(self) -> None:
        self.value = "postgresql://app@db/app"
        self.reads = 0
        self.lock = threading.Lock()

    def read_secret_value(self, namespace: str, ref: SecretKeyRef) -> str:
        with self.lock:
            self.reads += 1
        time.sleep(0.05)  # a round trip, so that the schemas that start together overlap
        return self.value


def context(kube: SecretsOnly, keep: bool) -> Context:
    fake: Any = kube
    return Context(kube=fake, registry=Registry(), metrics=Metrics(),
                   announce=lambda *_: None, keep_secrets=keep)


def test_schemas_that_start_together_read_their_shared_secret_once() -> None:
    kube = SecretsOnly()
    ctx = context(kube, keep=True)

    async def main() -> list[object]:
        return await asyncio.gather(*(read_url(SPEC, "ns", ctx) for _ in range(100)))

    assert asyncio.run(main()) == [kube.value] * 100
    assert kube.reads == 1
    assert asyncio.run(read_url(SPEC, "ns", ctx)) == kube.value
    assert kube.reads == 1  # kept: no GET per check


def test_a_change_of_the_secret_is_read_again() -> None:
    kube = SecretsOnly()
    ctx = context(kube, keep=True)
    asyncio.run(read_url(SPEC, "ns", ctx))
    kube.value = "postgresql://app@db2/app"
    ctx.registry.wake_users_of("Secret", "ns", "db")  # what the Secret watch says
    assert asyncio.run(read_url(SPEC, "ns", ctx)) == kube.value
    assert kube.reads == 2


def test_without_a_watch_on_secrets_every_check_reads_it() -> None:
    kube = SecretsOnly()
    ctx = context(kube, keep=False)
    for _ in range(3):
        asyncio.run(read_url(SPEC, "ns", ctx))
    assert kube.reads == 3
