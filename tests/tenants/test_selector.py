"""A `gate.podSelector` value longer than a label value may be (63 characters) is
refused by the API server, before the operator ever quotes it in a message."""

from __future__ import annotations

import yaml

from tests.cluster.scenario import Backend


def test_a_selector_value_over_63_characters_is_refused_by_the_api_server(
        hostile: Backend) -> None:
    manifest = hostile.schema_manifest("long-selector")
    manifest["spec"]["gate"]["podSelector"] = {"matchLabels": {"app": "a-" * 32 + "a"}}
    refused = hostile.kubectl("create", "-f", "-", input=yaml.safe_dump(manifest),
                              check=False)
    assert "created" not in refused, refused
    assert "63" in refused or "Too long" in refused, refused
    listed = hostile.cluster.kubectl("-n", hostile.namespace, "get", "dbschema", "-o", "name")
    assert listed.stdout.strip() == "", "nothing was created"
