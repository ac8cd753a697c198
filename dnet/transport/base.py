"""The transport interface and the result of one command."""
from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from typing import IO, Protocol

from dnet.errors import CommandError


@dataclass(frozen=True)
class Result:
    """What one command did on one host."""

    host: str
    command: str
    code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.code == 0

    def check(self, secrets: tuple[str, ...] = ()) -> Result:
        """Raise CommandError (with secrets masked) unless the command succeeded."""
        if self.code != 0:
            raise CommandError(self.host, mask(self.command, secrets), self.code,
                               mask(self.stdout + self.stderr, secrets))
        return self


def command_timeout() -> float:
    """Seconds any one remote command may take unless its caller says otherwise (DNET_COMMAND_TIMEOUT, default 600):
    no wait is unbounded, so a host that dies mid-command is a per-host error, never a hang."""
    try:
        return max(1.0, float(os.environ.get("DNET_COMMAND_TIMEOUT", "600")))
    except ValueError:
        return 600.0


def mask(text: str, secrets: tuple[str, ...]) -> str:
    """Replace every secret in text with ***."""
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text


class Transport(Protocol):
    """Runs shell commands on one host."""

    name: str

    def run(self, command: str, *, check: bool = True, stdin: bytes | None = None, timeout: float | None = None,
            secrets: tuple[str, ...] = ()) -> Result: ...

    def stream_in(self, command: str, source: IO[bytes], *, secrets: tuple[str, ...] = ()) -> Result: ...

    def close(self) -> None: ...


def quote(*args: str) -> str:
    """Join arguments into one safely quoted shell command."""
    return " ".join(shlex.quote(a) for a in args)
