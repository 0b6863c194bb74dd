"""A Deployment owners' consent to being cloned (pure): the annotation
`schemagate.io/clone-for: <DatabaseSchema name>[,<name>...]` on the Deployment object.

Not a label, and not on the pod template: `schemagate.io/schema` on the pods says which
schema they need, and every gated Deployment carries it. Consent says more: that
DatabaseSchema may run a migration Job or a verify pod as this Deployment (its image,
env, Secrets and service account), and only the Deployment's owners can give it.

The value is a tenant's text of up to 256 KiB: it is measured before it is split, and
split once, so reading it costs no more than its bounded length.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from schemagate.core.wire.models import GROUP

CLONE_FOR = f"{GROUP}/clone-for"
#: Names one Deployment may consent to: a backend serves a handful of schemas.
MAX_NAMES = 32
#: A DatabaseSchema's name is a DNS-1123 subdomain.
MAX_NAME = 253
#: MAX_NAMES names at their longest, each with a comma and a space.
MAX_VALUE = MAX_NAMES * (MAX_NAME + 2)
_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


class UnreadableConsent(ValueError):
    """The annotation is longer, or names more, than any consent needs."""


def names(value: str) -> tuple[str, ...]:
    """The names of `value`, in their order, once each; blanks around commas ignored."""
    if len(value) > MAX_VALUE:
        raise UnreadableConsent(f"it takes {len(value):,} characters, more than the "
                                f"{MAX_VALUE:,} that {MAX_NAMES} names need")
    listed = [name.strip() for name in value.split(",")]
    found = tuple(dict.fromkeys(name for name in listed if name))
    if len(found) > MAX_NAMES:
        raise UnreadableConsent(f"it names {len(found)} DatabaseSchemas, more than "
                                f"{MAX_NAMES}")
    return found


def annotation(deployment: Mapping[str, Any]) -> str | None:
    """The Deployment object's own annotation; the pod template's does not count."""
    value = ((deployment.get("metadata") or {}).get("annotations") or {}).get(CLONE_FOR)
    return value if isinstance(value, str) else None


def given(deployment: Mapping[str, Any], schema: str) -> bool:
    """Whether the Deployment's owners consent to DatabaseSchema `schema` cloning it.
    Raises UnreadableConsent for an annotation beyond the bounds."""
    value = annotation(deployment)
    return value is not None and schema in names(value)


def annotate_command(deployment: Mapping[str, Any], schema: str) -> str:
    """The `kubectl annotate` that gives the consent, keeping the names already given
    (only when each is a name: the command quotes no other text of the tenant's)."""
    meta = deployment.get("metadata") or {}
    where = f"-n {meta['namespace']} " if meta.get("namespace") else ""
    value = annotation(deployment)
    kept: tuple[str, ...] = ()
    if value is not None:
        try:
            kept = names(value)
        except UnreadableConsent:
            kept = ()
        if not all(_NAME.fullmatch(name) for name in kept):
            kept = ()
    listed = ",".join((*kept, schema))
    overwrite = "--overwrite " if value is not None else ""
    return f"kubectl annotate {overwrite}{where}deployment/{meta.get('name')} {CLONE_FOR}={listed}"
