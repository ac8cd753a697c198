"""Run commands on the operator's own machine."""
from __future__ import annotations

import subprocess
from typing import IO

from dnet.transport.base import Result, command_timeout


class LocalTransport:
    """A transport for the local engine (address: local)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, command: str, *, check: bool = True, stdin: bytes | None = None, timeout: float | None = None,
            secrets: tuple[str, ...] = ()) -> Result:
        try:
            p = subprocess.run(["sh", "-c", command], input=stdin, capture_output=True,
                               timeout=timeout or command_timeout())
        except subprocess.TimeoutExpired as exc:
            out = (exc.stdout or b"").decode(errors="replace")
            timed_out = Result(self.name, command, 124, out, f"(timed out after {exc.timeout:.0f}s)")
            return timed_out.check(secrets) if check else timed_out
        r = Result(self.name, command, p.returncode, p.stdout.decode(errors="replace"),
                   p.stderr.decode(errors="replace"))
        return r.check(secrets) if check else r

    def stream_in(self, command: str, source: IO[bytes], *, secrets: tuple[str, ...] = ()) -> Result:
        p = subprocess.run(["sh", "-c", command], stdin=source, capture_output=True)
        return Result(self.name, command, p.returncode, p.stdout.decode(errors="replace"),
                      p.stderr.decode(errors="replace")).check(secrets)

    def close(self) -> None:
        pass
