"""Text for a terminal: colour when asked, and every string from the cluster without the
secrets a text may carry (URL passwords, password and token values), cut to a bound and
with its control characters escaped, so that no object's field can show a password, move
the cursor, clear the screen or forge a line of the output. JSON gets the same strings,
unescaped: the encoder escapes them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schemagate.core.tenancy.scrub import escape_controls, scrub_patterns

#: Characters of one field shown (messages are bounded by the operator already; labels,
#: names and Events written by others are not).
FIELD_LIMIT = 2000

_RESET = "\x1b[0m"
_CODES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}


def shown(text: object, limit: int = FIELD_LIMIT) -> str:
    """`text` without its secrets, at most `limit` characters (then `...`). The secrets
    go first: a cut could leave part of a password no pattern recognises."""
    value = scrub_patterns("" if text is None else str(text))
    return value[:limit] + ("..." if len(value) > limit else "")


def clean(text: object, limit: int = FIELD_LIMIT) -> str:
    """`text` as one safe line: `shown`, with its control characters escaped."""
    return escape_controls(shown(text, limit))


def bounded(data: Any) -> Any:
    """`data` (dicts, lists, scalars) for `-o json`: every string `shown`."""
    if isinstance(data, str):
        return shown(data)
    if isinstance(data, Mapping):
        return {str(k): bounded(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [bounded(v) for v in data]
    return data


@dataclass(frozen=True)
class Paint:
    """Colours on a terminal; nothing when the output is piped or NO_COLOR is set."""

    colour: bool = False

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{_CODES[code]}m{text}{_RESET}" if self.colour and text else text

    def bold(self, text: str) -> str:
        return self._wrap("bold", text)

    def dim(self, text: str) -> str:
        return self._wrap("dim", text)

    def good(self, text: str) -> str:
        return self._wrap("green", text)

    def bad(self, text: str) -> str:
        return self._wrap("red", text)

    def warn(self, text: str) -> str:
        return self._wrap("yellow", text)

    def name(self, text: str) -> str:
        return self._wrap("cyan", text)

    def state(self, ok: bool | None, text: str) -> str:
        """`text` green when `ok`, red when not, yellow when unknown."""
        if ok is None:
            return self.warn(text)
        return self.good(text) if ok else self.bad(text)


def age(since: str | None, now: datetime) -> str:
    """`45s`, `3m`, `2h`, `4d` since an RFC 3339 time, as kubectl prints ages."""
    if not since:
        return "unknown"
    try:
        then = datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        return "unknown"
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit == "m" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
