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
        "core/models.py): " + ", ".join(undescribed)
