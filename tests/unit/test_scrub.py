"""Nothing secret leaves the operator: URLs, passwords and DSN fragments are fed through
every path a message takes (driver errors, Alembic failures, revision files that raise
at import, Job termination messages, URLs read from a Secret, `schemagate verify`'s
output) and on to where users read them (status, pod conditions, Events, logs).
None of the password's spellings comes out."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock
from urllib.parse import quote, quote_plus

import psycopg
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy.exc import DBAPIError

from schemagate import cli
from schemagate.core.check.verdict import Verdict
from schemagate.core.gate import readiness as gate
from schemagate.core.migration import run as migration_run
from schemagate.core.migration.job import JobState, describe, last_words
from schemagate.core.revisions.keys import InvalidScripts
from schemagate.core.status.outcome import (
    Outcome,
    for_people,
    from_verdict,
    next_status,
    scrubbed,
    transition,
)
from schemagate.core.tenancy.scrub import (
    MASK,
    MAX_SECRETS,
    PATTERNS,
    Scrubber,
    ScrubbingFilter,
    escape_controls,
    scrub,
    scrub_patterns,
)
from schemagate.core.wire.models import (
    DatabaseSchemaStatus,
    DriftPolicy,
    GateStatus,
    MigrationOutcome,
    MigrationStatus,
)
from schemagate.core.wire.reasons import Reason
from schemagate.job import upgrade
from schemagate.job.scripts import Scripts, scripts_from_files
from schemagate.postgres import connect
from tests.unit.test_gate import check, decide, pod

EXAMPLES = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SCHEMES = ["postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2",
           "postgresql+asyncpg"]

# Any printable text, blanks and non-ASCII included; not the mask itself, which a
# scrubbed text contains by design.
passwords = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"),
                                  exclude_characters="*"), min_size=6, max_size=40)
users = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True)
hosts = st.sampled_from(["db.internal", "10.0.0.5", "127.0.0.1", "pg-0.pg.svc"])


@st.composite
def urls(draw: st.DrawFn, password: str) -> str:
    scheme, user, host = draw(st.sampled_from(SCHEMES)), draw(users), draw(hosts)
    query = draw(st.sampled_from(["", "?options=-csearch_path%3Dapp", "?sslmode=require"]))
    return f"{scheme}://{user}:{quote(password, safe='')}@{host}:5432/app{query}"


def dsn_fragments(password: str) -> list[str]:
    """The password as connection strings, shells and JSON write it."""
    libpq = "'" + password.replace("\\", "\\\\").replace("'", "\\'") + "'"
    shell = "'" + password.replace("'", "'\\''") + "'"
    bare = [] if any(c.isspace() or c in "&;,'\"\\" for c in password) else [password]
    return [*(f"host=db user=app password={v} dbname=app" for v in [libpq, *bare]),
            f"+ PGPASSWORD={shell} psql -h db", f"+ export DB_PASSWORD={shell}",
            json.dumps({"user": "app", "password": password}, ensure_ascii=False),
            f"postgresql://db/app?user=app&password={quote_plus(password)}&sslmode=require"]


def with_option(url: str, option: str) -> str:
    """`url` with a connection option libpq does not know: unusable, never connected."""
    return f"{url}{'&' if '?' in url else '?'}{option}=1"


def spellings(password: str) -> set[str]:
    return {password, quote(password, safe=""), quote(password), quote_plus(password)}


def traced(*lines: str) -> str:
    """A migration's last words under `sh -x`."""
    return "\n".join(f"+ echo {line}\n{line}" for line in lines)


# Where messages go: the operator's last line, as reconcile, kube and handlers use it.

def sinks(scrubber: Scrubber, reason: Reason, message: str) -> list[str]:
    """Status as written, the pod condition, the Event and the INFO log line."""
    outcome = scrubbed(Outcome(reason, message), scrubber.message)
    status = next_status(DatabaseSchemaStatus(), outcome=outcome, generation=1, now=T0,
                         gate=GateStatus(condition_type="schemagate.io/s", pods=1))
    written = for_people(status.model_dump(by_alias=True, mode="json", exclude_none=True),
                         scrubber.message, escape_controls)
    state = gate.gate_state(verified=False, reason=reason.value, message=outcome.message,
                            on_drift=DriftPolicy.HOLD)
    condition = decide(check(state), pod(open_=False))
    change = transition(DatabaseSchemaStatus(), status) or ""
    return [json.dumps(written, ensure_ascii=False), scrubber.scrub(condition.message),
            scrubber.scrub(change), logged(scrubber, "%s", change)]


def logged(scrubber: Scrubber, fmt: str, *args: object, error: Exception | None = None) -> str:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    logger = logging.Logger("tests.scrub")  # no parent: nothing propagates elsewhere
    logger.addHandler(handler)
    logger.addFilter(ScrubbingFilter(lambda _: scrubber))
    if error is None:
        logger.warning(fmt, *args)
    else:
        try:
            raise error
        except Exception:
            logger.exception(fmt, *args)
    return out.getvalue()


def leaks(password: str, outputs: list[str]) -> list[str]:
    return [o for o in outputs if any(s in o for s in spellings(password))]


# The edges, each fed `payload`; `url` is the Secret's URL the operator read.

def driver_errors(url: str, payload: str) -> list[str]:
    target = connect.parse_url(url)
    orig = psycopg.OperationalError(f'connection to server failed: FATAL: {payload}')
    refused = connect.connection_failure(DBAPIError("SELECT 1", {}, orig), url, target, 5)
    query = connect.query_failure(DBAPIError("SELECT 1", {}, orig), url, target, 5)
    return [str(refused), str(query)]


def alembic_failure(url: str, payload: str) -> list[str]:
    scripts = Scripts(directory=Path("/nonexistent"), heads=frozenset(), revisions=0)
    run = upgrade._Settings("public", "alembic_version", "public", 10, "5s", "15min")
    failed = upgrade._failure(RuntimeError(payload), url, connect.parse_url(url),
                              scripts, run)
    return [str(failed)]


def revision_import_failure(payload: str) -> list[str]:
    """A revision file that raises at import, with the payload in its message."""
    with tempfile.TemporaryDirectory() as workdir:
        source = f"revision = 'a1'\ndown_revision = None\nraise RuntimeError({payload!r})\n"
        with pytest.raises(InvalidScripts) as raised:
            scripts_from_files({"a1_raise.py": source}, Path(workdir))
    return [str(raised.value)]


def failed_pod(output: str) -> dict[str, object]:
    """A Job's pod as the API shows it after its container printed `output` and failed."""
    return {"metadata": {"creationTimestamp": "2026-03-01T12:00:00Z"},
            "status": {"containerStatuses": [{"state": {"terminated": {
                "exitCode": 3, "message": output}}}]}}


def alembic_job_failure(scrubber: Scrubber, url: str, payload: str) -> list[str]:
    """run: Alembic: the tenant's output as the pod's termination message (a report of
    `schemagate migrate`, or the raw tail of a process a revision killed), read by
    `kube.Kube.job_last_words` and judged by `migration_run.decide`."""
    verdict = database_verdict()
    messages = []
    for said in (json.dumps({"outcome": "Failed", "message": payload}), traced(payload)):
        words = last_words([failed_pod(said)], scrubber)
        decision = migration_run.decide(migration_run.Situation(
            job="j", outcome=verdict, previous=MigrationStatus(
                job="j", outcome=MigrationOutcome.RUNNING), declared=1, now="t",
            observed=migration_run.ObservedJob(JobState.FAILED, words=words)))
        messages += [decision.outcome.message, (decision.record.message or "")
                     if decision.record else ""]
    return messages


def database_verdict() -> Outcome:
    return from_verdict(Verdict(verified=False, reason=Reason.NO_REVISION, message="m",
                                missing_tables=("a",)))


def every_edge(scrubber: Scrubber, url: str, payload: str) -> list[tuple[Reason, str]]:
    """(reason, message) as each edge hands it to the reconciler."""
    return [*((Reason.DATABASE_UNREACHABLE, m) for m in driver_errors(url, payload)),
            *((Reason.MIGRATION_FAILED, m) for m in alembic_job_failure(scrubber, url,
                                                                          payload)),
            *((Reason.MIGRATION_FAILED, m) for m in alembic_failure(url, payload)),
            # kube.Kube.job_last_words: the tenant's output, a raw traced tail
            (Reason.MIGRATION_FAILED, describe(last_words([failed_pod(traced(payload))],
                                                          scrubber)))]


def through_everything(url: str, payload: str) -> list[str]:
    scrubber = Scrubber()
    scrubber.learn(url)  # as the loop does with the URL of the schema's Secret
    outputs: list[str] = []
    for reason, message in every_edge(scrubber, url, payload):
        outputs += [message, *sinks(scrubber, reason, message)]
    outputs.append(logged(scrubber, "reconcile failed: %s", payload,
                          error=RuntimeError(payload)))
    return outputs


@EXAMPLES
@given(data=st.data(), password=passwords)
def test_the_secrets_password_leaves_by_no_path(data: st.DataObject, password: str) -> None:
    url = data.draw(urls(password))
    for payload in [url, password, traced(url, password), *dsn_fragments(password),
                    f"{url} {password}"]:
        assert leaks(password, through_everything(url, payload)) == [], payload


@EXAMPLES
@given(data=st.data(), known=passwords, other=passwords)
def test_any_other_url_or_dsn_password_is_scrubbed_by_its_shape(
        data: st.DataObject, known: str, other: str) -> None:
    """A password the operator never read (the Job's own env, another database) is
    still removed wherever it stands in a URL or a DSN."""
    url, stray = data.draw(urls(known)), data.draw(urls(other))
    context = [*through_everything(url, "nothing secret here"), *dsn_fragments(""), url]
    assume(not leaks(other, context))
    for payload in [stray, traced(stray), *dsn_fragments(other)]:
        assert leaks(other, through_everything(url, payload)) == [], payload
        assert leaks(other, revision_import_failure(payload)) == [], payload


@EXAMPLES
@given(data=st.data(), password=passwords)
def test_a_url_read_from_a_secret_never_shows_in_why_it_is_unusable(
        data: st.DataObject, password: str) -> None:
    good = data.draw(urls(password))
    # A password that is a word of the status itself ("Schema" in "SchemaVerified") is
    # found there whatever the scrubber does: such a draw proves nothing.
    fixed = sinks(Scrubber([]), Reason.INVALID_SPEC,
                  "the URL in Secret backend-db key DATABASE_URL cannot be used: ")
    assume(not leaks(password, fixed))
    for bad in [good.replace(":5432", ":port"), with_option(good, quote(password, safe="")),
                good.split("://", 1)[0] + "ql://" + good.split("://", 1)[1]]:
        messages = []
        try:
            connect.parse_url(bad)
        except connect.InvalidDatabaseUrl as exc:
            messages.append(f"the URL in Secret backend-db key DATABASE_URL cannot be used: "
                            f"{exc}")
        scrubber = Scrubber([bad])
        for message in messages:
            assert leaks(password, [message, *sinks(scrubber, Reason.INVALID_SPEC, message)]) \
                == [], bad


@EXAMPLES
@given(data=st.data(), password=passwords)
def test_schemagate_verify_prints_no_password(data: st.DataObject, password: str) -> None:
    def verify(url: str) -> list[str]:
        outputs = []
        for extra in ([], ["--json"]):
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                    mock.patch.dict(os.environ, {"SCHEMAGATE_TEST_URL": url}):
                code = cli.main(["verify", "--url-env", "SCHEMAGATE_TEST_URL",
                                 "--table", "t", *extra])
            assert code == cli.EXIT_USAGE  # refused before any connection
            outputs += [out.getvalue(), err.getvalue()]
        return outputs

    good = data.draw(urls(password))
    assume(not leaks(password, verify(with_option("postgresql://u:x@h/app", "bogus"))))
    for bad in [with_option(good, quote(password, safe="")), good.replace(":5432", ":x")]:
        assert leaks(password, verify(bad)) == [], bad


# What the scrubber keeps: messages stay readable.

@pytest.mark.parametrize("text", [
    "credit_transactions, subscriptions missing from schema public of database app on "
    "10.0.0.5; found in schema migrator",
    'FATAL: password authentication failed for user "app"',
    "no password supplied; check the user and password in the URL",
    "postgresql://app@10.0.0.5:5432/app (no password in it)",
    "migration Job backend-schema-migrate-3-ab12cd is running",
])
def test_ordinary_messages_pass_unchanged(text: str) -> None:
    assert scrub_patterns(text) == text
    assert Scrubber(["postgresql://app:s3cret-Pass@10.0.0.5/app"]).scrub(text) == text


def test_the_secrets_url_is_masked_whole_and_its_password_alone() -> None:
    url = "postgresql+psycopg://app:p%40ss%2Fword@10.0.0.5:5432/app"
    assert scrub(f"+ echo {url}", url) == f"+ echo {MASK}"
    assert scrub("the password is p@ss/word", url) == f"the password is {MASK}"
    assert scrub("DATABASE_URL=postgres://u:other@h/db", url) == \
        f"DATABASE_URL=postgres://u:{MASK}@h/db"


@pytest.mark.parametrize(("text", "expected"), [
    ("host=db password='it\\'s secret' user=app", f"host=db password={MASK} user=app"),
    ("+ PGPASSWORD='it'\\''s' psql", f"+ PGPASSWORD={MASK} psql"),
    ('{"password": "x y", "user": "app"}', f'{{"password": {MASK}, "user": "app"}}'),
    ("postgresql://h/app?sslpassword=abc&user=app", f"postgresql://h/app?sslpassword={MASK}&user=app"),
    ("password='never closed", f"password={MASK}"),
])
def test_dsn_fragments_are_masked(text: str, expected: str) -> None:
    assert scrub_patterns(text) == expected


def test_a_schemas_scrubber_remembers_a_bounded_number_of_secrets() -> None:
    scrubber = Scrubber()
    for n in range(500):
        scrubber.learn(f"postgresql://u:password-number-{n:05d}@h/db")
    assert "password-number-00499" not in scrubber.scrub("password-number-00499")
    assert len(scrubber._known) <= MAX_SECRETS
    assert "password-number-00000" in scrubber.scrub("password-number-00000"), "forgotten"



@pytest.mark.parametrize("url", [
    "postgresql://app:p@ss@db/app",         # an unencoded @
    "postgresql://app:pa/ss@db/app",        # an unencoded /
    "postgresql://app:pa ss@db/app",        # an unencoded blank
    "postgres://app:p%40ss%2F%20x@db:5432/app?sslmode=require",
])
def test_a_wrongly_written_urls_password_is_still_a_secret(url: str) -> None:
    password = url.split("//app:", 1)[1].rsplit("@db", 1)[0]
    scrubber = Scrubber([url])
    for text in (url, f"+ echo {url}", f"password is {password}", f"DSN password={password}"):
        assert password not in scrubber.scrub(text), text


# The shapes a secret also comes in: YAML, SQL, CI tokens under `sh -x`, another
# percent-encoding, and a log's tail cut inside a URL.

@pytest.mark.parametrize(("text", "expected"), [
    ("database:\n  user: app\n  password: hunter2 two\n  host: db",
     f"database:\n  user: app\n  password: {MASK}\n  host: db"),
    ("- PGPASSWORD: hunter2  # from the vault", f"- PGPASSWORD: {MASK} # from the vault"),
    ("secret: s3cr3t", f"secret: {MASK}"),
    ("ALTER ROLE app PASSWORD 'it''s'; GRANT", f"ALTER ROLE app PASSWORD {MASK}; GRANT"),
    ('CREATE USER app PASSWORD "x y" VALID', f"CREATE USER app PASSWORD {MASK} VALID"),
    ("+ export GITHUB_TOKEN=ghp_abc123", f"+ export GITHUB_TOKEN={MASK}"),
    ("+ AWS_SECRET_ACCESS_KEY=wJalr/K7MDENG aws s3", f"+ AWS_SECRET_ACCESS_KEY={MASK} aws s3"),
    ("+ export CLIENT_SECRET='a b'", f"+ export CLIENT_SECRET={MASK}"),
    ("+ NPM_TOKEN=xyz npm publish", f"+ NPM_TOKEN={MASK} npm publish"),
    ('{"client_secret": "abc", "token": "def"}', f'{{"client_secret": {MASK}, "token": {MASK}}}'),
])
def test_more_shapes_of_a_secret_are_masked(text: str, expected: str) -> None:
    assert scrub_patterns(text) == expected


@pytest.mark.parametrize("text", [
    "3 checks passed: all tables present",
    "SecretNotFound: Secret backend-db not found in namespace team-a",
    'FATAL:  password authentication failed for user "app"',
    "token: an unexpected token in revision a1",
])
def test_what_looks_like_a_key_only_in_passing_stays(text: str) -> None:
    assert scrub_patterns(text) == text


@pytest.mark.parametrize("spelled", [
    "p%40ss%2fword",          # lower-case hex
    "%70%40%73%73%2F%77ord",  # letters encoded that need not be
    "p@ss%2Fword",            # the @ left bare
    "p%40ss/word",
])
def test_a_password_in_another_percent_encoding_is_masked(spelled: str) -> None:
    scrubber = Scrubber(["postgresql://app:p%40ss%2Fword@10.0.0.5:5432/app"])
    assert scrubber.scrub(f"connecting with {spelled} now") == f"connecting with {MASK} now"


def test_a_non_ascii_password_in_any_encoding_is_masked() -> None:
    scrubber = Scrubber([f"postgresql://app:{quote('pässwörd', safe='')}@db/app"])
    for spelled in ("pässwörd", "p%C3%A4ssw%c3%b6rd", "p%c3%a4%73sw%C3%B6rd"):
        assert "ssw" not in scrubber.scrub(f"[{spelled}]"), spelled


@pytest.mark.parametrize("cut_at", range(1, 21))
def test_a_tail_that_begins_inside_the_url_leaves_no_piece_of_the_password(cut_at: int) -> None:
    """A termination message is the log's last 2 KiB: it may begin anywhere in a URL."""
    url = "postgresql://app:hunter2-Secret@db.internal:5432/app"
    log = f"+ psql {url}\nERROR: relation missing\n"
    tail = log[log.index("hunter2") + cut_at - 1:] if cut_at <= 14 else log[cut_at + 3:]
    scrubbed = Scrubber([url]).scrub_tail(tail)
    password = "hunter2-Secret"
    assert not any(password[i:] in scrubbed for i in range(len(password) - 2)), scrubbed
    assert "ERROR: relation missing" in scrubbed


def test_a_tail_cut_inside_a_url_with_a_password_never_learnt_is_masked_to_its_at() -> None:
    assert Scrubber().scrub_tail("ther-secret@db:5432/app failed") == f"{MASK}@db:5432/app failed"


def test_a_tail_that_is_a_whole_message_keeps_its_words() -> None:
    text = '{"outcome": "Failed", "message": "relation accounts does not exist"}'
    assert Scrubber(["postgresql://app:hunter2@db/app"]).scrub_tail(text) == text


def test_a_job_log_tail_is_scrubbed_as_a_tail() -> None:
    """kube.Kube.job_last_words: a raw log tail (no report) from a revision that crashed."""
    url = "postgresql://app:hunter2-Secret@db.internal:5432/app"
    tail = "er2-Secret@db.internal:5432/app\nTraceback: boom"
    words = last_words([failed_pod(tail)], Scrubber([url]))
    assert words is not None and "Secret@" not in words.message and "boom" in words.message


def test_a_message_scrubbed_again_where_it_leaves_keeps_its_later_lines() -> None:
    """The status writer scrubs a message the loop already scrubbed and escaped: a YAML
    `password:` or a `*_TOKEN=` value ends at the escaped line end, as it did at the real one."""
    output = "connecting\npassword: x\nDEPLOY_TOKEN=y\nupgrade failed at line 3\n"
    once = PATTERNS.message(output)
    assert PATTERNS.message(once) == once
    assert once.endswith("upgrade failed at line 3\\n") and "x\\n" not in once


def test_a_tail_that_starts_with_a_secrets_last_letter_is_not_cut() -> None:
    """Only the end of a password that ends a word is masked at the start of a tail:
    "c" of a secret is not the "c" of "connecting"."""
    scrubber = Scrubber(["postgresql://app:s3cret-abc@db/app"])
    assert scrubber.scrub_tail("connecting to db") == "connecting to db"
    assert scrubber.scrub_tail("bc failed") == "*** failed"
