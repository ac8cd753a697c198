"""Test doubles shipped with dnet: a call-and-response transport for unit tests."""
from __future__ import annotations

import re
from typing import IO

from dnet.transport.base import Result


class FakeTransport:
    """Answers commands from a list of (regex, code, stdout, stderr); records every command."""

    def __init__(self, name: str, responses: list[tuple[str, int, str, str]] | None = None) -> None:
        self.name = name
        self.responses = responses or []
        self.commands: list[str] = []

    def run(self, command: str, *, check: bool = True, stdin: bytes | None = None, timeout: float | None = None,
            secrets: tuple[str, ...] = ()) -> Result:
        self.commands.append(command)
        for pattern, code, out, err in self.responses:
            if re.search(pattern, command):
                r = Result(self.name, command, code, out, err)
                break
        else:
            r = Result(self.name, command, 0, "", "")
        return r.check(secrets) if check else r

    def stream_in(self, command: str, source: IO[bytes], *, secrets: tuple[str, ...] = ()) -> Result:
        source.read()
        return self.run(command, secrets=secrets)

    def close(self) -> None:
        pass
