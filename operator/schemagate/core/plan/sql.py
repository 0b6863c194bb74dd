"""The SQL a plan would run, cut into statements and read with sqlglot (pure).

Each statement keeps where it starts and ends in the rendered SQL (squawk reports lines
and columns, which `plan` maps back to a statement) and the schema changes in it that an
older version of the code could notice: a table or column dropped, renamed or retyped, a
column made NOT NULL, a NOT NULL column added without a default. A statement sqlglot
cannot read is kept as `read=False`: nothing is claimed about it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import SqlglotError
from sqlglot.tokenizer_core import Token, TokenType

#: Statements read from one plan; a scripts folder writing more is refused.
MAX_STATEMENTS = 20_000
#: Tables dropped by one statement, at most, that are looked at.
MAX_NAMES = 1_000
_POSTGRES = Dialect.get_or_raise("postgres")
# Types whose column gets its value from a sequence: NOT NULL without DEFAULT is fine.
_SEQUENCED = frozenset({exp.DataType.Type.SERIAL, exp.DataType.Type.BIGSERIAL,
                        exp.DataType.Type.SMALLSERIAL})
_RELATIONS = frozenset({"TABLE", "VIEW", "MATERIALIZED VIEW"})
#: The statements that may change what exists, and are parsed.
_CHANGING = frozenset({"ALTER", "DROP"})
#: Statements whose effect is code sqlglot does not read.
_OPAQUE = frozenset({"DO", "CALL", "EXECUTE"})
_BEFORE_TABLE = frozenset({TokenType.INTO, TokenType.UPDATE, TokenType.FROM, TokenType.TABLE})


class TooManyStatements(ValueError):
    """More statements than `MAX_STATEMENTS`."""


class ChangeKind(StrEnum):
    DROP_TABLE = "drops table"
    RENAME_TABLE = "renames table"
    DROP_COLUMN = "drops column"
    RENAME_COLUMN = "renames column"
    RETYPE_COLUMN = "changes the type of column"
    SET_NOT_NULL = "makes NOT NULL column"
    ADD_REQUIRED_COLUMN = "adds a NOT NULL column without a default to table"


@dataclass(frozen=True)
class Change:
    """One change to `table` (in `schema`, None when the statement does not say)."""

    kind: ChangeKind
    schema: str | None
    table: str
    column: str | None = None
    #: The new name or type, when there is one.
    to: str | None = None

    @property
    def subject(self) -> str:
        return f"{self.table}.{self.column}" if self.column else self.table


@dataclass(frozen=True)
class Statement:
    """`text` is the rendered SQL from `start` to `end` (exclusive), the `;` included."""

    start: int
    end: int
    text: str
    changes: tuple[Change, ...] = ()
    read: bool = True
    #: The table it changes, when it changes one (for Alembic's own version table).
    table: str | None = None


def statements(sql: str) -> list[Statement]:
    """The statements of `sql`, in order. Raises `TooManyStatements`."""
    try:
        tokens = _POSTGRES.tokenize(sql)
    except SqlglotError:
        text = sql.strip()
        return [Statement(0, len(sql), text, read=False)] if text else []
    found: list[Statement] = []
    current: list[Token] = []
    for token in tokens:
        if token.token_type is not TokenType.SEMICOLON:
            current.append(token)
            continue
        if current:
            found.append(_statement(sql, current, token.end + 1))
            if len(found) > MAX_STATEMENTS:
                raise TooManyStatements(f"more than {MAX_STATEMENTS:,} statements")
        current = []
    if current:
        found.append(_statement(sql, current, current[-1].end + 1))
    return found


def _statement(sql: str, tokens: list[Token], end: int) -> Statement:
    start = tokens[0].start
    text = sql[start:end]
    first = tokens[0].text.upper()
    if first in _OPAQUE:
        return Statement(start, end, text, read=False)
    if first not in _CHANGING:
        # Only ALTER and DROP change what exists; the rest is not parsed (most of a plan's
        # statements: parsing is what a plan's time goes to).
        return Statement(start, end, text, table=_target(tokens))
    try:
        parsed = _POSTGRES.parser().parse(tokens, sql)
    except SqlglotError:
        return Statement(start, end, text, read=False)
    tree = parsed[0] if len(parsed) == 1 else None
    if tree is None or isinstance(tree, exp.Command):
        return Statement(start, end, text, read=False)
    return Statement(start, end, text, tuple(changes(tree)), table=_changed_table(tree))


def changes(tree: exp.Expr) -> list[Change]:
    """The changes an older version of the code could notice, in one parsed statement."""
    if isinstance(tree, exp.Drop) and str(tree.args.get("kind") or "").upper() in _RELATIONS:
        return [Change(ChangeKind.DROP_TABLE, *_table(table))
                for table in (tree.args.get("tables") or [])[:MAX_NAMES]
                if isinstance(table, exp.Table)]
    if not isinstance(tree, exp.Alter) or \
            str(tree.args.get("kind") or "").upper() not in _RELATIONS:
        return []
    target = tree.this
    if not isinstance(target, exp.Table):
        return []
    schema, table = _table(target)
    renamed_to = _column_renamed_to(tree)
    found: list[Change] = []
    for action in tree.args.get("actions") or []:
        if isinstance(action, exp.AlterRename) and renamed_to is not None:
            found.append(Change(ChangeKind.RENAME_COLUMN, schema, table, _name(action.this),
                                renamed_to))
            continue
        found += _action(action, schema, table)
    return found


def _column_renamed_to(tree: exp.Alter) -> str | None:
    """The new name in `ALTER TABLE t RENAME c TO d` (COLUMN left out, as Alembic writes
    it), which sqlglot reads as a table rename to `c` with a `TO d` option."""
    for option in tree.args.get("options") or []:
        if isinstance(option, exp.ToTableProperty):
            return _name(option.this)
    return None


def _action(action: exp.Expr, schema: str | None, table: str) -> list[Change]:
    if isinstance(action, exp.Drop) and str(action.args.get("kind") or "").upper() == "COLUMN":
        return [Change(ChangeKind.DROP_COLUMN, schema, table, _name(column))
                for column in action.args.get("tables") or [] if _name(column)]
    if isinstance(action, exp.RenameColumn):
        return [Change(ChangeKind.RENAME_COLUMN, schema, table, _name(action.this),
                       _name(action.args.get("to")))]
    if isinstance(action, exp.AlterRename):
        return [Change(ChangeKind.RENAME_TABLE, schema, table, None, _name(action.this))]
    if isinstance(action, exp.AlterColumn):
        column = _name(action.this)
        if action.args.get("dtype") is not None:
            return [Change(ChangeKind.RETYPE_COLUMN, schema, table, column,
                           action.args["dtype"].sql("postgres"))]
        if action.args.get("allow_null") is False and not action.args.get("drop"):
            return [Change(ChangeKind.SET_NOT_NULL, schema, table, column)]
        return []
    if isinstance(action, exp.ColumnDef) and _required(action):
        return [Change(ChangeKind.ADD_REQUIRED_COLUMN, schema, table, _name(action.this))]
    return []


def _required(column: exp.ColumnDef) -> bool:
    """NOT NULL, and nothing gives existing rows or older inserts a value."""
    kinds = [c.args.get("kind") for c in column.args.get("constraints") or []]
    not_null = any(isinstance(k, exp.NotNullColumnConstraint) and not k.args.get("allow_null")
                   for k in kinds)
    valued = any(isinstance(k, exp.DefaultColumnConstraint | exp.GeneratedAsIdentityColumnConstraint
                            | exp.ComputedColumnConstraint) for k in kinds)
    dtype = column.args.get("kind")
    sequenced = isinstance(dtype, exp.DataType) and dtype.this in _SEQUENCED
    return not_null and not valued and not sequenced


def _changed_table(tree: exp.Expr) -> str | None:
    target = tree.this if isinstance(tree, exp.Alter) else None
    return _table(target)[1] if isinstance(target, exp.Table) else None


def _target(tokens: list[Token]) -> str | None:
    """The table of `INSERT INTO t`, `UPDATE t`, `DELETE FROM t`, `CREATE TABLE t`
    (schema-qualified or not), read from the first tokens."""
    for index, token in enumerate(tokens[:4]):
        if token.token_type in _BEFORE_TABLE and index + 1 < len(tokens):
            names = tokens[index + 1:index + 4]
            if len(names) == 3 and names[1].token_type is TokenType.DOT:
                return _token_name(names[2])
            return _token_name(names[0])
    return None


def _token_name(token: Token) -> str:
    return token.text if token.token_type is TokenType.IDENTIFIER else token.text.lower()


def _table(table: exp.Table) -> tuple[str | None, str]:
    return _identifier(table.args.get("db")), _identifier(table.this) or ""


def _name(node: exp.Expr | None) -> str:
    if isinstance(node, exp.Column | exp.Table):
        return _identifier(node.this) or ""
    return _identifier(node) or ""


def _identifier(node: exp.Expr | None) -> str | None:
    """The name as PostgreSQL stores it: folded to lower case unless quoted."""
    if not isinstance(node, exp.Identifier):
        return None
    name = str(node.this)
    return name if node.quoted else name.lower()
