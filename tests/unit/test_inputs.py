"""Hostile input: ConfigMap keys that would leave the scripts' directory or grow without
bound, and Job commands no program could receive. Each is refused with a message that
names the input (printable, shortened) and what is allowed, and never crashes the
reconciler: it becomes InvalidSpec."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from schemagate.core.revisions import keys
from schemagate.core.revisions.keys import InvalidScripts, NoScripts
from schemagate.core.wire.models import DatabaseSchemaSpec
from schemagate.job.scripts import scripts_from_files
from schemagate.reconcile.steps import explain_invalid

REVISION = "revision = 'a1'\ndown_revision = None\n"


@pytest.mark.parametrize(("name", "shown"), [
    ("../x.py", "'../x.py'"),
    ("../../etc/cron.d/x.py", "'../../etc/cron.d/x.py'"),
    ("/etc/x.py", "'/etc/x.py'"),
    ("a/b.py", "'a/b.py'"),
    ("a\\..\\b.py", "'a\\\\..\\\\b.py'"),
    (".hidden.py", "'.hidden.py'"),
    ("..py", "'..py'"),
    ("a\x00.py", "'a\\x00.py'"),
    ("a\nb.py", "'a\\nb.py'"),
    ("ré.py", "'r\\xe9.py'"),
    (" x.py", "' x.py'"),
    (".py", "'.py'"),
])
def test_a_key_that_is_not_a_plain_file_name_is_refused(tmp_path: Path, name: str,
                                                       shown: str) -> None:
    with pytest.raises(InvalidScripts) as refused:
        scripts_from_files({"a1.py": REVISION, name: REVISION}, tmp_path)
    assert str(refused.value) == (
        f"key {shown} is not a plain file name: a revision file's key is letters, digits, "
        "'-', '_' and '.', ends in .py and does not start with '.'")
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [], "nothing was written"


def test_a_huge_key_is_refused_and_quoted_short(tmp_path: Path) -> None:
    name = "a" * 100_000 + ".py"
    with pytest.raises(InvalidScripts) as refused:
        scripts_from_files({name: REVISION}, tmp_path)
    message = str(refused.value)
    assert message.startswith("key 'aaaa") and "...' (100003 characters)" in message
    assert "longer than 253 characters" in message and len(message) < 200


def test_too_many_keys_or_bytes_are_refused(tmp_path: Path) -> None:
    many = {f"r{n:04d}.py": REVISION for n in range(keys.MAX_FILES + 1)}
    with pytest.raises(InvalidScripts, match="1001 keys; at most 1000"):
        scripts_from_files(many, tmp_path)
    big = {"a1.py": REVISION + "# " + "x" * keys.MAX_TOTAL_BYTES}
    with pytest.raises(InvalidScripts, match="bytes; at most 1,048,576 are read"):
        scripts_from_files(big, tmp_path)


def test_many_ignored_keys_make_a_short_message(tmp_path: Path) -> None:
    files = {f"notes-{n}.txt": "" for n in range(500)}
    with pytest.raises(NoScripts) as none:
        scripts_from_files(files, tmp_path)
    assert str(none.value).startswith("no revision files (*.py): only 'notes-0.txt', ")
    assert str(none.value).endswith("and 495 more") and len(str(none.value)) < 200


def test_plain_names_pass(tmp_path: Path) -> None:
    scripts = scripts_from_files({"0001_initial-tables.py": REVISION,
                                             "README.md": "x"}, tmp_path)
    assert scripts.heads == frozenset({"a1"}) and scripts.ignored == ("README.md",)


def spec_with(**job: Any) -> dict[str, Any]:
    return {"database": {"urlSecretRef": {"name": "db", "key": "URL"}}, "tables": ["t"],
            "migrations": {"run": "Job", "job": {
                "fromDeployment": {"name": "backend"}, "command": ["alembic"], **job}}}


@pytest.mark.parametrize(("job", "message"), [
    ({"command": ["sh\x00", "-c"]},
     "spec.migrations.job.command.0: Value error, contains a NUL character, which no "
     "program can receive in its arguments"),
    ({"args": ["upgrade", "he\x00ads"]},
     "spec.migrations.job.args.1: Value error, contains a NUL character"),
    ({"command": [""]}, "spec.migrations.job.command.0: String should have at least 1 "
                        "character"),
    ({"command": []}, "spec.migrations.job.command: List should have at least 1 item"),
    ({"command": ["x" * 4097]}, "spec.migrations.job.command.0: String should have at most "
                                "4096 characters"),
    ({"args": ["x"] * 257}, "spec.migrations.job.args: List should have at most 256 items"),
    ({"command": ["x"] * 65}, "spec.migrations.job.command: List should have at most 64 "
                              "items"),
])
def test_a_command_no_program_could_receive_is_an_invalid_spec(job: dict[str, Any],
                                                              message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        DatabaseSchemaSpec.model_validate(spec_with(**job))
    explained = explain_invalid(refused.value)
    assert explained.startswith(message), explained
    assert len(explained) < 400, "the message never quotes the oversized input"


def test_ordinary_commands_pass() -> None:
    spec = DatabaseSchemaSpec.model_validate(spec_with(
        command=["./bin/migrate", "--config=../shared/alembic.ini"], args=["upgrade", ""]))
    assert spec.migrations.job is not None
    assert list(spec.migrations.job.args) == ["upgrade", ""]
