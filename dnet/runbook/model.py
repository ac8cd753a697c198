"""What a runbook is: typed parameters and ordered steps, each one built-in action, a shell command or a Python
function. Validated as strictly as inventories (FILE:LINE:COL)."""
from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# {{ name }} or {{ name | filter }}; the only filter is `raw` (no shell quoting)
REF = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\|\s*([A-Za-z_][A-Za-z0-9_]*)\s*)?\}\}")
FILTERS = ("raw",)
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Param(Strict):
    """A runbook parameter: `-p NAME=VALUE` on the command line, or its default."""

    type: Literal["str", "int", "bool", "host", "hosts"] = Field(
        "str", description="host: one inventory host; hosts: hosts, groups or roles, comma-separated")
    default: str | int | bool | None = None
    description: str = ""
    secret: bool = Field(False, description="never shown in output, resume commands or the audit log")


class Step(Strict):
    """One step: exactly one of action, shell, python."""

    name: str = Field(min_length=1)
    hosts: str | None = Field(None, description="hosts, groups, roles or 'all', comma-separated; {{ param }} works")
    serial: int | str | None = Field(None, description="targets per batch (default: all at once); a number or "
                                                      "{{ param }}")
    action: str | None = None
    shell: str | None = None
    python: str | None = Field(None, description="FILE.py:FUNCTION, the file relative to the runbook")
    args: dict[str, Any] = Field(default_factory=dict, alias="with")
    timeout: float = Field(600, gt=0, description="seconds a shell command may take")

    @field_validator("serial")
    @classmethod
    def _serial(cls, v: int | str | None) -> int | str | None:
        if isinstance(v, str) and not REF.fullmatch(v.strip()):
            raise ValueError("serial is a number or {{ param }}")
        if isinstance(v, int) and not 1 <= v <= 1000:
            raise ValueError("serial is between 1 and 1000")
        return v

    @property
    def kind(self) -> str:
        return "action" if self.action else "shell" if self.shell is not None else "python"


class Runbook(Strict):
    """A runbook file."""

    name: str = Field(pattern=NAME)
    description: str = ""
    params: dict[str, Param] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1)


# Arguments of the built-in actions (`with:`), named by their registration in dnet.runbook.actions.
class ApplyArgs(Strict):
    prune_nodes: bool = False
    serial: int = Field(1, ge=1)


class VerifyArgs(Strict):
    scope: int | None = Field(None, ge=1, le=5, description="1 container, 2 same host, 3 across hosts, 4 out, "
                                                             "5 declared checks; default all")


class RestartArgs(Strict):
    verify: bool = Field(False, description="verify the whole inventory after each batch; stop when it fails")


class RotateArgs(Strict):
    role: Literal["worker", "manager", "both"] = "both"


def _matches(value: Any) -> list[re.Match[str]]:
    """Every {{ reference }} in a value, nested dicts and lists included."""
    if isinstance(value, str):
        return list(REF.finditer(value))
    if isinstance(value, dict):
        return [m for v in value.values() for m in _matches(v)]
    if isinstance(value, list):
        return [m for v in value for m in _matches(v)]
    return []


def refs(value: Any) -> list[str]:
    """Parameter names a value refers to as {{ name }}."""
    return [m[1] for m in _matches(value)]


def filters(value: Any) -> list[str]:
    """Filters a value's references use (`{{ x | raw }}` -> raw)."""
    return [m[2] for m in _matches(value) if m[2]]


def substitute(value: Any, params: dict[str, Any], shell: bool = False) -> Any:
    """Fill in {{ name }}; a string that is only one reference takes the parameter's own type.

    With shell (the text reaches a shell: `shell:` steps, a condition's `command`), every value is shell-quoted,
    so it is one word whatever it holds; `{{ name | raw }}` inserts the text as it is (the author's explicit choice).
    """
    if isinstance(value, str):
        whole = REF.fullmatch(value.strip())
        if whole and not shell:
            return params[whole[1]]

        def fill(m: re.Match[str]) -> str:
            text = str(params[m[1]]).lower() if isinstance(params[m[1]], bool) else str(params[m[1]])
            return text if m[2] == "raw" or not shell else shlex.quote(text)

        return REF.sub(fill, value)
    if isinstance(value, dict):
        return {k: substitute(v, params, shell) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, params, shell) for v in value]
    return value


def python_file(runbook: str, ref: str) -> Path | None:
    """The file of a python step, resolved; None unless it lies inside the runbook's own folder."""
    folder = Path(runbook).resolve().parent
    file = ref.rpartition(":")[0]
    path = (folder / file).resolve()
    return path if path.is_relative_to(folder) and not Path(file).is_absolute() else None
