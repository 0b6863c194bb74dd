"""Consent to being cloned is the annotation schemagate.io/clone-for on the Deployment
object, never a label: every gated Deployment carries the schema label."""

import time
from types import SimpleNamespace
from typing import Any

import kopf
import pytest

from schemagate import handlers
from schemagate.core.clone import consent
from schemagate.core.clone import pod_template as template
from schemagate.core.wire.models import DatabaseSchemaSpec
from schemagate.reconcile import Registry


def deployment(annotations: dict[str, str] | None = None, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": "backend", "namespace": "team-a", "labels": dict(labels),
                         "annotations": annotations or {}},
            "spec": {"template": {"metadata": {"labels": dict(labels)}, "spec": {}}}}


@pytest.mark.parametrize(("value", "names"), [
    ("backend-schema", ("backend-schema",)),
    ("a, b,a ,, c", ("a", "b", "c")),
    (" ", ()),
    ("", ()),
])
def test_the_annotation_lists_names_separated_by_commas(value: str,
                                                        names: tuple[str, ...]) -> None:
    assert consent.names(value) == names


def test_the_schema_label_on_the_deployment_and_its_pods_is_no_consent() -> None:
    gated = deployment(**{"schemagate.io/schema": "backend-schema"})
    assert not consent.given(gated, "backend-schema")
    with pytest.raises(template.InvalidPodSource) as refused:
        template.require_consent(gated, "backend-schema", "migrations", "Job")
    assert str(refused.value) == (
        "Deployment backend has not consented to migrations by DatabaseSchema backend-schema: "
        "its owners add that name to the Deployment's annotation schemagate.io/clone-for "
        "(kubectl annotate -n team-a deployment/backend "
        "schemagate.io/clone-for=backend-schema); until then no Job runs as that Deployment")


def test_the_annotation_on_the_deployment_is_consent_for_the_names_it_lists() -> None:
    given = deployment({consent.CLONE_FOR: "payments-schema,backend-schema"})
    template.require_consent(given, "backend-schema", "migrations", "Job")
    assert not consent.given(given, "backend")  # whole names only
    assert not consent.given(given, "other-schema")


def test_the_annotation_on_the_pod_template_is_no_consent() -> None:
    # The template is what the Deployment's pods get: whoever can change pods' metadata
    # (not the Deployment's owners alone) could set it.
    templated = deployment()
    templated["spec"]["template"]["metadata"]["annotations"] = {
        consent.CLONE_FOR: "backend-schema"}
    assert not consent.given(templated, "backend-schema")


def test_the_command_keeps_the_names_already_consented_to() -> None:
    others = deployment({consent.CLONE_FOR: "payments-schema, audit"})
    assert consent.annotate_command(others, "backend-schema") == (
        "kubectl annotate --overwrite -n team-a deployment/backend "
        "schemagate.io/clone-for=payments-schema,audit,backend-schema")
    # Text that is no name is not quoted back (a newline would forge a log line).
    odd = deployment({consent.CLONE_FOR: "payments\n[INFO] all verified"})
    assert consent.annotate_command(odd, "backend-schema") == (
        "kubectl annotate --overwrite -n team-a deployment/backend "
        "schemagate.io/clone-for=backend-schema")


def test_an_annotation_beyond_any_consent_is_refused_as_such() -> None:
    many = deployment({consent.CLONE_FOR: ",".join(f"s{i}" for i in range(33))})
    with pytest.raises(template.InvalidPodSource, match="it names 33 DatabaseSchemas, more "
                                                        "than 32"):
        template.require_consent(many, "s0", "verification from its pods", "verify pod")
    assert consent.names(",".join(f"s{i}" for i in range(32)))[-1] == "s31"
    longest = ",".join("a" * 253 for _ in range(32))
    assert len(consent.names(longest)) == 1


def test_reading_the_largest_annotation_costs_its_length_only() -> None:
    # The API server admits 256 KiB of annotations; shapes that would make a
    # backtracking parser or a quadratic split crawl are measured and refused at once.
    for hostile in ("a-" * 131_000, "," * 262_000, "a " * 131_000,
                    ("a" * 253 + ",") * 1000):
        started = time.perf_counter()
        with pytest.raises(consent.UnreadableConsent, match="characters, more than the 8,160"):
            consent.names(hostile)
        refused = deployment({consent.CLONE_FOR: hostile})
        with pytest.raises(template.InvalidPodSource, match="cannot be read"):
            template.require_consent(refused, "backend-schema", "migrations", "Job")
        assert consent.annotate_command(refused, "x").endswith("schemagate.io/clone-for=x")
        assert time.perf_counter() - started < 0.05, hostile[:8]
    within = ", ".join(f"{'a' * 250}{i:02d}" for i in range(32))
    started = time.perf_counter()
    for _ in range(100):
        assert len(consent.names(within)) == 32
        consent.annotate_command(deployment({consent.CLONE_FOR: within}), "x")
    assert time.perf_counter() - started < 0.5


def test_consenting_wakes_the_schemas_that_clone_the_deployment() -> None:
    """Adding a name to the annotation moves no generation; the Deployment watch still
    re-checks the schema at once, instead of at its next interval."""
    registry = Registry()
    key = ("team-a", "backend-schema")
    wakeup = registry.looping(key)
    registry.watch(key, DatabaseSchemaSpec.model_validate({
        "database": {"urlSecretRef": {"name": "s", "key": "k"}}, "tables": ["t"],
        "migrations": {"run": "Job", "job": {"fromDeployment": {"name": "backend"},
                                             "command": ["alembic", "upgrade", "head"]}}}))
    memo = {"context": SimpleNamespace(registry=registry)}

    def seen(metadata: dict[str, Any], type: str = "MODIFIED") -> bool:
        body = kopf.Body({"metadata": {"name": "backend", "namespace": "team-a",
                                       "generation": 3, **metadata}})
        handlers.deployment_changed(type=type, namespace="team-a", name="backend",
                                    body=body, memo=memo)
        woken = wakeup.is_set()
        wakeup.clear()
        return woken

    assert seen({"labels": {"schemagate.io/schema": "backend-schema"}}, type="ADDED")
    assert not seen({"labels": {"schemagate.io/schema": "backend-schema"}})
    assert not seen({"labels": {"schemagate.io/schema": "backend-schema", "v": "2"}})
    assert seen({"annotations": {consent.CLONE_FOR: "backend-schema"}})
    assert not seen({"annotations": {consent.CLONE_FOR: "backend-schema"}})
