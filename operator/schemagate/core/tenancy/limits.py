"""How much of a tenant's input the operator reads at most (pure).

Every string a namespace controls (a Secret value, its database's answers, the version
table's rows) is measured against these bounds before anything else looks at it: no
tenant's input may cost the operator more than a linear pass over what the bound lets in,
and a breach is said in a message that names what was too large, its size and the limit.
"""

from __future__ import annotations

#: Bytes of a database URL read from a Secret: a URL with every libpq option spelt out is
#: well under 1 KiB.
MAX_URL_BYTES = 4096
#: Hosts one URL may name (`?host=a,b&port=...`, or `host=` repeated): each one costs a
#: connection attempt within the same deadline.
MAX_HOSTS = 4
#: Characters kept of a free-text string the tenant's database returns (search_path,
#: server_version, names): the server cuts it, so a longer one is never transferred.
MAX_DATABASE_TEXT = 256
#: Schemas of the effective search path kept.
MAX_SEARCH_PATH = 32
#: Other schemas reported as holding one missing table.
MAX_PLACES = 16
#: Columns named like a missing one (case aside) reported for it.
MAX_SIMILAR = 8
#: Rows of the version table read: Alembic writes one per head.
MAX_VERSION_ROWS = 32
#: Characters of one revision in the version table (Alembic's column is varchar(32)).
MAX_REVISION = 64


def url_too_large(secret: str, key: str, size: int) -> str | None:
    """Why a URL of `size` bytes in Secret `secret` key `key` is refused, or None."""
    if size <= MAX_URL_BYTES:
        return None
    return (f"the URL in Secret {secret} key {key} is {size:,} bytes, over the "
            f"{MAX_URL_BYTES}-byte limit")


def too_many_hosts(count: int) -> str | None:
    """Why a URL naming `count` hosts is refused, or None."""
    if count <= MAX_HOSTS:
        return None
    return f"the URL names {count} hosts, over the limit of {MAX_HOSTS}"


def database_text(text: str | None) -> str | None:
    """`text` from the tenant's database as the operator keeps it: the server already cut
    it to one character over the limit, so a longer value is marked as cut."""
    if text is None or len(text) <= MAX_DATABASE_TEXT:
        return text
    return text[:MAX_DATABASE_TEXT] + "... (cut)"


def version_rows_refused(place: str, revisions: list[str]) -> str | None:
    """Why the version table at `place` cannot be read as Alembic writes it, given its
    first rows (at most one more than the limit, each cut one character over its limit
    by the server), or None."""
    if len(revisions) > MAX_VERSION_ROWS:
        return (f"the version table {place} has more than {MAX_VERSION_ROWS} rows "
                "(Alembic writes one per head)")
    if any(len(revision) > MAX_REVISION for revision in revisions):
        return (f"the version table {place} holds a revision longer than {MAX_REVISION} "
                "characters")
    return None
