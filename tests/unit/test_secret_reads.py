"""While Secrets are watched, a schema's check reads its Secret once, not at every
check; a change of the Secret is read again at once."""

import asyncio

from schemagate.core.wire.models import DatabaseSchemaSpec
from schemagate.reconcile import Context
from schemagate.reconcile.steps import secret_url
from tests.support.fake_kube import FakeKube

SPEC = DatabaseSchemaSpec.model_validate({
    "database": {"urlSecretRef": {"name": "db", "key": "url"}}, "tables": ["t"]})


URL = "postgresql://app@db/app"


def secret() -> FakeKube:
    kube = FakeKube()
    kube.add_secret("ns", "db", url=URL)
    kube.secret_delay = 0.05  # a round trip, so that the schemas that start together overlap
    return kube


def context(kube: FakeKube, keep: bool) -> Context:
    return kube.context(keep_secrets=keep)


def test_schemas_that_start_together_read_their_shared_secret_once() -> None:
    kube = secret()
    ctx = context(kube, keep=True)

    async def main() -> list[object]:
        return await asyncio.gather(*(secret_url(SPEC, "ns", ctx) for _ in range(100)))

    assert asyncio.run(main()) == [URL] * 100
    assert kube.secret_reads == 1
    assert asyncio.run(secret_url(SPEC, "ns", ctx)) == URL
    assert kube.secret_reads == 1  # kept: no GET per check


def test_a_change_of_the_secret_is_read_again() -> None:
    kube = secret()
    ctx = context(kube, keep=True)
    asyncio.run(secret_url(SPEC, "ns", ctx))
    kube.add_secret("ns", "db", url="postgresql://app@db2/app")
    ctx.registry.wake_users_of("Secret", "ns", "db")  # what the Secret watch says
    assert asyncio.run(secret_url(SPEC, "ns", ctx)) == "postgresql://app@db2/app"
    assert kube.secret_reads == 2


def test_without_a_watch_on_secrets_every_check_reads_it() -> None:
    kube = secret()
    ctx = context(kube, keep=False)
    for _ in range(3):
        asyncio.run(secret_url(SPEC, "ns", ctx))
    assert kube.secret_reads == 3
