"""Text for a terminal: colour when asked, and every string from the cluster cut to a
bound and with its control characters escaped, so that no object's field can move the
cursor, clear the screen or forge a line of the output."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from schemagate.core.tenancy.scrub import escape_controls

#: Characters of one field shown (messages are bounded by the operator already; labels,
#: names and Events written by others are not).
FIELD_LIMIT = 2000

_RESET = "\x1b[0m"
_CODES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}


def clean(text: object, limit: int = FIELD_LIMIT) -> str:
    """`text` as one safe line: at most `limit` characters, control characters escaped."""
    value = "" if text is None else str(text)
    cut = value[:limit] + ("..." if len(value) > limit else "")
    return escape_controls(cut)


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
