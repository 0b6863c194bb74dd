"""Scrubbing costs linear time on any text a tenant can write: a Secret value, a selector
value, a revision string, a Job's output. The shapes below took the operator's previous
scrubber minutes at these sizes (64 KB of "a-a-a-..." took 35 s, and it grew with the
square), all while holding the GIL."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemagate.core.tenancy import scrub as scrubbing
from schemagate.core.tenancy.scrub import MASK, Scrubber, escape_controls

KB = 1024
#: What a URL of each adversarial shape would teach a schema's scrubber.
URL = "postgresql://app:p%40ss-a-a@db.internal:5432/app?password=a-a&sslmode=require"

# Each shape repeated; what backtracking regular expressions choke on: runs that look
# like the start of a key, a value, a quote or a URL again and again.
SHAPES = ["a-", "password=", "password= ", "pass", "PaSs_", "'", '"', "\\", "'\\", ":",
          ": ", "a://", "a://b:", "x@", "%41", "a%4", "%", "password: '", "PASSWORD '",
          "GITHUB_TOKEN=", "_SECRET", "=", "-a", "\u00e9%C3"]


def adversarial(shape: str, size: int) -> str:
    return shape * (size // len(shape))


def every_pass(scrubber: Scrubber, text: str) -> None:
    """Each way the operator reads a text: a message, a log's tail, and a Secret's value
    (which it learns)."""
    scrubber.message(text)
    scrubber.scrub_tail(text)
    Scrubber([text])


@pytest.mark.parametrize("shape", SHAPES)
def test_a_quarter_megabyte_of_any_adversarial_shape_is_scrubbed_at_once(shape: str) -> None:
    text = adversarial(shape, 256 * KB)
    started = time.perf_counter()
    every_pass(Scrubber([URL]), text)
    assert time.perf_counter() - started < 5.0  # about 0.3 s; a backtracking pattern: minutes


@pytest.mark.parametrize("shape", ["a-", "password=", "'", ":", "pass", "a://b:"])
def test_a_megabyte_of_the_shapes_of_the_issue_is_scrubbed_at_once(shape: str) -> None:
    text = adversarial(shape, 1024 * KB)
    started = time.perf_counter()
    Scrubber([URL]).scrub(text)
    assert time.perf_counter() - started < 5.0  # about 0.2 s


def test_the_secret_value_that_froze_the_operator_is_learnt_at_once() -> None:
    """A 96 KB Secret value froze the operator: learning it scanned it quadratically."""
    started = time.perf_counter()
    scrubber = Scrubber([adversarial("a-", 96 * KB)])
    assert scrubber.scrub("nothing secret") == "nothing secret"
    assert time.perf_counter() - started < 2.0


# A deterministic measure of the work: the lines of scrub.py run. The regular
# expressions and `str` methods it calls run in C, out of the count; the test below
# holds each of them to a shape that cannot backtrack.

def lines_run(work: Callable[[], Any]) -> int:
    count = 0
    here = scrubbing.__file__

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return local

    def calls(frame: FrameType, event: str, arg: Any) -> Any:
        return local if frame.f_code.co_filename == here else None

    sys.settrace(calls)
    try:
        work()
    finally:
        sys.settrace(None)
    return count


units = st.lists(st.sampled_from([*"aP:/@%'\"\\=&; -_\n", "pass", "password", "://", "%4",
                                  "%41", "TOKEN", "SECRET", URL[:20]]),
                 min_size=1, max_size=8).map("".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(unit=units, prefix=st.text(max_size=30))
def test_twice_the_text_costs_at_most_about_twice_the_work(unit: str, prefix: str) -> None:
    scrubber = Scrubber([URL])
    size = 4 * KB
    once = prefix + adversarial(unit, size)
    twice = prefix + adversarial(unit, 2 * size)
    work_once = lines_run(lambda: every_pass(scrubber, once))
    work_twice = lines_run(lambda: every_pass(scrubber, twice))
    assert work_twice <= 3 * work_once + 200, (unit, work_once, work_twice)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(unit=units)
def test_sixteen_times_the_text_takes_nowhere_near_256_times_the_time(unit: str) -> None:
    """The C side measured too, by the clock, with margins no busy machine reaches:
    linear work grows 16 times, quadratic work 256 times; the bound is 64."""
    scrubber = Scrubber([URL])

    def best_of_three(text: str) -> float:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            every_pass(scrubber, text)
            times.append(time.perf_counter() - started)
        return min(times)

    small = best_of_three(adversarial(unit, 16 * KB))
    large = best_of_three(adversarial(unit, 256 * KB))
    assert large <= 64 * small + 0.1, (unit, small, large)


# Every regular expression in scrub.py has a shape that cannot backtrack: at most one
# variable-width repeat, over a fixed-width body, and nothing after it that could fail
# and send the search back.

def regular_expressions() -> Iterator[tuple[str, re.Pattern[str]]]:
    for name, value in vars(scrubbing).items():
        if isinstance(value, re.Pattern):
            yield name, value
        elif isinstance(value, dict):
            yield from ((f"{name}[{k!r}]", v) for k, v in value.items()
                        if isinstance(v, re.Pattern))


def _parse(pattern: re.Pattern[str]) -> Any:
    from re import _parser  # type: ignore[attr-defined]
    return _parser.parse(pattern.pattern, pattern.flags)


def variable_repeats(items: Any) -> list[tuple[int, Any]]:
    """(position, body) of each repeat of variable count, at any depth."""
    found = []
    for position, (op, av) in enumerate(items):
        name = str(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, body = av
            if low != high:
                found.append((position, body))
            found += variable_repeats(body)
        elif name == "SUBPATTERN":
            found += variable_repeats(av[-1])
        elif name == "BRANCH":
            for branch in av[1]:
                found += variable_repeats(branch)
    return found


def test_no_regular_expression_in_the_scrubber_can_backtrack() -> None:
    checked = 0
    for name, pattern in regular_expressions():
        top = list(_parse(pattern))
        repeats = variable_repeats(top)
        assert len(repeats) <= 1, name
        if repeats:
            position, body = repeats[0]
            assert not variable_repeats(body), name
            low, high = body.getwidth()
            assert low == high, f"{name}: its repeated unit has one width"
            assert 0 <= position == len(top) - 1, f"{name}: nothing after the repeat"
        checked += 1
    assert checked >= 8


def test_the_masks_land_where_they_should_on_the_adversarial_shapes() -> None:
    """Fast, and still right: a password key's value on a huge line is masked."""
    text = adversarial("a-", 256 * KB) + " password=hunter2 " + adversarial(":", 256 * KB)
    assert "hunter2" not in Scrubber().scrub(text)
    assert f"password={MASK}" in Scrubber().scrub(text)
    assert escape_controls("\n" * 3) == "\\n\\n\\n"
