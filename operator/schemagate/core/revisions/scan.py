"""The top-level assignments of a revision file, found in one pass over its text (pure).

A revision file comes from a tenant's ConfigMap, and the operator needs only four of its
module-level literals: `revision`, `down_revision`, `depends_on`, `branch_labels`.
Parsing the whole file into a syntax tree costs hundreds of times its size (a 1 MiB
`x = [0, 0, ...]` took over 500 MB), so the file is never parsed. One scan follows what
can hide or continue a statement (strings, comments, brackets, line continuations) to
tell whether a line that starts with one of those names is at the top level; the
regular expressions skip everything else. Time is linear in the file, memory constant
beyond it; only an assignment's value, at most `MAX_VALUE` characters, is read as a
Python literal. Anything else wrong with the file (a syntax error the scan does not
follow) is found by the migration Job, which loads the files through Alembic.

`schemagate plan` also asks whether a file names offline mode (`mentions_offline_mode`),
from its tokens, in time linear in the file as well.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize

#: Characters of one assignment's value read as a literal: a tuple of many down
#: revisions fits with room to spare, and the literal's tree stays small.
MAX_VALUE = 4096
NAMES = ("revision", "down_revision", "depends_on", "branch_labels")
#: What a revision file that branches on offline mode names: `context.is_offline_mode()`,
#: `op.get_context().as_sql`.
OFFLINE_MODE_NAMES = frozenset({"is_offline_mode", "as_sql"})

# What can hide or continue a statement: a comment, a string (a short one whole, else
# its opening quote), a run of brackets, a backslash. A string's prefix (r, b, f...)
# changes nothing about where it ends: a backslash keeps the next quote from ending it
# even in a raw string.
_QUOTES = ("'''", '"""', "'", '"')
_STRINGS_BRACKETS = r"""'''|\"\"\"|'[^'\\\n]*'|"[^"\\\n]*"|'|"|[()\[\]{}]+|\\"""
# A comment, to its line end. Each comment line is a match of its own: a run of them in
# one match needs a possessive repeat to keep no state per line, and Python 3.11.2 (the
# image's Debian Python) skips the alternatives after a possessive repeat and loses
# brackets (an `unmatched ')'` in a valid file).
_HIDING = re.compile(r"#[^\n]*|" + _STRINGS_BRACKETS)
# Inside a string: an escaped character, the closing quote, or, for a one-line string,
# the end of the line.
_IN_STRING = {quote: re.compile(r"\\[\s\S]|" + re.escape(quote) + ("" if len(quote) == 3
                                                                 else r"|\n"))
              for quote in _QUOTES}
# A wanted name at the start of a line, or after `;`; whether that is the top level of the
# module is for the scan to tell.
_CANDIDATE = re.compile(r"(?:^|(?<=;))[ \t]*(?=(?:" + "|".join(NAMES) + r")\b)", re.MULTILINE)
_ASSIGNMENT = re.compile(r"(?P<name>" + "|".join(NAMES) + r")[ \t]*(?::[^=\n;]*)?=(?!=)[ \t]*")
# Within one statement, what ends it too.
_IN_STATEMENT = re.compile(r"#[^\n]*|\n|;|" + _STRINGS_BRACKETS)
_COMPOUND = re.compile(r"(?:if|elif|else|for|while|with|def|class|try|except|finally|async|"
                       r"match|case)\b")
_OPENING, _CLOSING = "([{", ")]}"


class UnreadableFile(ValueError):
    """The file's text cannot be followed, or a wanted assignment is not a literal (or is
    too long to read as one); the text says which line and, for an assignment, which
    name."""


def assignments(text: str) -> dict[str, object]:
    """The literal values of the wanted names assigned at the top level of `text` (the
    last assignment of a name wins, as at import).

    Raises `UnreadableFile` for an unclosed bracket or string, an unmatched bracket, a
    wanted value that is not a literal or is longer than `MAX_VALUE`."""
    # Where each name was last assigned: only that assignment counts, as at import.
    last: dict[str, tuple[int, int, int]] = {}
    scan = _Scan(text)
    line_start, seen = 0, 0  # where the line of the last candidate starts
    for candidate in _CANDIDATE.finditer(text):
        start = candidate.end()
        # Looked for only since the last candidate: a line of 100,000 `;revision=1` is
        # read once, not once per candidate.
        line_start, seen = max(line_start, text.rfind("\n", seen, start) + 1), start
        if start < scan.pos or not scan.top_level_before(start):
            continue  # inside a string, a comment or brackets, or a continued line
        after_separator = text[candidate.start() - 1:candidate.start()] == ";"
        if candidate.start() != start and not after_separator:
            continue  # indented: the body of a block
        if after_separator and not _simple_line(text, line_start):
            continue  # after `;` in a block, or on a block's header line: its body
        match = _ASSIGNMENT.match(text, start)
        if match is None:
            continue
        end = _statement_end(text, match.end(), match["name"])
        last[match["name"]] = (start, match.end(), end)
        scan.pos = end
    scan.top_level_before(len(text))
    if scan.depth:
        raise UnreadableFile(f"line {_line(text, scan.opened_at)}: "
                             f"'{text[scan.opened_at]}' was never closed")
    return {name: _literal(text, name, *where) for name, where in last.items()}


def _literal(text: str, name: str, start: int, value: int, end: int) -> object:
    try:
        return ast.literal_eval(text[value:end].strip())
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise UnreadableFile(
            f"{name} is not a literal (line {_line(text, start)}); schemagate reads "
            "revision files without running them, so revision, down_revision, depends_on "
            "and branch_labels must be written as strings, tuples or None") from None


class _Scan:
    """Where the text stands at `pos`: how deep in brackets, and where the outermost
    open one was opened. Moves forward only."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0
        self.opened_at = 0

    def top_level_before(self, stop: int) -> bool:
        """Follow the text up to `stop`; whether `stop` is then at the top level: outside
        any string, comment or bracket, and not on a line continued from the one before."""
        text = self.text
        while (match := _HIDING.search(text, self.pos, stop)) is not None:
            self.pos = match.end()
            token = match.group()
            if token in _QUOTES:
                self.pos = _string_end(text, match.start(), token)
            elif token[0] == "#":  # to the end of its line, whatever `stop` cut off
                self.pos = _line_end(text, match.end())
            elif token[0] in _OPENING or token[0] in _CLOSING:
                self._brackets(token, match.start())
            elif token == "\\" and text.startswith(("\n", "\r\n"), self.pos):
                self.pos = text.index("\n", self.pos) + 1
            if self.pos > stop:
                return False  # `stop` is inside what was just skipped
        self.pos = max(self.pos, stop)
        return self.depth == 0 and not text.endswith("\\\n", 0, stop) \
            and not text.endswith("\\\r\n", 0, stop)

    def _brackets(self, run: str, at: int) -> None:
        opens = sum(map(run.count, _OPENING))
        if opens == len(run):  # deeper only: count them
            if self.depth == 0:
                self.opened_at = at
            self.depth += opens
            return
        if opens == 0 and self.depth >= len(run):  # shallower, never below zero
            self.depth -= len(run)
            return
        for offset, bracket in enumerate(run):
            if bracket in _OPENING:
                if self.depth == 0:
                    self.opened_at = at + offset
                self.depth += 1
            elif self.depth == 0:
                raise UnreadableFile(f"line {_line(self.text, at + offset)}: unmatched "
                                     f"'{bracket}'")
            else:
                self.depth -= 1


def _statement_end(text: str, start: int, name: str) -> int:
    """Where the statement whose value starts at `start` ends: the first line end or `;`
    outside its strings and brackets, looked for no further than `MAX_VALUE`."""
    limit = min(len(text), start + MAX_VALUE + 1)
    depth, pos = 0, start
    while (match := _IN_STATEMENT.search(text, pos, limit)) is not None:
        token, pos = match.group(), match.end()
        if token in _QUOTES:
            pos = _string_end(text, match.start(), token)
        elif token in ("\n", ";") and depth <= 0:  # below zero: no literal, said later
            return match.start()
        elif token[0] == "#":  # the rest of the line, however long
            pos = _line_end(text, match.start())
            if depth <= 0:
                return pos
        elif token[0] in _OPENING or token[0] in _CLOSING:
            depth += 2 * sum(map(token.count, _OPENING)) - len(token)
        elif token == "\\":
            pos += 1  # a line continuation, or something that is no literal anyway
        if pos >= limit:
            break
    if limit == len(text) and pos <= limit:
        return limit  # the last statement of the file
    raise UnreadableFile(f"{name} is longer than {MAX_VALUE:,} characters (line "
                         f"{_line(text, start)}), over the limit for a value read as a "
                         "literal")


def _string_end(text: str, start: int, quote: str) -> int:
    pattern = _IN_STRING[quote]
    pos = start + len(quote)
    while (match := pattern.search(text, pos)) is not None:
        if match.group() == quote:
            return match.end()
        if match.group() == "\n":
            break
        pos = match.end()
    kind = "triple-quoted string" if len(quote) == 3 else "string"
    raise UnreadableFile(f"line {_line(text, start)}: unterminated {kind} literal")


def _simple_line(text: str, start: int) -> bool:
    """Whether the line at `start` begins, at column 0, a statement that is not a block's
    header (whose `;` would separate statements of its body)."""
    return text[start:start + 1] not in ("", " ", "\t") and _COMPOUND.match(text, start) is None


def _line_end(text: str, pos: int) -> int:
    end = text.find("\n", pos)
    return len(text) if end < 0 else end


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def mentions_offline_mode(text: str) -> bool:
    """Whether `text` names offline mode in its code (not in a string or a comment): then
    what the file renders offline is not what it runs online. Tokens only, in time linear
    in the file; a file that cannot be tokenized says no, and fails to load instead."""
    if not any(name in text for name in OFFLINE_MODE_NAMES):
        return False  # most files: no need to tokenize
    try:
        return any(token.type == tokenize.NAME and token.string in OFFLINE_MODE_NAMES
                   for token in tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return False
