"""Test doubles shipped with dnet: a call-and-response transport that fails on any command it was not told about."""
from __future__ import annotations

import re
from typing import IO

from dnet.transport.base import FROM_STDIN, Result

Response = tuple[str, int, str, str]  # (regex, exit code, stdout, stderr)


class UnexpectedCommand(AssertionError):
    """A command nobody told the fake about (like Fabric's MockRemote, the test must say what is sent)."""


class FakeTransport:
    """Answer commands from (regex, code, stdout, stderr) responses, first match wins; record every command.

    A command that matches no response raises UnexpectedCommand (recorded in `unexpected` too), so a unit test
    proves exactly which commands are sent. `expect("regex", ...)` adds responses that succeed with no output.
    """

    def __init__(self, name: str, responses: list[Response] | None = None) -> None:
        self.name = name
        self.responses: list[Response] = list(responses or [])
        self.commands: list[str] = []
        self.stdins: list[bytes] = []  # what each command got on stdin (b"" for none)
        self.unexpected: list[str] = []

    def expect(self, *patterns: str) -> FakeTransport:
        self.responses += [(p, 0, "", "") for p in patterns]
        return self

    def run(self, command: str, *, check: bool = True, stdin: bytes | None = None, timeout: float | None = None,
            secrets: tuple[str, ...] = ()) -> Result:
        self.commands.append(command)
        self.stdins.append(stdin or b"")
        seen = (stdin or b"").decode(errors="replace") if command == FROM_STDIN else command  # a script on stdin
        for pattern, code, out, err in self.responses:
            if re.search(pattern, seen):
                r = Result(self.name, command, code, out, err)
                return r.check(secrets) if check else r
        self.unexpected.append(command)
        raise UnexpectedCommand(f"{self.name}: unexpected command: {command[:300]}")

    def stream_in(self, command: str, source: IO[bytes], *, secrets: tuple[str, ...] = ()) -> Result:
        source.read()
        return self.run(command, secrets=secrets)

    def close(self) -> None:
        pass
