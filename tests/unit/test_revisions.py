"""What a pod's revision annotation asks for, and when the database has it."""

from schemagate.core.revisions import applied as r


def test_the_annotation_is_a_comma_separated_list_and_blank_means_none() -> None:
    assert r.needed_revisions({"schemagate.io/revision": " b2, a1 ,"}) == {"a1", "b2"}
    assert r.needed_revisions({"schemagate.io/revision": " , "}) is None
    assert r.needed_revisions({}) is None
    many = ",".join(f"r{i:02}" for i in range(40))
    assert len(r.needed_revisions({"schemagate.io/revision": many}) or ()) == \
        r.MAX_POD_REVISIONS


CHAIN = {"a1": frozenset(), "b2": frozenset({"a1"}), "c3": frozenset({"b2"}),
         "d4": frozenset({"b2"})}


def test_history_records_each_new_head_set_once() -> None:
    history: list[str] = []
    for heads in ({"a1"}, {"a1"}, {"b2"}, {"c3", "d4"}):
        history = r.passed_through(history, frozenset(heads), CHAIN)
    assert history == ["a1", "b2", "c3,d4"]


def test_a_move_back_drops_what_followed() -> None:
    assert r.passed_through(["a1", "b2", "c3"], frozenset({"a1"})) == ["a1"]
    assert r.passed_through(["a1", "b2"], frozenset()) == []  # downgraded to base
    assert r.passed_through(["a1"], None) == ["a1"]  # not read: nothing learned


def test_a_head_set_never_seen_starts_over_unless_the_scripts_order_it() -> None:
    assert r.passed_through(["a1", "c3"], frozenset({"b2"}), CHAIN) == ["b2"]  # went back
    assert r.passed_through(["a1", "c3"], frozenset({"b2"})) == ["b2"]  # no scripts
    assert r.passed_through(["a1", "b2"], frozenset({"c3"})) == ["c3"]  # no scripts
    assert r.passed_through(["a1"], frozenset({"hotfix"}), CHAIN) == ["hotfix"]
    assert r.passed_through(["c3"], frozenset({"d4"}), CHAIN) == ["d4"]  # a sibling branch
    assert r.passed_through(["b2"], frozenset({"c3", "d4"}), CHAIN) == ["b2", "c3,d4"]
    assert r.passed_through(["a1", "c3"], frozenset({"c3", "d4"}), CHAIN) == \
        ["a1", "c3", "c3,d4"]  # a second branch beside c3


def test_a_history_belongs_to_the_database_it_was_kept_for() -> None:
    here = r.database_identity("7312345678901234567", "app")
    assert here == "7312345678901234567/app"
    assert r.history_kept_for(here, ["a1", "b2"], here) == ["a1", "b2"]
    assert r.history_kept_for(here, ["a1", "b2"], "7312345678901234567/app_green") == []
    assert r.history_kept_for(here, ["a1", "b2"], None) == []  # written before it was recorded
    unknown = r.database_identity(None, "app")
    assert unknown is None and r.history_kept_for(unknown, ["a1"], None) == []


def test_history_is_bounded() -> None:
    chain = {f"r{i}": frozenset({f"r{i - 1}"} if i else ()) for i in range(3 * r.HISTORY_LIMIT)}
    history: list[str] = []
    for i in range(3 * r.HISTORY_LIMIT):
        history = r.passed_through(history, frozenset({f"r{i}"}), chain)
    assert len(history) == r.HISTORY_LIMIT and history[-1] == f"r{3 * r.HISTORY_LIMIT - 1}"


def test_applied_from_the_graph_follows_merges_and_dependencies() -> None:
    graph = {"base": frozenset(), "x": frozenset({"base"}), "y": frozenset({"base"}),
             "merge": frozenset({"x", "y"}), "dep": frozenset(),
             "top": frozenset({"merge", "dep"})}
    at_top = r.Knowledge(current=frozenset({"top"}), graph=graph)
    assert all(r.applied(rev, at_top) is r.Applied.YES for rev in graph)
    at_x = r.Knowledge(current=frozenset({"x"}), graph=graph)
    assert r.applied("y", at_x) is r.Applied.NO
    assert r.applied("base", at_x) is r.Applied.YES


def test_a_revision_outside_the_graph_falls_back_to_the_history() -> None:
    graph = {"b2": frozenset(), "c3": frozenset({"b2"})}  # a1 was squashed away
    k = r.Knowledge(current=frozenset({"c3"}), graph=graph,
                    history=r.parse_history(["a1", "b2", "c3"]))
    assert r.applied("a1", k) is r.Applied.YES
    assert r.applied("zz", k) is r.Applied.UNKNOWN


def test_a_database_whose_heads_the_graph_does_not_know_is_ordered_by_history() -> None:
    graph = {"a1": frozenset(), "b2": frozenset({"a1"})}
    k = r.Knowledge(current=frozenset({"hotfix"}), graph=graph,
                    history=r.parse_history(["a1", "hotfix"]))
    assert r.applied("a1", k) is r.Applied.YES
    assert r.applied("b2", k) is r.Applied.NO


def test_an_empty_version_table_has_nothing_applied() -> None:
    k = r.Knowledge(current=frozenset(), history=r.parse_history(["a1"]))
    assert r.applied("a1", k) is r.Applied.NO
