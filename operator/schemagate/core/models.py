"""The DatabaseSchema API as pydantic models, camelCase on the wire.

The CRD in `crds/` is generated from these (see `schemagate.crd`), so what the API
server admits and what the operator parses cannot drift apart.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

GROUP = "schemagate.io"
VERSION = "v1alpha1"
KIND = "DatabaseSchema"
PLURAL = "databaseschemas"
SINGULAR = "databaseschema"
SHORT_NAME = "dbschema"

# PostgreSQL truncates identifiers at 63 bytes; a longer name can never match.
Identifier = Annotated[str, Field(min_length=1, max_length=63)]
K8sName = Annotated[str, Field(min_length=1, max_length=253)]


class Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              frozen=True)


class SecretKeyRef(Model):
    """The backend's own Secret and the key that holds its database URL."""

    name: K8sName
    key: Annotated[str, Field(min_length=1, max_length=253)]


class DatabaseSpec(Model):
    url_secret_ref: SecretKeyRef
    schema_: Identifier = Field("public", alias="schema",
                                description="Where the declared tables must be.")
    connect_timeout_seconds: int = Field(5, ge=1, le=60)


class FromDeployment(Model):
    name: K8sName
    container: K8sName | None = Field(None, description="Defaults to the first container.")


class JobSpec(Model):
    from_deployment: FromDeployment
    command: list[str] = Field(min_length=1)
    args: list[str] = Field(default_factory=list)
    backoff_limit: int = Field(0, ge=0, le=10)
    active_deadline_seconds: int = Field(600, ge=10, le=86400)


class ConfigMapRef(Model):
    name: K8sName


class AlembicSpec(Model):
    config_map_ref: ConfigMapRef


class MigrationRun(StrEnum):
    EXTERNAL = "External"
    JOB = "Job"
    ALEMBIC = "Alembic"


class MigrationsSpec(Model):
    run: MigrationRun = MigrationRun.EXTERNAL
    revision_check: bool = True
    version_table: Identifier = "alembic_version"
    version_table_schema: Identifier | None = Field(None, description="Default: database.schema.")
    expected_revisions: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        None, max_length=64)
    job: JobSpec | None = None
    alembic: AlembicSpec | None = None

    @model_validator(mode="after")
    def _runner_is_described(self) -> MigrationsSpec:
        if self.run is MigrationRun.JOB and self.job is None:
            raise ValueError("migrations.run is Job but migrations.job is not set")
        if self.run is MigrationRun.ALEMBIC and self.alembic is None:
            raise ValueError("migrations.run is Alembic but migrations.alembic is not set")
        return self


class SelectorOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


class LabelSelectorRequirement(Model):
    key: K8sName
    operator: SelectorOperator
    values: list[str] = Field(default_factory=list)


class LabelSelector(Model):
    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list)


class DriftPolicy(StrEnum):
    HOLD = "Hold"
    CLOSE = "Close"


class GateSpec(Model):
    pod_selector: LabelSelector = Field(default_factory=LabelSelector)
    on_drift: DriftPolicy = DriftPolicy.HOLD


class DatabaseSchemaSpec(Model):
    database: DatabaseSpec
    tables: list[Identifier] = Field(min_length=1, max_length=10_000)
    migrations: MigrationsSpec = Field(default_factory=MigrationsSpec)
    gate: GateSpec = Field(default_factory=GateSpec)
    verify_interval_seconds: int = Field(30, ge=5, le=86400)

    @property
    def version_table_schema(self) -> str:
        return self.migrations.version_table_schema or self.database.schema_


# ---- status ---------------------------------------------------------------------------------


class StatusModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Condition(StatusModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: str
    observed_generation: int | None = None


class TablePlace(StatusModel):
    table: str
    schema_: str = Field(alias="schema")
    database: str


class RevisionStatus(StatusModel):
    current: list[str] = Field(default_factory=list)
    expected: list[str] = Field(default_factory=list)
    #: The head sets the database was seen at, oldest first, each comma-joined; what
    #: orders a pod's schemagate.io/revision when the scripts' graph cannot (bounded).
    history: list[str] | None = Field(None, max_length=20)


class DatabaseStatus(StatusModel):
    host: str | None = None
    port: int | None = None
    database: str | None = None
    user: str | None = None
    search_path: str | None = None
    server_version: str | None = None
    system_identifier: str | None = None


class GateStatus(StatusModel):
    condition_type: str
    pods: int = 0
    ready: int = 0
    #: Pods this gate should hold (gate.podSelector, or the label schemagate.io/schema)
    #: that carry no readiness gate for it: nothing holds them. Absent when none.
    ungated: int | None = None


class MigrationSnapshot(StatusModel):
    """The database before a migration run, to tell a no-op from a partial run."""

    revision: list[str] | None = None  # None: no version table
    tables_present: int = 0


class MigrationStatus(StatusModel):
    job: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    outcome: str | None = None  # Running, Applied, AlreadyApplied, NoOp, Failed
    message: str | None = None
    before: MigrationSnapshot | None = None
    heads: list[str] | None = None  # run: Alembic, the scripts' heads of the last run
    failures: int = 0  # consecutive failed runs of the same scripts


class DatabaseSchemaStatus(StatusModel):
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    # None until the database was read once: "nothing missing" must mean it.
    missing_tables: list[str] | None = None
    found_elsewhere: list[TablePlace] | None = None
    revision: RevisionStatus | None = None
    database: DatabaseStatus | None = None
    gate: GateStatus | None = None
    last_verified_time: str | None = None
    migration: MigrationStatus | None = None
