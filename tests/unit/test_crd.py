"""The CRD in crds/ is what `schemagate crd` prints, and it is a structural schema."""

from pathlib import Path

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
