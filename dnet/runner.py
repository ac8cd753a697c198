"""Run one function per host in parallel; collect per-host results instead of dying on the first error."""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Generic, TypeVar

from dnet.errors import DnetError

T = TypeVar("T")
K = TypeVar("K")
FORKS = 16  # hosts worked on at once unless DNET_FORKS (or --forks) says otherwise


def forks(default: int = FORKS) -> int:
    """How many hosts (or probe sources) to work on at once: DNET_FORKS, else `default`."""
    value = os.environ.get("DNET_FORKS", "")
    if not value:
        return default
    if not value.isdigit() or not 1 <= int(value) <= 1000:
        raise DnetError(f"DNET_FORKS={value!r}: give a whole number from 1 to 1000")
    return int(value)


@dataclass
class HostResult(Generic[T]):
    """The outcome on one host: a value or an error message."""

    host: str
    value: T | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def parallel(items: Iterable[K], fn: Callable[[K], T], *, name: Callable[[K], str] = str, workers: int | None = None,
             on_done: Callable[[HostResult[T]], None] | None = None,
             wait_on_interrupt: bool = False) -> list[HostResult[T]]:
    """Apply fn to every item on a bounded pool; results come back in input order.

    On Ctrl-C (or SIGTERM, turned into it) the pool is left at once, pending items never start, and the
    interrupt propagates; with wait_on_interrupt the items in flight finish first (when cleanup after them
    must see everything they made).
    """
    items = list(items)
    results: dict[int, HostResult[T]] = {}
    if not items:
        return []
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers or forks(), len(items))))
    try:
        futures = {pool.submit(fn, it): i for i, it in enumerate(items)}
        for fut in as_completed(futures):
            i = futures[fut]
            host = name(items[i])
            try:
                res: HostResult[T] = HostResult(host, value=fut.result())
            except DnetError as exc:
                res = HostResult(host, error=str(exc))
            except Exception as exc:
                res = HostResult(host, error=f"{type(exc).__name__}: {exc}")
            results[i] = res
            if on_done:
                on_done(res)
    except BaseException:
        pool.shutdown(wait=wait_on_interrupt, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return [results[i] for i in range(len(items))]
