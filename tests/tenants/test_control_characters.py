"""A declared table name holding a newline and a terminal escape (OSC "set title"): the
hostile schema's message shows them as escapes, the operator's log has the name on its
own line and no line the name forged, and the victim's new pod opens."""

from __future__ import annotations

import json

from tests.cluster.scenario import Backend
from tests.support.wait import wait_for
from tests.tenants.tenancy import Alive, Victim, unharmed

SCHEMA = "garbled"
FORGED = "FAKE LOG LINE"
TABLE = f"credit\n{FORGED}\x1b]0;pwned\x07"
#: The table's name as a message and a log line show it.
ESCAPED = "credit\\nFAKE LOG LINE\\x1b]0;pwned\\x07"


def test_a_table_name_with_a_newline_and_an_escape_forges_no_log_line(
        hostile: Backend, victim: Victim, alive: Alive) -> None:
    hostile.secret(hostile.db.url())
    manifest = hostile.schema_manifest(SCHEMA, tables=[TABLE],
                                       migrations={"revisionCheck": False})
    # JSON, not YAML: the control characters reach the API server exactly as written.
    hostile.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    judged = hostile.wait_reason("TablesMissing", SCHEMA, timeout=60)
    assert ESCAPED in judged["message"], judged
    assert not set("\n\x1b\x07") & set(judged["message"]), judged

    # The operator logs the schema's transition to TablesMissing, message and all.
    log = wait_for("the operator's log line quoting the table's name",
                   lambda: alive.operator.log(tail=400), lambda text: FORGED in text, timeout=30)
    forged = [line for line in log.splitlines() if line.startswith(FORGED)]
    assert not forged, f"the table's name forged log lines: {forged}"
    assert ESCAPED in log, log
    assert "\x1b" not in log and "\x07" not in log, "the log carries the terminal escape"
    unharmed(victim, alive)
