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


class VerifyFrom(StrEnum):
    OPERATOR = "Operator"
    POD = "Pod"


class FromDeployment(Model):
    name: K8sName = Field(description="The Deployment's name, in the DatabaseSchema's "
                                      "namespace.")
    container: K8sName | None = Field(
        None, description="The container whose env and mounts the Job (and its image) or the "
                          "verify pod runs with "
                          "(default: the first container).")


class VerifyPodSpec(Model):
    from_deployment: FromDeployment = Field(
        description="The backend Deployment the verify pod is cloned from: its service "
                    "account, its sidecars (a Cloud SQL Auth Proxy) and the named container's "
                    "env, envFrom and volume mounts, with the operator's own image; its owners "
                    "consent with the annotation schemagate.io/clone-for: <this "
                    "DatabaseSchema's name> on the Deployment itself.")


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
    verify_from: VerifyFrom = Field(
        VerifyFrom.OPERATOR,
        description="Where the check runs: Operator (the default; the operator connects with "
                    "the URL) or Pod (a short-lived pod cloned from verifyPod.fromDeployment "
                    "runs schemagate verify, for a URL only the backend's pods can reach: a "
                    "proxy sidecar on 127.0.0.1, IAM authentication through the backend's "
                    "service account).")
    verify_pod: VerifyPodSpec | None = Field(
        None, description="The verify pod, for verifyFrom: Pod.")

    @model_validator(mode="after")
    def _pod_is_described(self) -> DatabaseSpec:
        if self.verify_from is VerifyFrom.POD and self.verify_pod is None:
            raise ValueError("database.verifyFrom is Pod but database.verifyPod is not set")
        return self


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
                    "service account, sidecars); its owners consent with the annotation "
                    "schemagate.io/clone-for: <this DatabaseSchema's name> on the Deployment "
                    "itself.")
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
        description="The ConfigMap holding the Alembic revision files, one key per file; a "
                    "Job of the operator's image runs them (upgrade heads, one transaction), "
                    "with no Kubernetes rights and the URL of database.urlSecretRef.")
    active_deadline_seconds: int = Field(
        1200, ge=10, le=86400,
        description="How long the migration Job may run, in seconds, before Kubernetes stops "
                    "it and the run counts as failed (default 1200).")


class MigrationRun(StrEnum):
    EXTERNAL = "External"
    JOB = "Job"
    ALEMBIC = "Alembic"


class MigrationsSpec(Model):
    run: MigrationRun = Field(
        MigrationRun.EXTERNAL,
        description="Who migrates: External (someone else, e.g. a Helm hook; the default), "
                    "Job (a Job cloned from job.fromDeployment) or Alembic (a Job of the "
                    "operator's image runs the revision files of alembic.configMapRef).")
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
        None, description="The revision files the migration Job runs, for run: Alembic.")

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


#: A label's key, as Kubernetes allows it: an optional prefix (a DNS subdomain, 253) and
#: '/', then a name of 63.
LabelKey = Annotated[str, Field(min_length=1, max_length=253 + 1 + 63)]
#: A label's value, as Kubernetes allows it (empty included).
LabelValue = Annotated[str, Field(max_length=63)]
#: Entries of a selector (labels, expressions, values of one expression): far more than
#: any selector needs, few enough that matching and quoting it stay cheap.
MAX_SELECTOR_ENTRIES = 64


class LabelSelectorRequirement(Model):
    """A requirement on a pod's labels."""

    key: LabelKey = Field(description="The label's key.")
    operator: SelectorOperator = Field(
        description="In: the label's value is one of values; NotIn: it is not, or the label "
                    "is absent; Exists: the label is there; DoesNotExist: it is not.")
    values: list[LabelValue] = Field(
        default_factory=list, max_length=MAX_SELECTOR_ENTRIES,
        description="The values for In and NotIn (at least one); empty for Exists and "
                    "DoesNotExist.")


class LabelSelector(Model):
    match_labels: dict[LabelKey, LabelValue] = Field(
        default_factory=dict, max_length=MAX_SELECTOR_ENTRIES,
        description="Labels a pod must carry, each with this value.")
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, max_length=MAX_SELECTOR_ENTRIES,
        description="Requirements on a pod's labels; all must hold.")


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
    hold_start: bool = Field(
        False,
        description="true: pods labelled schemagate.io/schema: <name> are also held before "
                    "they start, by the scheduling gate schemagate.io/<name> (added at "
                    "creation by the chart's gateInjection.holdStart policy), removed when "
                    "the readiness gate would open: no start, no crash, no backoff before "
                    "the schema is right. Held pods are Pending: they count against the "
                    "Deployment's progressDeadlineSeconds and a PodDisruptionBudget.")


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

    @model_validator(mode="after")
    def _migrations_reach_the_database(self) -> DatabaseSchemaSpec:
        if self.database.verify_from is VerifyFrom.POD and \
                self.migrations.run is MigrationRun.ALEMBIC:
            raise ValueError(
                "migrations.run: Alembic runs the migrations from the operator, which cannot "
                "reach a database that only the backend's pods reach (database.verifyFrom: "
                "Pod); use migrations.run: Job, cloned from the same Deployment")
        return self

    @property
    def version_table_schema(self) -> str:
        return self.migrations.version_table_schema or self.database.schema_


# ---- status ---------------------------------------------------------------------------------


class StatusModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Condition(StatusModel):
    """A condition, as the Kubernetes API conventions describe it."""

    type: str = Field(description="Ready, SchemaVerified, MigrationsApplied, Stalled or "
                                  "Reconciling.")
    status: Literal["True", "False", "Unknown"] = Field(
        description="True, False or Unknown (SchemaVerified is Unknown when the database "
                    "could not be read).")
    reason: str = Field(description="Why, in one word, e.g. Verified, TablesMissing, "
                                    "RevisionMismatch, DatabaseUnreachable.")
    message: str = Field("", description="What was found, for a person: the missing tables, "
                                         "the revisions, where to look.")
    last_transition_time: str = Field(
        description="When status last changed (RFC 3339); a new reason alone does not move "
                    "it.")
    observed_generation: int | None = Field(
        None, description="The generation of the spec this condition was set for.")


class ColumnState(StatusModel):
    """A column as declared, or as found (absent `type` and `nullable`: not checked)."""

    type: str | None = Field(None, description="The type as PostgreSQL's format_type prints "
                                               "it; absent: not checked.")
    nullable: bool | None = Field(None, description="Whether the column accepts NULL; absent: "
                                                    "not checked.")


class ColumnMismatchStatus(StatusModel):
    """A declared column missing from its table (`found` absent) or of another shape."""

    table: str = Field(description="The table, in database.schema.")
    column: str = Field(description="The declared column.")
    expected: ColumnState = Field(description="The column as declared in spec.columns.")
    found: ColumnState | None = Field(
        None, description="The column as the table has it; absent when the table has no such "
                          "column.")


class TablePlace(StatusModel):
    """A missing table, found in another schema or another database of the same server."""

    table: str = Field(description="The declared table.")
    schema_: str = Field(alias="schema", description="The schema it was found in.")
    database: str = Field(description="The database it was found in.")


class RevisionStatus(StatusModel):
    current: list[str] = Field(
        default_factory=list,
        description="The revisions the version table records, one per head; empty when it is "
                    "absent or empty.")
    expected: list[str] = Field(
        default_factory=list,
        description="The revisions expected: migrations.expectedRevisions, or with run: "
                    "Alembic the scripts' heads; empty when any will do.")
    history: list[str] | None = Field(
        None, max_length=20,
        description="The head sets the database was seen at, oldest first, each comma-joined "
                    "(at most 20), all of the database in historyOf; what tells whether "
                    "a pod's schemagate.io/revision is applied when the scripts cannot. A "
                    "head set never seen before starts it anew, unless run: Alembic's "
                    "scripts show it descends from the last one.")
    history_of: str | None = Field(
        None, description="The database the history belongs to: the server's system "
                          "identifier and the database name, e.g. 7312345678901234567/app. "
                          "Another database starts a new history. When the role may not "
                          "read the system identifier (pg_control_system()), no history is "
                          "kept.")


class DatabaseStatus(StatusModel):
    host: str | None = Field(None, description="The server's address, as the server reports "
                                               "it; absent over a Unix socket.")
    port: int | None = Field(None, description="The server's port, as the server reports it.")
    database: str | None = Field(None, description="The database connected to.")
    user: str | None = Field(None, description="The role connected as.")
    search_path: str | None = Field(None, description="The connection's search_path.")
    server_version: str | None = Field(None, description="PostgreSQL's server_version.")
    system_identifier: str | None = Field(
        None, description="The server's system identifier, which tells one PostgreSQL "
                          "cluster from another (absent when the role may not read it).")
    verified_from: str | None = Field(
        None, description="Where the check ran: Operator, or Pod (verifyFrom: Pod).")
    verify_pod: str | None = Field(
        None, description="The verify pod that ran the check, for verifyFrom: Pod (kubectl "
                          "logs pod/<name>; the last few are kept).")


class GateStatus(StatusModel):
    condition_type: str = Field(description="The readiness gate pods carry: "
                                            "schemagate.io/<name>.")
    pods: int = Field(0, description="Pods carrying the gate that this DatabaseSchema "
                                     "selects.")
    ready: int = Field(0, description="How many of them are open (their gate condition "
                                      "True).")
    ungated: int | None = Field(
        None, description="Pods this gate should hold (gate.podSelector, or the label "
                          "schemagate.io/schema) that carry no readiness gate for it, so "
                          "nothing holds them; absent when none.")


class MigrationSnapshot(StatusModel):
    """The database before a migration run, to tell a no-op from a partial run."""

    revision: list[str] | None = Field(
        None, description="The revisions recorded then; absent: there was no version table.")
    tables_present: int = Field(0, description="How many declared tables were present.")
    column_mismatches: int = Field(0, description="How many declared columns differed.")


class MigrationOutcome(StrEnum):
    """What a migration run came to, as the database says."""

    RUNNING = "Running"
    APPLIED = "Applied"
    ALREADY_APPLIED = "AlreadyApplied"
    NO_OP = "NoOp"
    FAILED = "Failed"


class MigrationStatus(StatusModel):
    job: str | None = Field(None, description="The migration Job's name.")
    started_at: str | None = Field(None, description="When the run started (RFC 3339).")
    finished_at: str | None = Field(None, description="When the run ended (RFC 3339); absent "
                                                      "while it runs.")
    outcome: MigrationOutcome | None = Field(
        None, description="Running, Applied, AlreadyApplied, NoOp or Failed.")
    message: str | None = Field(None, description="What the run came to, e.g. a failed Job's "
                                                  "termination message.")
    before: MigrationSnapshot | None = Field(
        None, description="The database before the run, to tell a no-op from a partial run.")
    heads: list[str] | None = Field(
        None, description="With run: Alembic, the scripts' heads of the last run.")


#: Column mismatches kept in status: enough to act on, bounded so the object stays small.
MISMATCHES_IN_STATUS = 100
#: Missing tables and places found elsewhere kept in status; the summary and the message
#: give the counts. With the condition messages bounded too, the status stays under
#: STATUS_LIMIT even for the largest spec (`core.status.outcome.fit` makes sure).
MISSING_IN_STATUS = 100
PLACES_IN_STATUS = 100
STATUS_LIMIT = 64 * 1024


class DatabaseSchemaStatus(StatusModel):
    """What the operator last found in the database, and what it did about it."""

    observed_generation: int | None = Field(
        None, description="The generation of the spec this status describes; 0 until the "
                          "first check.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready, SchemaVerified, MigrationsApplied, Stalled and Reconciling, one of "
                    "each type.")
    # None until the database was read once: "nothing missing" must mean it.
    missing_tables: list[str] | None = Field(
        None, description=f"Declared tables missing from database.schema, the first "
                          f"{MISSING_IN_STATUS} (missingSummary gives the count); absent until "
                          f"the database was read.")
    found_elsewhere: list[TablePlace] | None = Field(
        None, description=f"Where missing tables were found instead: another schema of the "
                          f"database, or another database on the same server; the first "
                          f"{PLACES_IN_STATUS}, the SchemaVerified message says how many more.")
    #: The first `MISMATCHES_IN_STATUS`; the SchemaVerified message gives the count.
    column_mismatches: list[ColumnMismatchStatus] | None = Field(
        None, description=f"Declared columns missing or of another type or nullability: the "
                          f"first {MISMATCHES_IN_STATUS}; the SchemaVerified message gives the "
                          f"count.")
    revision: RevisionStatus | None = Field(
        None, description="The Alembic revisions the version table records, and those "
                          "expected.")
    database: DatabaseStatus | None = Field(
        None, description="What the check really reached, as the server reports it; never a "
                          "password.")
    gate: GateStatus | None = Field(
        None, description="The pods' readiness gate: its condition type, the pods it selects "
                          "and how many are open.")
    last_verified_time: str | None = Field(
        None, description="When the database was last read (RFC 3339).")
    migration: MigrationStatus | None = Field(
        None, description="The last migration run, for run: Job or Alembic.")
    # One line each for `kubectl get`'s columns; the lists above stay the reference.
    missing_summary: str | None = Field(
        None, description='The missing tables in one line, e.g. "3 tables: a, b, c"; '
                          '"none" when all are there. Absent until the database was read.')
    revision_summary: str | None = Field(
        None, description="The recorded Alembic revision(s) in one line, with the expected "
                          "ones when they differ.")
    gate_summary: str | None = Field(
        None, description='Gated pods open out of those selected, e.g. "2/3".')
