"""Waiting for something to happen, with a deadline, instead of sleeping.

`wait_for` calls `probe` until `until(value)` holds and returns that value. A probe that
raises (an object not created yet, an API server restarting) is asked again. On timeout
the test fails with what it waited for and the last value the probe gave, so a failure
says how far things got. `wait_for_async` is the same wait inside an event loop, for
tests that drive the operator's coroutines themselves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class _Watch:
    """One wait: the deadline and the last value (or error) the probe gave."""

    def __init__(self, what: str, timeout: float) -> None:
        self.what, self.timeout = what, timeout
        self.deadline = time.monotonic() + timeout
        self.last: object = "nothing yet"

    def done(self, probe: Callable[[], T], until: Callable[[T], object]) -> tuple[bool, T]:
        try:
            value = probe()
        except Exception as error:  # asked again, and reported if it lasts
            self.last = f"{type(error).__name__}: {' '.join(str(error).split())[:200]}"
            return False, None  # type: ignore[return-value]
        self.last = value
        return bool(until(value)), value

    def check(self) -> None:
        if time.monotonic() >= self.deadline:
            raise AssertionError(f"timed out after {self.timeout:g} s waiting for "
                                 f"{self.what}; last seen: {self.last!r}")


def wait_for(what: str, probe: Callable[[], T], until: Callable[[T], object] = bool, *,
             timeout: float = 30.0, interval: float = 0.2) -> T:
    watch = _Watch(what, timeout)
    while True:
        done, value = watch.done(probe, until)
        if done:
            return value
        watch.check()
        time.sleep(interval)


async def wait_for_async(what: str, probe: Callable[[], T],
                         until: Callable[[T], object] = bool, *, timeout: float = 30.0,
                         interval: float = 0.2) -> T:
    watch = _Watch(what, timeout)
    while True:
        done, value = watch.done(probe, until)
        if done:
            return value
        watch.check()
        await asyncio.sleep(interval)
