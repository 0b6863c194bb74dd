"""The DatabaseSchema API as pydantic models, camelCase on the wire.

The CRD in `crds/` is generated from these (see `schemagate.crd`), so what the API
server admits and what the operator parses cannot drift apart.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

GROUP = "schemagate.io"
VERSION = "v1alpha1"
KIND = "DatabaseSchema"
PLURAL = "databaseschemas"
SINGULAR = "databaseschema"
SHORT_NAME = "dbschema"
#: `kubectl get schemagate` lists every kind of the project.
CATEGORIES = ("schemagate",)
#: The readiness gate's condition type is GROUP/<name>: its name part allows 63 characters.
MAX_NAME_LENGTH = 63

# PostgreSQL truncates identifiers at 63 bytes; a longer name can never match.
Identifier = Annotated[str, Field(min_length=1, max_length=63)]
K8sName = Annotated[str, Field(min_length=1, max_length=253)]


class Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              frozen=True)


class SecretKeyRef(Model):
    """The backend's own Secret and the key that holds its database URL."""

    name: K8sName = Field(description="The Secret's name, in the DatabaseSchema's namespace.")
    key: Annotated[str, Field(min_length=1, max_length=253)] = Field(
        description="The key whose value is the database URL, e.g. DATABASE_URL.")


class DatabaseSpec(Model):
    """The backend's database, reached through the backend's own connection settings."""

    url_secret_ref: SecretKeyRef = Field(
        description="The backend's own Secret and the key that holds its database URL; the "
                    "URL and its password never appear in status, events or logs.")
    schema_: Identifier = Field("public", alias="schema",
                                description="The PostgreSQL schema the declared tables must be "
                                            "in (default public).")
    connect_timeout_seconds: int = Field(
        5, ge=1, le=60,
        description="How long a connection attempt may take, in seconds (default 5); longer "
                    "is DatabaseUnreachable.")


class FromDeployment(Model):
    name: K8sName = Field(description="The Deployment's name, in the DatabaseSchema's "
                                      "namespace.")
    container: K8sName | None = Field(
        None, description="The container whose image, env and mounts the Job runs with "
                          "(default: the first container).")


#: Bounds on what a migration Job runs: generous for any real command line, small
#: enough that the Job, the status and the messages quoting it stay small.
MAX_ARGUMENT = 4096
MAX_COMMAND_ITEMS = 64
MAX_ARGS_ITEMS = 256
NO_NUL = "^[^\\x00]*$"


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("contains a NUL character, which no program can receive in its "
                         "arguments")
    return value


# The pattern is for the CRD (the API server refuses it first); the validator says why.
Argument = Annotated[str, Field(max_length=MAX_ARGUMENT, json_schema_extra={"pattern": NO_NUL}),
                     AfterValidator(_no_nul)]
Program = Annotated[str, Field(min_length=1, max_length=MAX_ARGUMENT,
                               json_schema_extra={"pattern": NO_NUL}),
                    AfterValidator(_no_nul)]


class JobSpec(Model):
    from_deployment: FromDeployment = Field(
        description="The Deployment whose pod the Job is cloned from (image, env, volumes, "
                    "service account, sidecars); it must carry the label "
                    "schemagate.io/schema: <this DatabaseSchema's name>.")
    command: list[Program] = Field(
        min_length=1, max_length=MAX_COMMAND_ITEMS,
        description="The command the Job's container runs, in place of the image's "
                    "entrypoint, e.g. [alembic, upgrade, heads].")
    args: list[Argument] = Field(default_factory=list, max_length=MAX_ARGS_ITEMS,
                                 description="Arguments passed after command (default none).")
    backoff_limit: int = Field(
        0, ge=0, le=10,
        description="How many times a failed Job pod is retried before the run counts as "
                    "failed (default 0).")
    active_deadline_seconds: int = Field(
        600, ge=10, le=86400,
        description="How long the Job may run, in seconds, before Kubernetes stops it and the "
                    "run counts as failed (default 600).")


class ConfigMapRef(Model):
    name: K8sName = Field(description="The ConfigMap's name, in the DatabaseSchema's "
                                      "namespace.")


class AlembicSpec(Model):
    config_map_ref: ConfigMapRef = Field(
        description="The ConfigMap holding the Alembic revision files, one key per file; the "
                    "operator runs them (upgrade heads, one transaction), so whoever may edit "
                    "it runs code as the operator.")


class MigrationRun(StrEnum):
    EXTERNAL = "External"
    JOB = "Job"
    ALEMBIC = "Alembic"


class MigrationsSpec(Model):
    run: MigrationRun = Field(
        MigrationRun.EXTERNAL,
        description="Who migrates: External (someone else, e.g. a Helm hook; the default), "
                    "Job (a Job cloned from job.fromDeployment) or Alembic (the operator runs "
                    "the revision files of alembic.configMapRef).")
    revision_check: bool = Field(
        True, description="Whether the Alembic version table counts (default true); false: "
                          "only the tables and columns do.")
    version_table: Identifier = Field(
        "alembic_version", description="Alembic's version table (default alembic_version).")
    version_table_schema: Identifier | None = Field(
        None, description="The schema of the version table (default: database.schema).")
    expected_revisions: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        None, max_length=64,
        description="The revisions the version table must record, one per head; absent: any "
                    "recorded revision passes; with run: Alembic the scripts' heads are "
                    "expected instead.")
    job: JobSpec | None = Field(None, description="The migration Job, for run: Job.")
    alembic: AlembicSpec | None = Field(
        None, description="The revision files the operator runs, for run: Alembic.")

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
    """A requirement on a pod's labels."""

    key: K8sName = Field(description="The label's key.")
    operator: SelectorOperator = Field(
        description="In: the label's value is one of values; NotIn: it is not, or the label "
                    "is absent; Exists: the label is there; DoesNotExist: it is not.")
    values: list[str] = Field(
        default_factory=list,
        description="The values for In and NotIn (at least one); empty for Exists and "
                    "DoesNotExist.")


class LabelSelector(Model):
    match_labels: dict[str, str] = Field(
        default_factory=dict, description="Labels a pod must carry, each with this value.")
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, description="Requirements on a pod's labels; all must hold.")


class DriftPolicy(StrEnum):
    HOLD = "Hold"
    CLOSE = "Close"


class GateSpec(Model):
    pod_selector: LabelSelector = Field(
        default_factory=LabelSelector,
        description="The pods this gate is for, besides those labelled schemagate.io/schema: "
                    "<name>; a pod with the gate that matches neither stays closed "
                    "(PodNotSelected); empty (the default): every pod with the gate.")
    on_drift: DriftPolicy = Field(
        DriftPolicy.HOLD,
        description="What a verified schema that stops verifying (a table dropped, a column "
                    "retyped) does to open pods: Hold (the default) keeps them open and "
                    "reports, Close closes them; new pods stay closed either way.")


#: A type as PostgreSQL's `format_type` prints it: `bigint`, `character varying(64)`,
#: `timestamp with time zone`, `numeric(12,2)`, `text[]`.
ColumnType = Annotated[str, Field(min_length=1, max_length=256)]


class Column(Model):
    """A column the backend needs. Without `type` or `nullable`, that part is not checked."""

    name: Identifier = Field(description="Matched exactly as PostgreSQL stores it "
                                         "(case included).")
    type: ColumnType | None = Field(
        None, description="As format_type prints it, e.g. bigint, character varying(64), "
                          "timestamp with time zone; compared exactly.")
    nullable: bool | None = Field(
        None, description="true: the column must accept NULL; false: it must be NOT NULL.")


class TableColumns(Model):
    """The columns one table must have (others may exist beside them)."""

    table: Identifier = Field(description="A table in database.schema; it counts as declared "
                                          "even when spec.tables does not list it.")
    # PostgreSQL allows at most 1,600 columns in a table.
    columns: list[Column] = Field(
        min_length=1, max_length=1_600,
        description="Columns the table must have, each named once; others may exist beside "
                    "them.")

    @model_validator(mode="after")
    def _names_are_unique(self) -> TableColumns:
        seen: set[str] = set()
        for column in self.columns:
            if column.name in seen:
                raise ValueError(f"column {column.name} of table {self.table} is declared twice")
            seen.add(column.name)
        return self


def unique_tables(columns: list[TableColumns]) -> list[TableColumns]:
    """`columns` when no table appears twice; raises ValueError naming it otherwise."""
    seen: set[str] = set()
    for entry in columns:
        if entry.table in seen:
            raise ValueError(f"table {entry.table} appears twice in columns")
        seen.add(entry.table)
    return columns


class DatabaseSchemaSpec(Model):
    """The tables, columns and Alembic revision a backend needs, and the pods that wait
    for them."""

    database: DatabaseSpec = Field(
        description="The backend's database, reached through the backend's own Secret.")
    tables: list[Identifier] = Field(
        min_length=1, max_length=10_000,
        description="The tables the backend needs in database.schema, each named once "
                    "(1 to 10,000); a missing one keeps new pods closed.")
    columns: Annotated[list[TableColumns], AfterValidator(unique_tables)] = Field(
        default_factory=list, max_length=10_000,
        description="Columns the backend needs, per table; tables not named here are checked "
                    "for existence only. Capture them with `schemagate snapshot`.")
    migrations: MigrationsSpec = Field(
        default_factory=MigrationsSpec,
        description="Who applies the migrations, and how the Alembic revision is checked.")
    gate: GateSpec = Field(
        default_factory=GateSpec,
        description="Which pods stay NotReady until the schema verifies, and what drift does "
                    "to those already open.")
    verify_interval_seconds: int = Field(
        30, ge=5, le=86400,
        description="How often the database is checked again, in seconds (default 30, at "
                    "least 5).")

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


class ColumnState(StatusModel):
    """A column as declared, or as found (absent `type` and `nullable`: not checked)."""

    type: str | None = None
    nullable: bool | None = None


class ColumnMismatchStatus(StatusModel):
    """A declared column missing from its table (`found` absent) or of another shape."""

    table: str
    column: str
    expected: ColumnState
    found: ColumnState | None = None


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
    column_mismatches: int = 0


class MigrationStatus(StatusModel):
    job: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    outcome: str | None = None  # Running, Applied, AlreadyApplied, NoOp, Failed
    message: str | None = None
    before: MigrationSnapshot | None = None
    heads: list[str] | None = None  # run: Alembic, the scripts' heads of the last run
    failures: int = 0  # consecutive failed runs of the same scripts


#: Column mismatches kept in status: enough to act on, bounded so the object stays small.
MISMATCHES_IN_STATUS = 100


class DatabaseSchemaStatus(StatusModel):
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    # None until the database was read once: "nothing missing" must mean it.
    missing_tables: list[str] | None = None
    found_elsewhere: list[TablePlace] | None = None
    #: The first `MISMATCHES_IN_STATUS`; the SchemaVerified message gives the count.
    column_mismatches: list[ColumnMismatchStatus] | None = None
    revision: RevisionStatus | None = None
    database: DatabaseStatus | None = None
    gate: GateStatus | None = None
    last_verified_time: str | None = None
    migration: MigrationStatus | None = None
    # One line each for `kubectl get`'s columns; the lists above stay the reference.
    missing_summary: str | None = Field(
        None, description='The missing tables in one line, e.g. "3 tables: a, b, c"; '
                          '"none" when all are there. Absent until the database was read.')
    revision_summary: str | None = Field(
        None, description="The recorded Alembic revision(s) in one line, with the expected "
                          "ones when they differ.")
    gate_summary: str | None = Field(
        None, description='Gated pods open out of those selected, e.g. "2/3".')
