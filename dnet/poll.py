"""One bounded wait: call a probe until it says done, backing off, and fail with a description."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from dnet.errors import DnetError

T = TypeVar("T")


class PollTimeout(DnetError):
    """A wait ran out of time; the message says what was awaited and the last thing seen."""


def poll(probe: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.2,
         max_interval: float = 2.0, last: Callable[[], str] | None = None) -> T:
    """Return probe()'s first result that is not None (or False); raise PollTimeout after `timeout` seconds.

    The interval doubles after each miss up to max_interval. `what` completes "timed out after Ns waiting for ...";
    `last` (optional) says what was seen last.
    """
    deadline = time.monotonic() + timeout
    delay = interval
    while True:
        got = probe()
        if got is not None and got is not False:
            return got
        left = deadline - time.monotonic()
        if left <= 0:
            seen = f" (last seen: {last()})" if last else ""
            raise PollTimeout(f"timed out after {timeout:.0f}s waiting for {what}{seen}")
        time.sleep(min(delay, left))
        delay = min(delay * 2, max_interval)
