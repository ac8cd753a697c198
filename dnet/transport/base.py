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


# Runs a script sent on stdin (so nothing in it is on a process list or in sudo's log). It reads the whole script
# first: commands in it that read stdin get end-of-file, not the script's rest.
FROM_STDIN = 'script=$(cat); eval "$script"'


def command_timeout() -> float:
    """Seconds any one remote command may take unless its caller says otherwise (DNET_COMMAND_TIMEOUT, default 600):
    no wait is unbounded, so a host that dies mid-command is a per-host error, never a hang."""
    try:
        return max(1.0, float(os.environ.get("DNET_COMMAND_TIMEOUT", "600")))
    except ValueError:
        return 600.0


def mask(text: str, secrets: tuple[str, ...]) -> str:
    """Replace every secret in text with ***: each as it is and as the shell quotes it (the longest first, so a
    secret that holds another is masked whole)."""
    forms = {f for s in secrets if s for f in (s, shlex.quote(s))}
    for s in sorted(forms, key=len, reverse=True):
        text = text.replace(s, "***")
    return text


def mask_data(value: object, secrets: tuple[str, ...]) -> object:
    """mask() on every string inside nested dicts and lists (before JSON escapes a secret's quotes and
    backslashes, which mask() on the JSON text would then miss)."""
    if isinstance(value, str):
        return mask(value, secrets)
    if isinstance(value, dict):
        return {k: mask_data(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_data(v, secrets) for v in value]
    return value


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
