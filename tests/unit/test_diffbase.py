"""Kopf's last-handled configuration stays small for the largest spec the CRD admits:
otherwise the object's annotations pass 256 KiB and its finalizer can never be removed."""

import json
from typing import Any

import kopf

from schemagate.handlers import DigestDiffBase


def schema(tables: list[str]) -> dict[str, Any]:
    return {"apiVersion": "schemagate.io/v1alpha1", "kind": "DatabaseSchema",
            "metadata": {"name": "backend-schema", "namespace": "team-a"},
            "spec": {"database": {"urlSecretRef": {"name": "db", "key": "URL"}},
                     "tables": tables}}


def test_the_largest_spec_leaves_a_small_annotation_that_still_tells_specs_apart() -> None:
    largest = [f"t{i:05d}_".ljust(63, "x") for i in range(10_000)]
    storage = DigestDiffBase(prefix="schemagate.io", key="last-handled-configuration")
    essence = storage.build(body=kopf.Body(schema(largest)))
    patch = kopf.Patch()
    storage.store(body=kopf.Body(schema(largest)), patch=patch, essence=essence)
    annotations = patch["metadata"]["annotations"]
    assert sum(len(k) + len(v or "") for k, v in annotations.items()) < 1024
    assert len(json.dumps(schema(largest))) > 600_000

    other = storage.build(body=kopf.Body(schema(largest[:-1])))
    assert other != essence
