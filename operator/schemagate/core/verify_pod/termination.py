"""The verdict through the verify container's termination message: Kubernetes keeps at
most 4 KiB of it, so `termination_message` writes counts and the first names, always as
whole JSON, never a truncated one; `read_verdict` reads it back."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from schemagate.core.check.columns import ColumnMismatch, ColumnRequirement, FoundColumn
from schemagate.core.check.verdict import Fingerprint, Place, Requirement, Verdict
from schemagate.core.wire.reasons import Reason

JSON = dict[str, Any]
#: What the kubelet keeps of a termination message.
TERMINATION_LIMIT = 4096


def termination_message(verdict: Verdict, limit: int = TERMINATION_LIMIT) -> str:
    """The verdict as one JSON object of at most `limit` bytes: counts and the first
    names; lists and the message shrink until it fits, the JSON is never cut."""
    fp = verdict.fingerprint
    shown = max(len(verdict.missing_tables), len(verdict.found_elsewhere),
                len(verdict.column_mismatches), 1)
    message_length = len(verdict.message)
    while True:
        body = {
            "v": 1, "verified": verdict.verified, "reason": verdict.reason.value,
            "message": cut(verdict.message, message_length),
            "missing": {"count": len(verdict.missing_tables),
                        "first": list(verdict.missing_tables[:shown])},
            "elsewhere": {"count": len(verdict.found_elsewhere),
                          "first": [[p.table, p.schema, p.database]
                                    for p in verdict.found_elsewhere[:shown]]},
            "columns": {"count": len(verdict.column_mismatches),
                        "first": [_mismatch(m) for m in verdict.column_mismatches[:shown]]},
            "revision": {"current": _sorted(verdict.current_revisions),
                         "expected": _sorted(verdict.expected_revisions)},
            "database": None if fp is None else _fingerprint(fp, message_length),
            "duration_ms": round(verdict.duration_ms, 1),
        }
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        if len(text.encode()) <= limit:
            return text
        if shown > 1:
            shown //= 2
        elif message_length > 200:
            message_length //= 2
        elif shown:
            shown = 0
        else:
            body["revision"] = {"current": None, "expected": None, "cut": True}
            body["database"] = None
            message_length = min(message_length, 100)
            body["message"] = cut(verdict.message, message_length)
            return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def cut(text: str, length: int) -> str:
    return text if len(text) <= length else text[: max(length - 1, 0)] + "…"


def _sorted(revisions: frozenset[str] | None) -> list[str] | None:
    return None if revisions is None else sorted(revisions)


def _mismatch(m: ColumnMismatch) -> list[Any]:
    found = m.found
    return [m.declared.table, m.declared.name, None if found is None else found.type,
            None if found is None else found.nullable]


def _fingerprint(fp: Fingerprint, length: int) -> JSON:
    return {"host": fp.host, "port": fp.port, "database": fp.database, "user": fp.user,
            "search_path": cut(fp.search_path, min(length, 200)),
            "server_version": fp.server_version, "system_identifier": fp.system_identifier}


class NoVerdict(ValueError):
    """The termination message holds no verdict (the container crashed, or is not ours)."""


def read_verdict(text: str, requirement: Requirement) -> Verdict:
    """The verdict a verify pod wrote (`termination_message`); the declared columns come
    from `requirement`, the rest from the message."""
    try:
        body = json.loads(text)
        if not isinstance(body, dict) or body.get("v") != 1:
            raise NoVerdict("not a verdict of schemagate verify")
        reason = Reason(body["reason"])
        declared = {(c.table, c.name): c for c in requirement.columns}
        db = body.get("database")
        revision = body.get("revision") or {}
        return Verdict(
            verified=bool(body["verified"]) and reason is Reason.VERIFIED,
            reason=reason, message=str(body.get("message") or ""),
            missing_tables=tuple(str(t) for t in body["missing"]["first"]),
            found_elsewhere=tuple(Place(table=t, schema=s, database=d)
                                  for t, s, d in body["elsewhere"]["first"]),
            current_revisions=_revision_set(revision.get("current")),
            expected_revisions=_revision_set(revision.get("expected")),
            fingerprint=None if db is None else Fingerprint(
                host=db.get("host"), port=db.get("port"), database=str(db["database"]),
                user=str(db["user"]), search_path=str(db.get("search_path") or ""),
                server_version=str(db.get("server_version") or ""),
                system_identifier=db.get("system_identifier")),
            duration_ms=float(body.get("duration_ms") or 0.0),
            column_mismatches=tuple(
                ColumnMismatch(declared=declared.get((t, c), ColumnRequirement(t, c)),
                               found=None if ty is None else FoundColumn(ty, bool(nul)))
                for t, c, ty, nul in body["columns"]["first"]),
        )
    except NoVerdict:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise NoVerdict(f"not a verdict of schemagate verify ({type(exc).__name__})") from None


def _revision_set(value: Sequence[str] | None) -> frozenset[str] | None:
    return None if value is None else frozenset(str(v) for v in value)
