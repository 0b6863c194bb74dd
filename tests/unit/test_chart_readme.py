"""The chart's README is generated from values.yaml and current; every value has a
comment, and every documented value is one the schema accepts."""

from __future__ import annotations

import functools
import importlib.util
import json
import sys
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.chart import CHART, ROOT


@functools.cache
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chart_readme", ROOT / "hack" /
                                                  "chart_readme.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_chart_readme_is_current() -> None:
    assert (CHART / "README.md").read_text() == generator().render(), \
        "run `make chart-readme` and commit the result"


def leaves(values: Any, prefix: str = "") -> set[str]:
    if isinstance(values, dict) and values:
        return set().union(*(leaves(v, f"{prefix}{k}.") for k, v in values.items()))
    return {prefix.rstrip(".")}


def test_every_value_is_documented_and_accepted_by_the_schema() -> None:
    module = generator()
    text = (CHART / "values.yaml").read_text()
    values = yaml.safe_load(text)
    documented = [key for key, _, _ in module.rows(module.parse(text), values)]
    for leaf in leaves(values):
        assert any(leaf == key or leaf.startswith(key + ".") for key in documented), leaf
    schema = json.loads((CHART / "values.schema.json").read_text())
    for key in documented:
        node = schema
        for part in key.split("."):
            assert part in node.get("properties", {}), f"{key}: not in values.schema.json"
            node = node["properties"][part]


def test_a_value_without_a_comment_is_refused() -> None:
    module = generator()
    text = "# The image.\nimage:\n  # Its name.\n  repository: x\n  tag: ''\n"
    with pytest.raises(module.Undocumented, match="image.tag has no comment"):
        module.rows(module.parse(text), yaml.safe_load(text))
