"""`schemagate migrate`: what the `run: Alembic` Job's pod runs (never the operator).

The revision files come from a directory (the ConfigMap, mounted), the URL from the
environment (the backend's Secret). `upgrade.upgrade` runs `upgrade heads` in one
transaction under the database's advisory lock, with the timeouts the operator used.
The report, one JSON object `{"outcome", "message"}`, goes to the termination log
(where the operator reads it) and to standard output; every string in it passed the
scrubber, which knows the URL. The operator still judges the run by the database.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from schemagate.core.migration.alembic_job import EXIT_RETRY
from schemagate.core.migration.run import REPORT_LIMIT
from schemagate.core.revisions.keys import InvalidScripts, NoScripts
from schemagate.core.tenancy.scrub import Scrubber, ScrubbingFilter
from schemagate.core.wire.models import MigrationOutcome
from schemagate.core.wire.reasons import Reason
from schemagate.job import upgrade
from schemagate.job.scripts import scripts_from_files
from schemagate.postgres.connect import ConnectionFailed, InvalidDatabaseUrl

EXIT_APPLIED = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def read_scripts_dir(directory: Path) -> dict[str, str]:
    """The files of a mounted ConfigMap (key to text). The kubelet's own entries
    (`..data`, `..2026_...`) start with two dots and are no keys."""
    files = {}
    for path in sorted(directory.iterdir()):
        if path.name.startswith("..") or not path.is_file():
            continue
        files[path.name] = path.read_text(encoding="utf-8", errors="replace")
    return files


class _Scrubbed(io.TextIOBase):
    """Standard output and error as revision files see them: what they print passes the
    scrubber before it reaches the pod's log (and the log's tail, the termination
    message, the operator, which scrubs it again)."""

    def __init__(self, stream: TextIO, scrubber: Scrubber) -> None:
        self._stream, self._scrubber = stream, scrubber

    def write(self, text: str) -> int:
        self._stream.write(self._scrubber.scrub(text))
        self._stream.flush()
        return len(text)

    def flush(self) -> None:
        self._stream.flush()


def run(args: argparse.Namespace) -> int:
    scrubber = Scrubber()
    sys.stdout = _Scrubbed(sys.stdout, scrubber)
    sys.stderr = _Scrubbed(sys.stderr, scrubber)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ScrubbingFilter(lambda _: scrubber))
    logging.basicConfig(level=logging.INFO, handlers=[handler],
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    url = os.environ.get(args.url_env, "").strip()
    if not url:
        return _report(args, scrubber, MigrationOutcome.FAILED,
                       f"{args.url_env} is not set: the Job takes the URL from the backend's "
                       "Secret", EXIT_USAGE)
    scrubber.learn(url)
    workdir = Path(tempfile.mkdtemp(prefix="schemagate-", dir=args.scratch_dir))
    try:
        return _migrate(args, url, workdir, scrubber)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _migrate(args: argparse.Namespace, url: str, workdir: Path, scrubber: Scrubber) -> int:
    failed = MigrationOutcome.FAILED
    try:
        scripts = scripts_from_files(read_scripts_dir(args.scripts_dir), workdir)
        result = upgrade.upgrade(
            url, scripts, schema=args.schema, version_table=args.version_table,
            version_table_schema=args.version_table_schema or args.schema,
            connect_timeout=args.connect_timeout, lock_wait_seconds=args.lock_wait_seconds,
            lock_timeout=args.lock_timeout, statement_timeout=args.statement_timeout)
    except (NoScripts, InvalidScripts) as exc:
        return _report(args, scrubber, failed, f"the revision files: {exc}", EXIT_FAILED)
    except upgrade.MigrationLockBusy as exc:
        return _report(args, scrubber, failed, str(exc), EXIT_RETRY)
    except upgrade.MigrationFailed as exc:
        return _report(args, scrubber, failed, exc.message,
                       EXIT_RETRY if exc.retryable else EXIT_FAILED)
    except InvalidDatabaseUrl as exc:
        return _report(args, scrubber, failed, f"the URL cannot be used: {exc}", EXIT_FAILED)
    except ConnectionFailed as exc:
        retry = exc.reason is Reason.DATABASE_UNREACHABLE
        return _report(args, scrubber, failed, f"{exc.reason.value}: {exc.message}",
                       EXIT_RETRY if retry else EXIT_FAILED)
    except BaseException as exc:  # noqa: BLE001 - a revision's sys.exit() or anything else
        # The run's transaction rolled back on the way out; say so, then fail.
        text = str(exc) or repr(exc)
        return _report(args, scrubber, failed, f"{type(exc).__name__}: {text}; nothing was "
                       "applied (the run rolled back as a whole)", EXIT_FAILED)
    word = MigrationOutcome.APPLIED if result.applied else MigrationOutcome.ALREADY_APPLIED
    return _report(args, scrubber, word, result.message, EXIT_APPLIED)


def _report(args: argparse.Namespace, scrubber: Scrubber, outcome: MigrationOutcome,
            message: str, status: int) -> int:
    text = scrubber.message(message)[:REPORT_LIMIT]  # cut after scrubbing
    line = json.dumps({"outcome": outcome.value, "message": text})
    print(line, flush=True)
    try:
        args.report_file.write_text(line, encoding="utf-8")
    except OSError:
        pass  # outside a pod: standard output is the report
    return status
