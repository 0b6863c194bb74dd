"""What this process knows between events: each schema's last check, its wake-up, and
when it first saw each pod."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

from schemagate.core.gate import readiness as gate
from schemagate.core.gate.pods import Written
from schemagate.core.status.outcome import Outcome
from schemagate.core.tenancy.scrub import Scrubbers
from schemagate.core.wire.models import DatabaseSchemaSpec
from schemagate.postgres.search import OtherDatabases

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
class SchemaState:
    """What this process knows of one DatabaseSchema between its passes."""

    #: Set by whatever should make its loop look again; None until its loop runs.
    wakeup: asyncio.Event | None = None
    #: The last check its pods were gated by (None: no pass got that far yet).
    published: Published | None = None
    #: What it reads besides itself: ("Secret" | "ConfigMap" | "Deployment", namespace, name).
    references: frozenset[tuple[str, str, str]] = frozenset()
    #: What the watch last showed of it (generation, rerun annotation); None: not shown yet.
    version: object = None
    #: What its last check found in other databases (database.OtherDatabases).
    elsewhere: OtherDatabases | None = None
    #: Its last pass left it settled: every gated pod open, none waiting, nothing running;
    #: its next timed pass may read the watch's copy.
    settled: bool = False
    #: The start of its check under way: a pod that existed by then needs no wake-up, that
    #: check serves it (with verifyFrom: Pod the check spans the passes its pod runs).
    checking: datetime | None = None
    #: Its credentials refused in a row (`schedule.refusals_after`).
    refusals: int = 0
    #: Its last check was refused: until its next pass, nothing wakes it (`schedule.Backoff`).
    held: bool = False


@dataclass
class Registry:
    """What this process knows between events: each schema's state, the pods it saw and
    patched, the Secrets it read and the Deployments it watches."""

    schemas: dict[Key, SchemaState] = field(default_factory=dict)
    #: When this process first saw each pod (uid): a moment the pod certainly existed by.
    seen: dict[str, datetime] = field(default_factory=dict)
    #: What this process last patched on each pod (uid), by condition type.
    written: dict[str, dict[str, Written]] = field(default_factory=dict)
    #: Secret values read, by (namespace, Secret, key), kept only while Secrets are
    #: watched (`Context.keep_secrets`); a change of the Secret drops them.
    secrets: dict[tuple[str, str, str], str] = field(default_factory=dict)
    #: Reads under way, shared by the schemas that name the same Secret and key.
    secret_reads: dict[tuple[str, str, str], asyncio.Future[str | Outcome]] = \
        field(default_factory=dict)
    #: Bumped by every change of a Secret: a read that began before it is not kept.
    secret_changes: int = 0
    #: The generation last seen of each Deployment (namespace, name) of the watched
    #: namespaces: one small entry each.
    deployments: dict[Key, object] = field(default_factory=dict)
    #: Each schema's secrets (the URLs read from its Secret), removed from the text about
    #: that schema alone: its messages, status, pod conditions, Events and log records.
    scrubbers: Scrubbers = field(default_factory=Scrubbers)

    def of(self, key: Key) -> SchemaState:
        """The schema's state, made empty the first time it is asked for."""
        return self.schemas.setdefault(key, SchemaState())

    def looping(self, key: Key) -> asyncio.Event:
        """The schema's loop runs: its wake-up, which events may now set."""
        state = self.of(key)
        if state.wakeup is None:
            state.wakeup = asyncio.Event()
        return state.wakeup

    def loops(self) -> int:
        return sum(1 for state in self.schemas.values() if state.wakeup is not None)

    def first_seen(self, uid: str, now: datetime) -> datetime:
        if uid not in self.seen and len(self.seen) >= SEEN_PODS_LIMIT:
            del self.seen[next(iter(self.seen))]
        return self.seen.setdefault(uid, now)

    def pod_gone(self, uid: str) -> None:
        self.seen.pop(uid, None)
        self.written.pop(uid, None)

    def wrote(self, uid: str, condition_type: str, written: Written) -> None:
        if uid not in self.written and len(self.written) >= SEEN_PODS_LIMIT:
            del self.written[next(iter(self.written))]
        self.written.setdefault(uid, {})[condition_type] = written

    def last_written(self, uid: str, condition_type: str) -> Written | None:
        return self.written.get(uid, {}).get(condition_type)

    def latest_generation(self, key: Key) -> int:
        """The newest generation the watch has shown for the schema (0: none yet)."""
        state = self.schemas.get(key)
        version = None if state is None else state.version
        if isinstance(version, tuple) and version and isinstance(version[0], int):
            return version[0]
        return 0

    def shown(self, key: Key) -> bool:
        """The watch has shown the schema: its loop is about to check it, if not already."""
        state = self.schemas.get(key)
        return state is not None and state.version is not None

    def wake(self, key: Key) -> None:
        state = self.schemas.get(key)
        if state is not None and state.wakeup is not None:
            state.wakeup.set()

    def notice(self, key: Key, version: object) -> None:
        """Wake the schema's loop when what it acts on changed (generation, rerun)."""
        state = self.of(key)
        if state.version is not None and state.version != version:
            self.wake(key)
        state.version = version

    def watch(self, key: Key, spec: DatabaseSchemaSpec) -> None:
        refs = {("Secret", key[0], spec.database.url_secret_ref.name)}
        if spec.database.verify_pod is not None:
            refs.add(("Deployment", key[0], spec.database.verify_pod.from_deployment.name))
        if spec.migrations.job is not None:
            refs.add(("Deployment", key[0], spec.migrations.job.from_deployment.name))
        if spec.migrations.alembic is not None:
            refs.add(("ConfigMap", key[0], spec.migrations.alembic.config_map_ref.name))
        self.of(key).references = frozenset(refs)

    def wake_users_of(self, kind: str, namespace: str, name: str) -> None:
        if kind == "Secret":
            self.secret_changes += 1
            for cached in [k for k in self.secrets if k[:2] == (namespace, name)]:
                del self.secrets[cached]
        for schema, state in self.schemas.items():
            if (kind, namespace, name) in state.references:
                self.wake(schema)

    def deployment_seen(self, namespace: str, name: str, version: object,
                        created: bool = False) -> None:
        """A Deployment's spec or its consent annotation (schemagate.io/clone-for)
        changed (`version` moved), or it was created (`created`; not the first listing of
        an operator that starts): re-check the schemas cloning it. Status updates of a
        rollout leave the version alone and wake nothing. `version` None: deleted."""
        known = self.deployments.pop((namespace, name), None)
        if version is None:  # deleted: forgotten (a schema cloning it says so)
            return
        self.deployments[(namespace, name)] = version
        if (known is None and created) or (known is not None and known != version):
            self.wake_users_of("Deployment", namespace, name)

    async def sleep(self, key: Key, seconds: float) -> bool:
        """Sleep `seconds` or until woken; True when woken. A schema held after a
        refusal sleeps the whole `seconds`, whatever wakes it."""
        event = self.looping(key)
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while True:
            woken = True
            try:
                await asyncio.wait_for(event.wait(), timeout=max(0.0, end - loop.time()))
            except TimeoutError:
                woken = event.is_set()
            event.clear()
            state = self.schemas.get(key)
            if not (woken and state is not None and state.held) or loop.time() >= end:
                return woken

    def forget(self, key: Key) -> None:
        state = self.schemas.pop(key, None)
        if state is not None and state.held and state.wakeup is not None:
            state.wakeup.set()  # a refused schema is not kept asleep past its deletion
        self.scrubbers.forget(key)
