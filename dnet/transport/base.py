"""The transport interface and the result of one command."""
from __future__ import annotations

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
