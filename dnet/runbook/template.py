"""{{ }} and `when:` in runbooks: Jinja2 expressions in its sandbox, nothing else of Jinja (no {% %} blocks, no
comments, so shell text such as ${#x} stays as written). A value that reaches a shell is quoted (`| raw` opts out);
Docker's own Go templates ({{.Name}}, {{json .}}) in shell text pass through untouched."""
from __future__ import annotations

import operator
import re
import shlex
from collections.abc import Iterator
from typing import Any

from jinja2 import StrictUndefined, TemplateError, meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

# one {{ ... }}: its expression, without braces inside (dict literals are not needed in a runbook)
SPAN = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
GO_WORDS = {"json", "range", "end", "if", "else", "index", "printf", "println", "table", "with", "len", "define",
            "template", "block", "not", "and", "or", "eq", "ne", "lt", "le", "gt", "ge", "slice", "print", "call"}
RAW = re.compile(r"\|\s*raw\s*$")
MAX_REPEAT = 100_000  # the longest text or list `*` may make


class Raw(str):
    """Text that `| raw` lets into a shell unquoted (the author's explicit choice)."""


def plain(value: Any) -> str:
    """A value as text: true/false for booleans (as YAML and shells write them), "" for nothing."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _quoted(value: Any) -> str:
    return str(value) if isinstance(value, Raw) else shlex.quote(plain(value))


class Sandbox(SandboxedEnvironment):
    """Jinja2's sandbox (no attribute of Python's internals, ranges capped), with `*` and `**` capped too, so an
    expression cannot make a gigabyte of text."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        if op == "**" and isinstance(right, int) and abs(right) > 64:
            raise SecurityError("an exponent above 64 is refused")
        if op == "*":
            n = right if isinstance(left, (str, list)) else left if isinstance(right, (str, list)) else None
            seq = left if n is right else right
            if isinstance(n, int) and n * max(len(seq), 1) > MAX_REPEAT:
                raise SecurityError(f"a repeat longer than {MAX_REPEAT} is refused")
        return super().call_binop(context, op, left, right)


def _env(shell: bool) -> Sandbox:
    env = Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True,
                  finalize=_quoted if shell else plain,
                  # only {{ }}: blocks and comments get delimiters no runbook contains (NUL is refused on load)
                  block_start_string="{%\0", block_end_string="\0%}", comment_start_string="{#\0",
                  comment_end_string="\0#}")
    env.filters["raw"] = Raw
    env.binop_table = {**env.binop_table, "*": operator.mul, "**": operator.pow}
    return env


PLAIN, SHELL = _env(False), _env(True)


def is_go(expr: str) -> bool:
    """Whether a {{ }} is Docker's Go template ({{.Name}}, {{json .}}, {{end}}), not a runbook expression."""
    text = expr.strip()
    word = re.match(r"[A-Za-z_]+", text)
    return not text or text[0] in ".$" or bool(word and word[0] in GO_WORDS and
                                                (len(text) == len(word[0]) or text[len(word[0])] in " .$("))


def spans(text: str) -> Iterator[re.Match[str]]:
    """The runbook expressions ({{ }} that are not Go templates) in a text."""
    return (m for m in SPAN.finditer(text) if not is_go(m[1]))


def _protect(text: str) -> tuple[str, list[str]]:
    """Go templates swapped for markers Jinja leaves alone, to be put back after rendering."""
    kept: list[str] = []

    def hide(m: re.Match[str]) -> str:
        if not is_go(m[1]):
            return m[0]
        kept.append(m[0])
        return f"\0{len(kept) - 1}\0"

    return SPAN.sub(hide, text), kept


def _restore(text: str, kept: list[str]) -> str:
    return re.sub(r"\0(\d+)\0", lambda m: kept[int(m[1])], text)


def names(text: str) -> set[str]:
    """The variables a text's expressions use (parameters, registered results)."""
    found: set[str] = set()
    for m in spans(text):
        found |= meta.find_undeclared_variables(PLAIN.parse("{{ " + m[1] + " }}"))
    return found


def expression_names(expr: str) -> set[str]:
    return meta.find_undeclared_variables(PLAIN.parse("{{ " + expr + " }}"))


def problem(text: str) -> str:
    """Why a text's expressions do not parse, or ""."""
    for m in spans(text):
        try:
            PLAIN.from_string("{{ " + m[1] + " }}")  # compiles: an unknown filter is found here
        except TemplateError as exc:
            return f"{{{{ {m[1]} }}}}: {exc.message or exc}"
    return ""


def whole(text: str) -> str | None:
    """The expression when a text is exactly one {{ expression }}, else None."""
    m = SPAN.fullmatch(text.strip())
    return m[1] if m and not is_go(m[1]) else None


def render(value: Any, variables: dict[str, Any], shell: bool = False) -> Any:
    """Fill in every {{ expression }} of a value (nested dicts and lists too). A string that is one expression
    takes the value's own type (a number stays a number) unless it goes to a shell; in shell text every value is
    quoted as one word. Raises TemplateError (undefined name, refused by the sandbox) with Jinja's message."""
    if isinstance(value, str):
        expr = whole(value)
        if expr is not None and not shell:
            got = PLAIN.compile_expression(expr, undefined_to_none=False)(**variables)
            if isinstance(got, StrictUndefined):
                str(got)  # raises UndefinedError, naming what is missing
            return str(got) if isinstance(got, Raw) else got
        if not any(True for _ in spans(value)):
            return value
        text, kept = _protect(value)
        return _restore((SHELL if shell else PLAIN).from_string(text).render(**variables), kept)
    if isinstance(value, dict):  # keys too: `set: {services.{{ service }}.replicas: ...}`
        return {(render(k, variables) if isinstance(k, str) else k): render(v, variables, shell)
                for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, variables, shell) for v in value]
    return value


def test(expr: str, variables: dict[str, Any]) -> bool:
    """A `when:` expression's truth."""
    inner = whole(expr)
    got = PLAIN.compile_expression(inner if inner is not None else expr, undefined_to_none=False)(**variables)
    if isinstance(got, StrictUndefined):
        str(got)
    return bool(got)


def is_raw(expr: str) -> bool:
    return bool(RAW.search(expr))


__all__ = ["Raw", "SecurityError", "TemplateError", "expression_names", "is_go", "is_raw", "names", "plain",
           "problem", "render", "spans", "test", "whole"]
