"""Links in the README and docs/ lead somewhere: the file exists, and so does the
heading an anchor names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from schemagate.core.wire.models import DatabaseSchemaSpec

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", ROOT / "charts" / "schemagate" / "README.md",
         *sorted((ROOT / "docs").glob("*.md"))]


def slug(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(h) for h in re.findall(r"^#+ (.+)$", page.read_text(), re.MULTILINE)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_leads_somewhere(page: Path) -> None:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        where = (page.parent / path).resolve() if path else page
        assert where.exists(), f"{page.name}: {target} does not exist"
        if anchor:
            assert anchor in anchors(where), f"{page.name}: no heading #{anchor} in {path}"


def test_the_readme_stays_short_and_its_example_is_valid() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 130
    example = next(yaml.safe_load(block) for block in
                   re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)
                   if "kind: DatabaseSchema" in block)
    DatabaseSchemaSpec.model_validate(example["spec"])
