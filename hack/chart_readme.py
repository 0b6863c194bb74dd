"""Writes charts/schemagate/README.md from values.yaml: every value, its default and the
comment above it. A value without a comment is an error, so none goes undocumented.

Rules: a key's comment is the `#` lines right above it. A commented key whose children
carry no comments of their own is one value (its default shown whole, e.g.
`resources`); otherwise each child is a value of its own and must be commented.
Run: `make chart-readme`; tests/unit/test_chart_readme.py checks the file is current.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "schemagate"
KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):(?P<rest>.*)$")

HEADER = """\
# schemagate

{description}

Chart {version}, schemagate {app_version}, Kubernetes {kube_version}.

```sh
helm install schemagate charts/schemagate -n schemagate-system --create-namespace
kubectl get dbschema -A
helm test schemagate -n schemagate-system
```

`values.schema.json` refuses a value that is not listed here, with the path of the bad
value. This page is generated from the comments in `values.yaml` (`make chart-readme`);
a test fails when it is not current.

## Values

| Key | Default | Description |
| --- | --- | --- |
"""


@dataclass
class Node:
    path: str
    comment: str
    indent: int
    children: list[Node] = field(default_factory=list)


class Undocumented(Exception):
    pass


def parse(text: str) -> list[Node]:
    roots: list[Node] = []
    stack: list[Node] = []
    comment: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment.append(stripped.lstrip("#").strip())
            continue
        if not stripped:
            comment = []
            continue
        match = KEY.match(line)
        if match is None or line.lstrip().startswith("-"):
            comment = []
            continue  # a list item or a continuation: part of the value above
        indent = len(match["indent"])
        while stack and stack[-1].indent >= indent:
            stack.pop()
        path = ".".join([*(n.path.rsplit(".", 1)[-1] for n in stack), match["key"]])
        node = Node(path=path, comment=" ".join(comment), indent=indent)
        (stack[-1].children if stack else roots).append(node)
        stack.append(node)
        comment = []
    return roots


def _default(values: Any, path: str) -> str:
    for part in path.split("."):
        values = values[part]
    return f"`{json.dumps(values)}`"


def rows(nodes: list[Node], values: Any) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    for node in nodes:
        documented_children = any(c.comment for c in node.children)
        if node.comment and not documented_children:
            out.append((node.path, _default(values, node.path), node.comment))
            continue
        if not node.children:
            raise Undocumented(f"values.yaml: {node.path} has no comment above it")
        out.extend(rows(node.children, values))
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    text = (CHART / "values.yaml").read_text()
    values = yaml.safe_load(text)
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    head = HEADER.format(description=chart["description"], version=chart["version"],
                         app_version=chart["appVersion"], kube_version=chart["kubeVersion"])
    table = "".join(f"| `{key}` | {default} | {_cell(description)} |\n"
                    for key, default, description in rows(parse(text), values))
    return head + table


def main() -> int:
    try:
        (CHART / "README.md").write_text(render())
    except Undocumented as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
