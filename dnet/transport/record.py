"""Transports that wrap or stand in for others: a command log for -v, a recorder for plan --show-commands."""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import IO

from dnet.transport.base import FROM_STDIN, Result, Transport, mask


class Logged:
    """Pass every command through to a transport, telling `log` about it first (secrets masked)."""

    def __init__(self, inner: Transport, log: Callable[[str], None]) -> None:
        self.inner, self.log, self.name = inner, log, inner.name

    def _first_line(self, command: str, secrets: tuple[str, ...]) -> str:
        lines = mask(command, secrets).strip().splitlines()
        more = f"  # +{len(lines) - 1} lines" if len(lines) > 1 else ""
        return (lines[0] if lines else "")[:200] + more

    def run(self, command: str, *, check: bool = True, stdin: bytes | None = None, timeout: float | None = None,
            secrets: tuple[str, ...] = ()) -> Result:
        if command == FROM_STDIN and stdin is not None:  # a runbook's shell text: show it, not the wrapper
            self.log(f"{self.name}$ {self._first_line(stdin.decode(errors='replace'), secrets)}  # sent on stdin")
        else:
            self.log(f"{self.name}$ {self._first_line(command, secrets)}")
        return self.inner.run(command, check=check, stdin=stdin, timeout=timeout, secrets=secrets)

    def stream_in(self, command: str, source: IO[bytes], *, secrets: tuple[str, ...] = ()) -> Result:
        self.log(f"{self.name}$ {self._first_line(command, secrets)}  # stdin streamed from this machine")
        return self.inner.stream_in(command, source, secrets=secrets)

    def close(self) -> None:
        self.inner.close()


class Recorder:
    """Record commands instead of running them; every command "succeeds" with no output.

    Several recorders can share one log, so that the order across hosts is kept.
    """

    def __init__(self, name: str, log: list[tuple[str, str]] | None = None) -> None:
        self.name = name
        self.log: list[tuple[str, str]] = log if log is not None else []
        self._lock = threading.Lock()

    def run(self, command: str, *, check: bool = True, stdin: bytes | None = None, timeout: float | None = None,
            secrets: tuple[str, ...] = ()) -> Result:
        shown = mask(command, secrets)
        if stdin is not None:
            text = mask(stdin.decode(errors="replace"), secrets)
            shown += f"  # stdin: {' '.join(text.split())}" if len(text) < 400 else f"  # stdin: {len(stdin)} bytes"
        with self._lock:
            self.log.append((self.name, shown))
        return Result(self.name, command, 0, "", "")

    def stream_in(self, command: str, source: IO[bytes], *, secrets: tuple[str, ...] = ()) -> Result:
        return self.run(command + "  # stdin streamed from this machine", secrets=secrets)

    def close(self) -> None:
        pass
