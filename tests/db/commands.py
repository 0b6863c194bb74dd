"""The real commands, as subprocesses: `alembic` over a project written to disk, and
`schemagate verify`. The URL travels only in the environment, as in a Pod."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent

ENV_PY = '''\
import os

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

engine = create_engine(os.environ["DATABASE_URL"], poolclass=NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()
'''

REVISION = '''\
"""{message}"""
import sqlalchemy as sa
from alembic import op

revision = {revision!r}
down_revision = {down_revision!r}
branch_labels = {branch_labels!r}
depends_on = None


def upgrade():
{body}


def downgrade():
    pass
'''


class AlembicProject:
    """An `alembic.ini`, its `env.py` and a versions folder, written under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ini = root / "alembic.ini"
        self.versions = root / "migrations" / "versions"
        self.versions.mkdir(parents=True)
        (root / "migrations" / "env.py").write_text(ENV_PY)
        self.ini.write_text("[alembic]\nscript_location = %(here)s/migrations\n")

    def add_revision(self, revision: str, down_revision: str | None, tables: list[str],
                     branch_label: str | None = None) -> str:
        body = "\n".join(f"    op.create_table({name!r}, sa.Column('id', sa.Integer, "
                         "primary_key=True))" for name in tables) or "    pass"
        (self.versions / f"{revision}.py").write_text(REVISION.format(
            message=f"create {', '.join(tables) or 'nothing'}", revision=revision,
            down_revision=down_revision,
            branch_labels=(branch_label,) if branch_label else None, body=body))
        return revision

    def alembic(self, url: str, *args: str) -> subprocess.CompletedProcess[str]:
        """`alembic -c alembic.ini ARGS` against `url`; fails the test on a non-zero exit."""
        result = subprocess.run([str(BIN / "alembic"), "-c", str(self.ini), *args],
                                env=environment(DATABASE_URL=url), cwd=self.root,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"alembic {' '.join(args)}: {result.stderr}"
        return result


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def document(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.stdout)
        return parsed

    @property
    def reason(self) -> str:
        return str(self.document["reason"])

    def assert_never_shows(self, *secrets: str) -> None:
        for secret in secrets:
            assert secret not in self.stdout, "a password in standard output"
            assert secret not in self.stderr, "a password in standard error"


def schemagate_verify(url: str | None, *args: str, json_output: bool = True,
                      url_env: str = "DATABASE_URL", stdin: str | None = None,
                      timeout: float = 60) -> Run:
    """`schemagate verify ARGS [--json]` with the URL in `url_env` (unset when None)."""
    env = environment(**({url_env: url} if url is not None else {}))
    argv = [str(BIN / "schemagate"), "verify", *args, *(["--json"] if json_output else [])]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, input=stdin,
                            timeout=timeout)
    return Run(result.returncode, result.stdout, result.stderr)


def schemagate_snapshot(url: str | None, *args: str, url_env: str = "DATABASE_URL",
                        timeout: float = 120) -> Run:
    """`schemagate snapshot ARGS` with the URL in `url_env` (unset when None)."""
    env = environment(**({url_env: url} if url is not None else {}))
    result = subprocess.run([str(BIN / "schemagate"), "snapshot", *args], env=env,
                            capture_output=True, text=True, timeout=timeout)
    return Run(result.returncode, result.stdout, result.stderr)


def tables_file(path: Path, tables: list[str]) -> Path:
    path.write_text(textwrap.dedent("""\
        # the backend's tables
        {}

        # end
    """).format("\n".join(tables)))
    return path


def environment(**extra: str) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "TMPDIR", "XDG_RUNTIME_DIR")
    return {**{k: os.environ[k] for k in keep if k in os.environ}, **extra}
