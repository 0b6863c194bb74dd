"""The operator reads a ConfigMap's revision graph from the files' text, never by
importing them: the same heads and graph as Alembic, and no code of theirs runs."""

from __future__ import annotations

import contextlib
import re
import textwrap
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from schemagate.core.revisions.graph import read_graph
from schemagate.core.revisions.keys import InvalidScripts, NoScripts
from schemagate.job.scripts import alembic_config, scripts_from_files


def revision(rev: str, down: object, *, depends_on: object = None, labels: object = None,
             annotated: bool = False, body: str = "pass") -> str:
    kind = ": str" if annotated else ""
    return textwrap.dedent(f'''\
        """{rev}"""
        from alembic import op

        revision{kind} = {rev!r}
        down_revision = {down!r}
        branch_labels = {labels!r}
        depends_on = {depends_on!r}


        def upgrade() -> None:
            {body}
        ''')


BRANCHED = {
    "a1.py": revision("a1", None, annotated=True),
    "b2.py": revision("b2", "a1"),
    "c3.py": revision("c3", "a1", labels=("billing",)),
    "d4.py": revision("d4", ("b2", "c3")),
    "e5.py": revision("e5", None, depends_on="c3"),
    "README.md": "notes",
}


@pytest.mark.parametrize("files", [
    {"a1.py": revision("a1", None), "b2.py": revision("b2", "a1")},
    BRANCHED,
    {"a1.py": revision("a1", None), "x.py": revision("x", None, depends_on=["a1"])},
])
def test_the_same_heads_and_graph_as_alembic(files: dict[str, str], tmp_path: Path) -> None:
    ours = read_graph(files)
    laid_out = scripts_from_files(files, tmp_path)
    assert (ours.heads, dict(ours.graph)) == alembic_reads(laid_out.directory)
    assert ours.ignored == laid_out.ignored


def test_the_job_refuses_files_whose_heads_alembic_reads_otherwise(tmp_path: Path) -> None:
    # The reader takes the top-level literal; Alembic runs the file and ends at c3.
    files = {"a1.py": revision("a1", None),
             "b2.py": revision("b2", "a1") + "\nif True:\n    revision = 'c3'\n"}
    assert read_graph(files).heads == {"b2"}
    with pytest.raises(InvalidScripts, match="Alembic finds the heads c3, the files declare b2"):
        scripts_from_files(files, tmp_path)


def alembic_reads(directory: Path) -> tuple[frozenset[str], dict[str, frozenset[str]]]:
    """The heads and graph as Alembic itself loads the files laid out in `directory`."""
    script = ScriptDirectory.from_config(alembic_config(directory))

    def below(revisions: str | Sequence[str] | None) -> frozenset[str]:
        if revisions is None:
            return frozenset()
        return frozenset([revisions] if isinstance(revisions, str) else revisions)

    return frozenset(script.get_heads()), {
        sc.revision: below(sc.down_revision) | below(sc.dependencies)
        for sc in script.walk_revisions()}


def test_a_dependency_on_a_branch_label_is_the_labelled_revision() -> None:
    files = {**BRANCHED, "e5.py": revision("e5", None, depends_on="billing")}
    assert read_graph(files).graph["e5"] == {"c3"}  # what the gate orders by


def test_no_code_of_a_revision_file_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    hostile = revision("a1", None) + f"\nopen({str(marker)!r}, 'w').write('x')\n" \
        "import os\nos._exit(1)\n"
    graph = read_graph({"a1.py": hostile})
    assert graph.heads == {"a1"} and graph.files == ("a1.py",)
    assert not marker.exists()


@pytest.mark.parametrize(("files", "says"), [
    ({"a1.py": "def upgrade(:\n"}, "a1.py, line 1"),
    ({"a1.py": revision("a1", "zz")}, "down_revision 'zz' is declared by no file"),
    ({"a1.py": revision("a1", "a1")}, "cycle"),
    ({"a1.py": revision("a1", "b2"), "b2.py": revision("b2", "a1")}, "cycle"),
    ({"a1.py": revision("a1", None), "again.py": revision("a1", None)}, "more than once"),
    ({"a1.py": "down_revision = 'x'\n"}, "a1.py: no revision"),
    ({"a1.py": "import uuid\nrevision = uuid.uuid4().hex\n"}, "not a literal"),
    ({"a1.py": revision("a1", None, depends_on="nope")}, "depends_on 'nope'"),
    ({"a1.py": "revision = 3\n"}, "non-empty string"),
    ({"../a1.py": revision("a1", None)}, "not a plain file name"),
])
def test_what_cannot_make_a_graph_is_named(files: dict[str, str], says: str) -> None:
    with pytest.raises(InvalidScripts, match=says):
        read_graph(files)


@pytest.mark.parametrize("files", [{}, {"README.md": "x"}, {"__init__.py": ""}])
def test_no_revision_at_all_is_never_a_success(files: dict[str, str]) -> None:
    with pytest.raises(NoScripts):
        read_graph(files)


def test_a_long_chain_needs_no_recursion() -> None:
    files = {f"r{i}.py": revision(f"r{i}", f"r{i - 1}" if i else None) for i in range(1000)}
    assert read_graph(files).heads == {"r999"}


def seconds_and_peak(read: Callable[[], object], sample: Callable[[], object]
                     ) -> tuple[float, int]:
    """How long `read` takes, and the peak of Python allocations while `sample` (the same
    on a part of the input: tracing allocations slows them down tenfold) runs."""
    started = time.perf_counter()
    with contextlib.suppress(InvalidScripts):
        read()
    seconds = time.perf_counter() - started
    tracemalloc.start()
    try:
        with contextlib.suppress(InvalidScripts):
            sample()
        return seconds, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


MIB = 1024 * 1024


def test_a_one_mib_literal_costs_little_memory_and_time() -> None:
    """`x = [0, 0, ...]`: parsing it into a syntax tree peaked at 493 MiB and took 1.3 s
    (the operator was OOM-killed in a loop)."""
    hostile = revision("a1", None) + "x = [" + "0," * ((MIB - 300) // 2) + "]\n"
    files = {"a1.py": hostile}
    seconds, peak = seconds_and_peak(lambda: read_graph(files), lambda: read_graph(files))

    assert read_graph(files).heads == {"a1"}
    assert peak < 10 * len(hostile)
    assert seconds < 0.5


@pytest.mark.parametrize("shape", [
    "x = 1\n", "x;", "'a'", "'a'\n", "()", "#\n", "revision = 'a'\n", ";revision='a'",
    "'\\a'", "(", " x\n", "rb''",
])
def test_no_shape_of_a_one_mib_file_costs_more_than_a_linear_pass(shape: str) -> None:
    """The densest shapes for the scan: one thing to follow every few characters. (A run
    of comment lines once kept 90 bytes of the regex engine's state per line.)"""
    text = shape * ((MIB - 1024) // len(shape))  # within the ConfigMap's 1 MiB
    part = text[:len(text) // 4]
    said: list[str] = []

    def read() -> None:
        try:
            said.append(",".join(read_graph({"a1.py": text}).heads))
        except InvalidScripts as exc:
            said.append(str(exc))

    seconds, peak = seconds_and_peak(read, lambda: read_graph({"a1.py": part}))

    assert peak < 10 * len(part)
    assert seconds < 2.0  # under 0.6 s here; loose for a loaded machine
    assert said[0] == "a" or re.match(r"a1\.py(:|, line \d+:) ", said[0])  # read to the end


@pytest.mark.parametrize(("text", "says"), [
    ("revision = (" + "'a', " * 2000 + ")\n", "a1.py: revision is longer than 4,096 characters "
                                              "(line 1)"),
    ("revision = '" + "a" * 65 + "'\n", "a1.py: revision 'aaaa"),
    ("revision = 'a1'\ndown_revision = '" + "b" * 65 + "'\n", "longer than 64 characters"),
    ("x = '''\n", "a1.py, line 1: unterminated triple-quoted string literal"),
    ("revision = 'a1'\nx = 1)\n", "a1.py, line 2: unmatched ')'"),
])
def test_what_is_too_large_or_cannot_be_followed_is_named(text: str, says: str) -> None:
    with pytest.raises(InvalidScripts, match=re.escape(says)):
        read_graph({"a1.py": text})


@pytest.mark.parametrize(("text", "heads"), [
    # Only the module's own statements count, as at import; the last assignment wins.
    ('"""\nrevision = "doc"\n"""\nrevision = "a1"\n', {"a1"}),
    ("if True:\n    revision = 'no'\nrevision = 'a1'\n", {"a1"}),
    ("x = ('''\nrevision = 'no'\n''')\nrevision = 'a1'  # a comment\n", {"a1"}),
    ("x = 1 \\\nrevision = 'no'\nrevision = 'a1'\n", {"a1"}),
    ("revision = 'old'\nrevision = 'a1'\n", {"a1"}),
    ("import os; revision = 'a1'\n", {"a1"}),
    ("def f(): x = 1; revision = 'no'\nrevision = 'a1'\n", {"a1"}),
    ("revision: str = (\n    'a'  # split\n    '1'\n)\n", {"a1"}),
    ("revision = r'a1'\r\ndown_revision = None\r\n", {"a1"}),
])
def test_the_top_level_assignments_are_found_as_python_reads_them(text: str,
                                                                   heads: set[str]) -> None:
    assert read_graph({"a1.py": text}).heads == heads
