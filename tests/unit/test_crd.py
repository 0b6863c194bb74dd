"""The CRD in crds/ is what `schemagate crd` prints, and it is a structural schema."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from schemagate import crd

CRD_FILE = Path(__file__).resolve().parents[2] / "crds" / "databaseschemas.schemagate.io.yaml"


def test_crds_directory_matches_the_models() -> None:
    assert CRD_FILE.read_text() == crd.render(), "run `make crds` and commit the result"


def _walk(node: object, path: str = ""):  # type: ignore[no-untyped-def]
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


def test_schema_is_structural() -> None:
    schema = yaml.safe_load(CRD_FILE.read_text())["spec"]["versions"][0]["schema"]
    for path, node in _walk(schema):
        assert "$ref" not in node and "anyOf" not in node, path
        assert node.get("additionalProperties") is not False, path


def test_schema_carries_the_documented_bounds() -> None:
    version = yaml.safe_load(CRD_FILE.read_text())["spec"]["versions"][0]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["required"] == ["database", "tables"]
    assert (spec["properties"]["tables"]["minItems"], spec["properties"]["tables"]["maxItems"]) \
        == (1, 10_000)
    assert spec["properties"]["verifyIntervalSeconds"]["minimum"] == 5
    assert spec["properties"]["migrations"]["properties"]["run"]["enum"] == \
        ["External", "Job", "Alembic"]
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert list(columns) == ["Ready", "Reason", "Missing", "Revision", "Gate", "Age"]
    assert columns["Missing"]["jsonPath"] == ".status.missingSummary"
    assert columns["Gate"]["priority"] == 1  # kubectl get -o wide
    assert version["subresources"] == {"status": {}}


def test_kubectl_get_schemagate_lists_it() -> None:
    names = yaml.safe_load(CRD_FILE.read_text())["spec"]["names"]
    assert names["categories"] == ["schemagate"] and names["shortNames"] == ["dbschema"]


def _properties(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every property below `node`, by its path (`[]` for a list's items), with its schema."""
    for name, sub in node.get("properties", {}).items():
        yield f"{path}.{name}", sub
        yield from _properties(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _properties(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _properties(node["additionalProperties"], f"{path}{{}}")


def test_kubectl_explain_describes_every_field() -> None:
    root = yaml.safe_load(CRD_FILE.read_text())["spec"]["versions"][0]["schema"][
        "openAPIV3Schema"]
    fields = [(path, node) for top in ("spec", "status")
              for path, node in _properties(root["properties"][top], top)]
    undescribed = [path for path, node in fields if not str(node.get("description", "")).strip()]
    assert fields and "spec.gate.onDrift" in dict(fields)
    assert not undescribed, "fields without a description (Field(description=...) in " \
        "core/wire/models.py): " + ", ".join(undescribed)


def test_every_string_list_and_map_of_the_spec_is_bounded() -> None:
    """A tenant writes the spec: nothing in it may grow without a limit the API server
    enforces before the operator reads it."""
    version = yaml.safe_load(CRD_FILE.read_text())["spec"]["versions"][0]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    unbounded = []
    for path, node in _walk(spec):
        kind = node.get("type")
        if kind == "string" and "enum" not in node and "maxLength" not in node:
            unbounded.append(path)
        elif kind == "array" and "maxItems" not in node:
            unbounded.append(path)
        elif kind == "object" and "additionalProperties" in node and \
                "maxProperties" not in node:
            unbounded.append(path)
    assert unbounded == []


def test_a_pod_selector_is_bounded_as_kubernetes_bounds_labels() -> None:
    version = yaml.safe_load(CRD_FILE.read_text())["spec"]["versions"][0]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    selector = spec["properties"]["gate"]["properties"]["podSelector"]["properties"]
    labels, expressions = selector["matchLabels"], selector["matchExpressions"]
    assert labels["additionalProperties"]["maxLength"] == 63
    assert labels["x-kubernetes-validations"][0]["rule"] == \
        "self.all(k, size(k) >= 1 && size(k) <= 317)"
    assert labels["maxProperties"] == expressions["maxItems"] == 64
    expression = expressions["items"]["properties"]
    assert expression["key"]["maxLength"] == 317
    assert (expression["values"]["maxItems"], expression["values"]["items"]["maxLength"]) == \
        (64, 63)
