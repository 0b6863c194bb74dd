"""Which keys of a ConfigMap may become revision files on disk (pure).

The keys come from whoever may write the ConfigMap, and each becomes a file name in a
directory of ours: nothing but a plain name (the characters the API server allows in a
ConfigMap key, ending in `.py`, not starting with a dot) may pass, so no key can reach
outside that directory (`../x.py`, `/etc/x.py`, `a/b.py`), hide (`.x.py`) or carry a
NUL. Sizes are bounded here as well as by the API server, so a message never grows
with the input.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

#: The API server's own limit on a ConfigMap key.
MAX_NAME = 253
#: A ConfigMap holds at most 1 MiB; so much Python is already more than any migration.
MAX_TOTAL_BYTES = 1024 * 1024
MAX_FILES = 1000
#: Names shown in a message, at most; the rest are counted.
SHOWN = 5
_PLAIN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*\.py")


class NoScripts(ValueError):
    """Not a single revision: applying nothing must never pass for a success."""


class InvalidScripts(ValueError):
    """The revision files cannot be read or make no graph; the text names the key or file."""


def shown(name: str, limit: int = 60) -> str:
    """`name` as a message may quote it: printable, and short."""
    text = name.encode("unicode_escape").decode("ascii")  # a NUL shows as \x00
    return f"'{text}'" if len(text) <= limit else f"'{text[:limit]}...' ({len(name)} characters)"


def listing(names: list[str]) -> str:
    head = ", ".join(shown(n, 40) for n in names[:SHOWN])
    return head + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def revision_files(files: Mapping[str, str]) -> tuple[dict[str, str], tuple[str, ...]]:
    """The revision files among `files` (name to text), and the other keys, ignored.

    Raises `InvalidScripts` for a key ending in `.py` that is not a plain file
    name, and for more files or bytes than the bounds above."""
    if len(files) > MAX_FILES:
        raise InvalidScripts(f"{len(files)} keys; at most {MAX_FILES} revision files "
                                   "are read")
    size = sum(len(name.encode("utf-8", "replace")) + len(text.encode("utf-8", "replace"))
               for name, text in files.items())
    if size > MAX_TOTAL_BYTES:
        raise InvalidScripts(f"{size:,} bytes; at most {MAX_TOTAL_BYTES:,} are read")
    chosen, ignored = {}, []
    for name, text in sorted(files.items()):
        if not name.endswith(".py"):
            ignored.append(name)
            continue
        if len(name) > MAX_NAME:
            raise InvalidScripts(f"key {shown(name)} is longer than {MAX_NAME} "
                                       "characters")
        if not _PLAIN.fullmatch(name):
            raise InvalidScripts(
                f"key {shown(name)} is not a plain file name: a revision file's key is "
                "letters, digits, '-', '_' and '.', ends in .py and does not start with '.'")
        chosen[name] = text
    return chosen, tuple(ignored)
