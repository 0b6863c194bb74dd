"""What this process knows between events: each schema's last check, its wake-up, and
when it first saw each pod."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

from schemagate.core import gate
from schemagate.core.models import DatabaseSchemaSpec

Key = tuple[str, str]  # (namespace, name)

#: Pods whose first sighting this process remembers (by uid); the oldest go first. A pod
#: forgotten falls back to its creationTimestamp, so the bound costs latency, never safety.
SEEN_PODS_LIMIT = 50_000


@dataclass
class Published:
    check: gate.Check
    spec: DatabaseSchemaSpec | None
    #: The templates of the pods open after the last pass: a pod of another is a release.
    templates: frozenset[str] = frozenset()


@dataclass
class Registry:
    """What this process knows between events: each schema's gate and its wake-up."""

    gates: dict[Key, Published] = field(default_factory=dict)
    #: What each schema reads besides itself: ("Secret" | "ConfigMap", namespace, name).
    references: dict[Key, frozenset[tuple[str, str, str]]] = field(default_factory=dict)
    wakeups: dict[Key, asyncio.Event] = field(default_factory=dict)
    versions: dict[Key, object] = field(default_factory=dict)
    #: When this process first saw each pod (uid): a moment the pod certainly existed by.
    seen: dict[str, datetime] = field(default_factory=dict)

    def first_seen(self, uid: str, now: datetime) -> datetime:
        if uid not in self.seen and len(self.seen) >= SEEN_PODS_LIMIT:
            del self.seen[next(iter(self.seen))]
        return self.seen.setdefault(uid, now)

    def pod_gone(self, uid: str) -> None:
        self.seen.pop(uid, None)

    def latest_generation(self, key: Key) -> int:
        """The newest generation the watch has shown for the schema (0: none yet)."""
        version = self.versions.get(key)
        if isinstance(version, tuple) and version and isinstance(version[0], int):
            return version[0]
        return 0

    def wake(self, key: Key) -> None:
        if key in self.wakeups:
            self.wakeups[key].set()

    def notice(self, key: Key, version: object) -> None:
        """Wake the schema's loop when what it acts on changed (generation, rerun)."""
        if self.versions.get(key, version) != version:
            self.wake(key)
        self.versions[key] = version

    def watch(self, key: Key, spec: DatabaseSchemaSpec) -> None:
        refs = {("Secret", key[0], spec.database.url_secret_ref.name)}
        if spec.migrations.alembic is not None:
            refs.add(("ConfigMap", key[0], spec.migrations.alembic.config_map_ref.name))
        self.references[key] = frozenset(refs)

    def wake_users_of(self, kind: str, namespace: str, name: str) -> None:
        for schema, refs in self.references.items():
            if (kind, namespace, name) in refs:
                self.wake(schema)

    async def sleep(self, key: Key, seconds: float) -> None:
        event = self.wakeups.setdefault(key, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), timeout=seconds)
        except TimeoutError:
            pass
        event.clear()

    def forget(self, key: Key) -> None:
        self.gates.pop(key, None)
        self.references.pop(key, None)
        self.wakeups.pop(key, None)
        self.versions.pop(key, None)
