"""The table of revisions `schemagate plan` is proved on, each with what it must find
(tests/unit/test_plan.py without a database, tests/db/test_plan.py from a real one).

Every case runs after the same first revision, `a1`, which creates `accounts`; the
serving version declares `accounts` with `id`, `legacy_code` and `email` (not `notes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REVISION = '''\
"""{revision}"""
import sqlalchemy as sa
from alembic import context, op

revision = {revision!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade():
{body}


def downgrade():
    pass
'''

FIRST = '''\
    op.create_table(
        "accounts",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("legacy_code", sa.Text),
        sa.Column("email", sa.Text),
        sa.Column("notes", sa.Text),
    )'''

SERVING = """\
tables:
- accounts
columns:
- table: accounts
  columns:
  - {name: id, type: bigint, nullable: false}
  - {name: legacy_code, type: text, nullable: true}
  - {name: email, type: text, nullable: true}
"""


@dataclass(frozen=True)
class Case:
    name: str
    body: str
    #: The serving-version findings, each message up to its first comma.
    serving: tuple[str, ...] = ()
    #: squawk's rule ids found.
    lint: frozenset[str] = frozenset()
    unlintable: bool = False

    @property
    def exit_status(self) -> int:
        return 1 if self.serving or self.lint or self.unlintable else 0


CASES = [
    Case("drop a declared column", '    op.drop_column("accounts", "legacy_code")',
         serving=("drops column accounts.legacy_code",), lint=frozenset({"ban-drop-column"})),
    Case("drop a column nobody declares", '    op.drop_column("accounts", "notes")',
         lint=frozenset({"ban-drop-column"})),
    Case("rename a column",
         '    op.alter_column("accounts", "legacy_code", new_column_name="old_code")',
         serving=("renames column accounts.legacy_code to old_code",),
         lint=frozenset({"renaming-column"})),
    Case("change a column's type",
         '    op.alter_column("accounts", "email", type_=sa.String(320))',
         serving=("changes the type of column accounts.email to VARCHAR(320) (declared text)",),
         lint=frozenset({"changing-column-type"})),
    Case("add a NOT NULL column without a default",
         '    op.add_column("accounts", sa.Column("code", sa.Text, nullable=False))',
         serving=("adds code NOT NULL without a default to accounts",),
         lint=frozenset({"adding-required-field"})),
    Case("add a nullable column",
         '    op.add_column("accounts", sa.Column("nickname", sa.Text))'),
    Case("CREATE INDEX without CONCURRENTLY",
         '    op.create_index("ix_accounts_email", "accounts", ["email"])',
         lint=frozenset({"require-concurrent-index-creation"})),
    Case("CREATE INDEX CONCURRENTLY",
         '    with op.get_context().autocommit_block():\n'
         '        op.create_index("ix_accounts_email", "accounts", ["email"],\n'
         '                        postgresql_concurrently=True)'),
    Case("op.execute with raw SQL",
         '    op.execute("UPDATE accounts SET email = \'\' WHERE email IS NULL")\n'
         '    op.execute("ALTER TABLE accounts ALTER COLUMN email SET NOT NULL")',
         serving=("makes NOT NULL column accounts.email",),
         lint=frozenset({"adding-not-nullable-field"})),
    Case("a data migration",
         '    bind = op.get_bind()\n'
         '    for row in bind.execute(sa.text("SELECT id FROM accounts")).fetchall():\n'
         '        bind.execute(sa.text("UPDATE accounts SET notes = :n WHERE id = :i"),\n'
         '                     {"n": str(row.id), "i": row.id})',
         unlintable=True),
    Case("a revision that branches on offline mode",
         '    if not context.is_offline_mode():\n'
         '        op.drop_column("accounts", "notes")',
         unlintable=True),
]


def write_scripts(versions: Path, case: Case) -> None:
    """The first revision and the case's, in `versions`."""
    versions.mkdir(parents=True, exist_ok=True)
    (versions / "a1_accounts.py").write_text(REVISION.format(revision="a1", down=None,
                                                             body=FIRST))
    (versions / "b2_change.py").write_text(REVISION.format(revision="b2", down="a1",
                                                           body=case.body))
