"""The one vocabulary of reasons, shared by conditions, the pod gate, the CLI and metrics."""

from enum import StrEnum


class Reason(StrEnum):
    VERIFIED = "Verified"
    TABLES_ELSEWHERE = "TablesElsewhere"
    NO_REVISION = "NoRevision"
    STAMPED_BUT_MISSING = "StampedButMissing"
    TABLES_MISSING = "TablesMissing"
    COLUMNS_MISMATCH = "ColumnsMismatch"
    REVISION_MISMATCH = "RevisionMismatch"
    MIGRATION_NO_OP = "MigrationNoOp"
    MIGRATION_FAILED = "MigrationFailed"
    DATABASE_UNREACHABLE = "DatabaseUnreachable"
    AUTHENTICATION_FAILED = "AuthenticationFailed"
    SECRET_NOT_FOUND = "SecretNotFound"
    INVALID_SPEC = "InvalidSpec"
    #: verifyFrom: Pod: the verify pod could not start or ended without a verdict.
    VERIFY_POD_FAILED = "VerifyPodFailed"


#: Reasons that say the database itself was read and the schema is not as declared.
SCHEMA_NOT_AS_DECLARED = frozenset({
    Reason.TABLES_ELSEWHERE, Reason.NO_REVISION, Reason.STAMPED_BUT_MISSING,
    Reason.TABLES_MISSING, Reason.COLUMNS_MISMATCH, Reason.REVISION_MISMATCH,
})
#: Reasons that say the database could not be read at all.
CONNECTION_FAILURES = frozenset({Reason.DATABASE_UNREACHABLE, Reason.AUTHENTICATION_FAILED})
#: Reasons that say the check did not read the database at all: nothing is known of it.
COULD_NOT_LOOK = CONNECTION_FAILURES | {Reason.SECRET_NOT_FOUND, Reason.INVALID_SPEC,
                                        Reason.VERIFY_POD_FAILED}


class GateReason(StrEnum):
    """Reasons of the pod gate and MigrationsApplied only (docs/reference.md, "Reasons")."""

    DATABASE_SCHEMA_NOT_FOUND = "DatabaseSchemaNotFound"
    POD_NOT_SELECTED = "PodNotSelected"
    GATE_RELEASED = "GateReleased"
    MIGRATION_RUNNING = "MigrationRunning"
    MIGRATION_LOCK_BUSY = "MigrationLockBusy"
    #: The pod's schemagate.io/revision is not applied in the database (or cannot be told).
    REVISION_NOT_APPLIED = "RevisionNotApplied"
    #: The last check started before the pod was created, or read an older spec.
    AWAITING_FRESH_CHECK = "AwaitingFreshCheck"
