"""What a runbook is: typed parameters and ordered steps, each one built-in action, a shell command or a Python
function. Validated as strictly as inventories (FILE:LINE:COL)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dnet.runbook import template

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
IDENT = r"^[A-Za-z_][A-Za-z0-9_]*$"


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
    """One step: exactly one of action, shell, python, pause; with when, register, retries, rescue and always."""

    name: str = Field(min_length=1)
    hosts: str | None = Field(None, description="an Ansible-style host pattern: hosts, groups, roles, all, leader "
                                                "(the raft leader), one-manager, joined by , or : with !exclusions "
                                                "and &intersections; {{ param }} works")
    serial: int | str | None = Field(None, description="targets per batch (default: all at once); a number or "
                                                      "{{ param }}")
    action: str | None = None
    shell: str | None = None
    python: str | None = Field(None, description="FILE.py:FUNCTION, the file relative to the runbook")
    pause: str | None = Field(None, description="a message; waits for Enter (with --yes or without a terminal: "
                                                "refused unless --yes, then it goes on)")
    args: dict[str, Any] = Field(default_factory=dict, alias="with")
    timeout: float = Field(600, gt=0, description="seconds a shell command may take")
    when: str | bool | None = Field(None, description="run only when this holds: a Jinja2 expression on parameters "
                                                      "and registered results, or a condition name (not NAME)")
    register_as: str | None = Field(None, alias="register", pattern=IDENT,
                                    description="keep each host's rc, stdout and stderr as NAME.HOST.rc ... (shell and "
                                                "python steps)")
    run_once: bool = Field(False, description="run on the first target only")
    ignore_errors: bool = Field(False, description="a failure is recorded and the run goes on")
    retries: int = Field(0, ge=0, le=100, description="run the step again this many times while it fails")
    delay: float = Field(5, ge=0, le=3600, description="seconds between retries")
    rescue: list[Step] = Field(default_factory=list, description="steps run when this one fails; the run still "
                                                                 "fails")
    always: list[Step] = Field(default_factory=list, description="steps run after this one, failed or not")

    @field_validator("serial")
    @classmethod
    def _serial(cls, v: int | str | None) -> int | str | None:
        if isinstance(v, str) and template.whole(v) is None:
            raise ValueError("serial is a number or {{ param }}")
        if isinstance(v, int) and not 1 <= v <= 1000:
            raise ValueError("serial is between 1 and 1000")
        return v

    @property
    def kind(self) -> str:
        return ("action" if self.action else "shell" if self.shell is not None else "pause" if self.pause is not None
                else "python")


class Runbook(Strict):
    """A runbook file."""

    name: str = Field(pattern=NAME)
    description: str = ""
    params: dict[str, Param] = Field(default_factory=dict)
    connect: str | None = Field(None, description="the hosts the run connects to (a host pattern, default all): "
                                                  "all:!{{ dead }} leaves a dead host alone")
    steps: list[Step] = Field(min_length=1)
    rescue: list[Step] = Field(default_factory=list, description="steps run when the run fails")
    always: list[Step] = Field(default_factory=list, description="steps run at the end, failed or not")


# Arguments of the built-in actions (`with:`), named by their registration in dnet.runbook.actions.
class ApplyArgs(Strict):
    prune_nodes: bool = False
    serial: int = Field(1, ge=1)
    target: list[str] | str = Field(default_factory=list, description="KIND.NAME (or a list): only these resources "
                                                                       "and what they need, as apply --target")
    set: dict[str, Any] = Field(default_factory=dict, description="inventory values overridden for this step, e.g. "
                                                                   "services.web.replicas: '{{ replicas }}'")
    plan: str | None = Field(None, description="a plan saved by dnet plan -o (relative to the runbook): carried out "
                                               "exactly, refused if the hosts changed since")


class VerifyArgs(Strict):
    scope: int | None = Field(None, ge=1, le=5, description="1 container, 2 same host, 3 across hosts, 4 out, "
                                                             "5 declared checks; default all")
    baseline: str | None = Field(None, description="'start' (a verify the run takes when it starts) or a verify "
                                                   "--json file: fail only on checks that newly fail")
    limit: str | None = Field(None, description="a host pattern, as verify --limit")


class RestartArgs(Strict):
    verify: bool = Field(False, description="verify the whole inventory after each batch; stop when it fails")


class RotateArgs(Strict):
    role: Literal["worker", "manager", "both"] = "both"


def _texts(value: Any) -> list[str]:
    """Every string in a value, nested dicts and lists included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in (*_texts(k), *_texts(v))]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    return []


def refs(value: Any) -> list[str]:
    """Names a value's {{ expressions }} use (parameters, registered results), sorted."""
    return sorted({n for t in _texts(value) for n in template.names(t)})


def substitute(value: Any, params: dict[str, Any], shell: bool = False) -> Any:
    """Fill in {{ expressions }} (see dnet.runbook.template.render): in shell text every value is quoted, so it is
    one word whatever it holds; `{{ name | raw }}` inserts the text as it is (the author's explicit choice)."""
    return template.render(value, params, shell)


def python_file(runbook: str, ref: str) -> Path | None:
    """The file of a python step, resolved; None unless it lies inside the runbook's own folder."""
    folder = Path(runbook).resolve().parent
    file = ref.rpartition(":")[0]
    path = (folder / file).resolve()
    return path if path.is_relative_to(folder) and not Path(file).is_absolute() else None
