"""How much does `schemagate plan` cost over `alembic upgrade --sql` alone?

Writes an Alembic project of 200 revisions (a table created, then columns added, an
index, a type changed, a column dropped, raw SQL, round and round) with an offline
env.py, and times, in the same run and turn by turn, each as the command a CI step runs
(a fresh process):

- `alembic upgrade heads --sql`: the rendering alone, the floor;
- `schemagate plan --from base --serving F`: the same rendering, plus sqlglot over every
  statement, squawk over the whole SQL and the findings;
- the same with `--lint off`: what squawk's run adds.

Prints the medians and the ratio to the floor (the aim: 2x or less). Run it with
`make bench-plan` (or `.venv/bin/python bench/plan.py [--revisions N] [--reps N]`).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
ENV_PY = """\
from alembic import context

context.configure(url="postgresql://", literal_binds=True)
with context.begin_transaction():
    context.run_migrations()
"""
REVISION = '''\
"""{revision}"""
import sqlalchemy as sa
from alembic import op

revision = {revision!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade():
{body}


def downgrade():
    pass
'''
STEPS = (
    '    op.create_table("t{n}", sa.Column("id", sa.BigInteger, primary_key=True),\n'
    '                    sa.Column("name", sa.Text), sa.Column("code", sa.String(32)))',
    '    op.add_column("t{t}", sa.Column("note", sa.Text))',
    '    op.create_index("ix_t{t}_name", "t{t}", ["name"])',
    '    op.alter_column("t{t}", "code", type_=sa.String(64))',
    '    op.drop_column("t{t}", "note")',
    '    op.execute("UPDATE t{t} SET name = \'x\' WHERE name IS NULL")',
)


def write_project(root: Path, revisions: int) -> Path:
    (root / "migrations" / "versions").mkdir(parents=True)
    (root / "migrations" / "env.py").write_text(ENV_PY)
    ini = root / "alembic.ini"
    ini.write_text("[alembic]\nscript_location = %(here)s/migrations\n")
    for n in range(revisions):
        body = STEPS[n % len(STEPS)].format(n=n, t=n - n % len(STEPS))
        (root / "migrations" / "versions" / f"r{n:04d}.py").write_text(REVISION.format(
            revision=f"r{n:04d}", down=f"r{n - 1:04d}" if n else None, body=body))
    # The serving version declares every table with its columns, as snapshot prints them.
    tables = [f"t{n}" for n in range(0, revisions, len(STEPS))]
    serving = ["tables:", *(f"- {t}" for t in tables), "columns:"]
    for table in tables:
        serving += [f"- table: {table}", "  columns:", "  - {name: id, type: bigint}",
                    "  - {name: name, type: text}", "  - {name: code, type: character "
                    "varying(32)}"]
    (root / "serving.yaml").write_text("\n".join(serving) + "\n")
    return ini


def timed(command: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    return time.perf_counter() - started, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--revisions", type=int, default=200)
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp:
        root = Path(tmp)
        ini = write_project(root, args.revisions)
        plan = [str(BIN / "schemagate"), "plan", str(ini), "--from", "base",
                "--serving", str(root / "serving.yaml")]
        contenders = {
            "alembic upgrade heads --sql": [str(BIN / "alembic"), "-c", str(ini),
                                            "upgrade", "heads", "--sql"],
            "schemagate plan": plan,
            "schemagate plan --lint off": [*plan, "--lint", "off"],
        }
        times: dict[str, list[float]] = {name: [] for name in contenders}
        outputs: dict[str, subprocess.CompletedProcess[str]] = {}
        for _ in range(args.reps):
            for name, command in contenders.items():
                seconds, outputs[name] = timed(command, root)
                times[name].append(seconds)
        for name, done in outputs.items():
            if done.returncode not in (0, 1):
                sys.exit(f"{name} failed ({done.returncode}): {done.stderr[-2000:]}")
        findings = outputs["schemagate plan"].stdout.rsplit("result: ", 1)[-1].strip()
        floor = statistics.median(times["alembic upgrade heads --sql"])
        print(f"{args.revisions} revisions, {args.reps} runs each, median wall time of the "
              "whole command (a fresh process):")
        for name, samples in times.items():
            median = statistics.median(samples)
            print(f"  {name:<30} {median * 1000:8.0f} ms   {median / floor:5.2f}x")
        print(f"  plan's result: {findings}")


if __name__ == "__main__":
    main()
