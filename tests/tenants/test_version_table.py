"""A tenant's own database whose version table is a view named `alembic_version`: one
returns a single 200 MB row, one ten million rows. The operator, under the chart's 384Mi
memory limit, reads at most 33 rows of 65 characters, so it is not OOMKilled, each
hostile schema's RevisionMismatch says which limit its table broke, and the victim's
new pod opens."""

from __future__ import annotations

from tests.cluster.scenario import Backend, Database
from tests.support.wait import wait_for
from tests.tenants.tenancy import Alive, Victim, reasons, taken, unharmed

#: Each schema's view, and what its message must say.
VIEWS = {
    "one-huge-row": ("SELECT pg_catalog.repeat('x', 200000000) AS version_num",
                     "the version table public.alembic_version holds a revision longer than "
                     "64 characters"),
    # In the select list, the series streams: the server makes only the rows fetched.
    "ten-million-rows": ("SELECT 'r' || pg_catalog.generate_series(1, 10000000) AS version_num",
                         "the version table public.alembic_version has more than 32 rows"),
}


def version_view(db: Database, body: str) -> None:
    """The migrated database's version table replaced by a view of `body`, its role's."""
    db.migrate()
    db.execute("DROP TABLE alembic_version")
    db.execute(f"CREATE VIEW alembic_version AS {body}")
    db.execute(f'ALTER VIEW alembic_version OWNER TO "{db.user}"')


def test_a_version_table_of_a_200_mb_row_or_ten_million_rows_costs_the_operator_nothing(
        hostile: Backend, victim: Victim, alive: Alive) -> None:
    for name, (body, _) in VIEWS.items():
        db = Database(hostile.db.pg)
        version_view(db, body)
        hostile.secret(db.url(), name=f"db-{name}")
        # Checked once a minute: the server builds the 200 MB row at each check.
        hostile.apply(hostile.schema_manifest(name, verifyIntervalSeconds=60, database={
            "urlSecretRef": {"name": f"db-{name}", "key": "DATABASE_URL"},
            "connectTimeoutSeconds": 2}))
    taken(hostile, list(VIEWS))

    wait_for("each hostile schema's reason (or the operator's restart)",
             lambda: (reasons(hostile), alive.operator.restarts()),
             lambda seen: all(seen[0].get(name) for name in VIEWS) or seen[1] != alive.before,
             timeout=60)
    unharmed(victim, alive)
    for name, (_, said) in VIEWS.items():
        judged = hostile.condition(name)
        assert judged.get("reason") == "RevisionMismatch", (name, judged)
        assert said in judged.get("message", ""), (name, judged)
