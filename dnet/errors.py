"""One exception base for dnet; inventory errors carry file:line:col."""
from __future__ import annotations

import re
from dataclasses import dataclass

# C0 controls but tab and newline, DEL, C1 controls: a host's output or an inventory value could move the cursor,
# retitle the terminal or hide text with them. JSON keeps them, escaped by json.dumps.
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text: str) -> str:
    """Text safe for a terminal: each control character shown as \\xNN instead of acted on."""
    return CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class DnetError(Exception):
    """Base of every error dnet reports to a user (never shown as a traceback)."""


@dataclass(frozen=True, order=True)
class Problem:
    """One finding about an inventory, anchored at a place in its file."""

    line: int
    col: int
    message: str
    file: str = ""
    severity: str = "error"  # or "warning"

    def __str__(self) -> str:
        tag = "warning: " if self.severity == "warning" else ""
        return clean(f"{self.file}:{self.line}:{self.col}: {tag}{self.message}")


class InventoryError(DnetError):
    """The inventory is not valid; `problems` lists every finding."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class CommandError(DnetError):
    """A command on a host failed; carries host, command, exit code, output tail."""

    def __init__(self, host: str, command: str, code: int, output: str) -> None:
        self.host, self.command, self.code, self.output = host, command, code, output
        tail = "\n".join(output.strip().splitlines()[-8:])
        super().__init__(f"{host}: `{command}` exited {code}" + (f":\n{tail}" if tail else ""))


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during an apply: `summary` says what was done, what was in flight and what never started."""

    def __init__(self, summary: list[str]) -> None:
        super().__init__("; ".join(summary))
        self.summary = summary
