"""Terminal and pipe output: rich tables and colour on a terminal, plain text in a pipe.

In a pipe there is no box drawing and no escape code; a table row is one line (grep and awk work on it), as
wide as its values need, which for most tables is under 80 columns.

Remote text and inventory values are never read as rich markup: cells and messages go through Text.
rich itself (25 ms to import) loads only when something needs it: a plain message to a pipe is written as is.
"""
from __future__ import annotations

import os
import sys
from typing import IO, TYPE_CHECKING, Any, cast

from dnet.errors import clean

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

PIPE_WIDTH = 4096  # plain output: no wrapping inside values; tables as wide as their content


def no_color() -> bool:
    """NO_COLOR (https://no-color.org): present and not empty."""
    return bool(os.environ.get("NO_COLOR"))


def console(stream: IO[str], stderr: bool = False) -> Console:
    """A console for one stream: styled on a terminal, plain (no escape codes, 80 columns) otherwise."""
    from rich.console import Console

    tty = stream.isatty()
    return Console(stderr=stderr, highlight=False, emoji=False, soft_wrap=True, width=None if tty else PIPE_WIDTH,
                   color_system=None if (no_color() or not tty) else "auto", force_terminal=tty,
                   no_color=no_color() or not tty)


def table(con: Console, title: str, *columns: str) -> Table:
    """A table: boxed on a terminal, plain columns (no box drawing) in a pipe."""
    from rich import box
    from rich.table import Table

    tty = con.is_terminal
    t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD if tty else None,
              show_edge=tty, pad_edge=False, collapse_padding=not tty, safe_box=True)
    for col in columns:
        t.add_column(col, overflow="fold" if tty else "ignore", no_wrap=not tty)
    return t


def show(con: Console, t: Table) -> None:
    """Print a table; in a pipe, rows are never cut inside a value (a row longer than 80 columns stays one line)."""
    con.print(t)  # a pipe console is wide: a table takes its natural width, one line per row


def row(t: Table, *cells: str | Text) -> None:
    """Add a row whose plain strings are shown as they are (never parsed as markup)."""
    from rich.text import Text

    t.add_row(*(c if isinstance(c, Text) else Text(clean(str(c))) for c in cells))


def styled(text: str, style: str) -> Text:
    from rich.text import Text

    return Text(clean(text), style=style)


def say(con: Console, *parts: str | Text) -> None:
    """Print one message made of plain strings and styled pieces (no markup parsing, no control characters)."""
    if isinstance(con, _Lazy) and all(isinstance(p, str) for p in parts) and con.plain():
        stream = con.stream()
        stream.write(clean("".join(cast("list[str]", parts))) + "\n")
        stream.flush()
        return
    from rich.text import Text

    con.print(Text.assemble(*(p if isinstance(p, Text) else Text(clean(p)) for p in parts)))


class _Lazy:
    """out and err: the rich Console is made on first use; until then a plain message to a pipe needs no rich."""

    def __init__(self, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Any = None

    def stream(self) -> IO[str]:
        return sys.stderr if self._stderr else sys.stdout

    def plain(self) -> bool:
        return self._console is None and not self.stream().isatty()

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            self._console = console(self.stream(), stderr=self._stderr)
        return getattr(self._console, name)


out = cast("Console", _Lazy(stderr=False))
err = cast("Console", _Lazy(stderr=True))
