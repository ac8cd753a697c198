"""Inventory models for what a workload runs with: env, mounts, health, resources, placement, update policy, files.

Names and meanings follow Docker's (compose and `docker service create`), so an inventory reads like what people
already write.
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from dnet.inventory.base import Command, Labels, Model, Name

ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# ${NAME} reads the operator's environment at plan/apply time; $$ is a literal $
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
DURATION = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?(?:ns|us|ms|s|m|h))+")
MEMORY = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([bkmg]?)b?", re.I)
UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
CONSTRAINT = re.compile(r"\s*(node\.(?:id|hostname|role|platform\.os|platform\.arch|labels\.[A-Za-z0-9_.-]+)|"
                        r"engine\.labels\.[A-Za-z0-9_.-]+)\s*(==|!=)\s*([^\s,]+)\s*")
# what each update/rollback key is when the inventory does not set it (Docker's own defaults)
POLICY_DEFAULTS = {"parallelism": 1, "delay": "0s", "order": "stop-first", "failure_action": "pause"}
PREFERENCE = re.compile(r"node\.labels\.[A-Za-z0-9_.-]+|engine\.labels\.[A-Za-z0-9_.-]+")


def _scalar(value: Any) -> Any:
    """Env values: YAML numbers and booleans as the text a shell would see."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return str(value)
    return value


def _env(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    for k, v in value.items():
        if not isinstance(k, str) or not ENV_KEY.fullmatch(k):
            raise ValueError(f"env name {k!r} must be letters, digits and _ and not start with a digit")
        if isinstance(v, str) and ("\n" in v or "\0" in v):
            raise ValueError(f"env {k}: a value cannot hold a newline or NUL byte")
        if isinstance(v, str):
            rest = ENV_REF.sub("", v.replace("$$", ""))
            if "${" in rest:
                raise ValueError(f"env {k}: '{v}' has a ${{...}} that is not ${{NAME}}; write $$ for a literal $")
    return {k: _scalar(v) for k, v in value.items()}


def _duration(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = f"{value}s"
    if isinstance(value, str) and not DURATION.fullmatch(value.strip()):
        raise ValueError(f"'{value}' is not a duration; write for example 10s, 1m30s or 500ms")
    return value.strip() if isinstance(value, str) else value


def memory_bytes(text: str) -> int:
    m = MEMORY.fullmatch(text.strip())
    assert m, text
    return int(float(m[1]) * UNITS[m[2].lower()])


def _memory(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str):
        if not MEMORY.fullmatch(value.strip()):
            raise ValueError(f"'{value}' is not an amount of memory; write for example 64M or 1G")
        if memory_bytes(value) < 6 << 20:
            raise ValueError(f"'{value}' is below the 6M Docker allows a container")
    return value


def _cpus(value: Any) -> Any:
    if isinstance(value, bool) or (isinstance(value, (int, float)) and value <= 0):
        raise ValueError(f"cpus must be a positive number such as 0.5 or 2, got {value!r}")
    return value


def _constraint(value: Any) -> Any:
    if isinstance(value, str) and not CONSTRAINT.fullmatch(value):
        raise ValueError(f"'{value}' is not a placement constraint; write for example \"node.labels.zone == a\" or "
                         "\"node.role != manager\"")
    return value


def _abs(value: Any) -> Any:
    if isinstance(value, str) and not re.fullmatch(r"/[^\x00\n,]*", value):
        raise ValueError(f"'{value}' is not an absolute path without commas or newlines; write for example /data")
    return value


def _user(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and not re.fullmatch(r"[A-Za-z0-9_.-]+(?::[A-Za-z0-9_.-]+)?", value):
        raise ValueError(f"'{value}' is not a user; write a name or UID, with :GROUP if needed, e.g. 1000:1000")
    return value


Env = Annotated[dict[str, str], BeforeValidator(_env)]
Duration = Annotated[str, BeforeValidator(_duration)]
Memory = Annotated[str, BeforeValidator(_memory)]
Cpus = Annotated[float, BeforeValidator(_cpus)]
Constraint = Annotated[str, BeforeValidator(_constraint)]
AbsPath = Annotated[str, BeforeValidator(_abs)]


class Mount(Model):
    type: Literal["volume", "bind", "tmpfs"]
    source: str | None = None
    target: AbsPath
    readonly: bool = False

    @model_validator(mode="after")
    def _source(self) -> Mount:
        if self.type == "tmpfs" and self.source:
            raise ValueError("a tmpfs mount has no source")
        if self.type == "bind" and not (self.source and self.source.startswith("/")):
            raise ValueError(f"a bind mount's source must be an absolute path on the host, got {self.source!r}")
        if self.type == "bind" and ("," in self.source or "\n" in self.source or "\0" in self.source):  # type: ignore[operator]
            raise ValueError(f"bind source {self.source!r} may not hold a comma or a newline")
        if self.type == "volume" and not (self.source and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.source)):
            raise ValueError(f"a volume mount needs a volume name as source (letters, digits, _ . -), got "
                             f"{self.source!r}")
        return self


class Healthcheck(Model):
    test: Command
    interval: Duration | None = None
    timeout: Duration | None = None
    retries: Annotated[int, Field(strict=True, ge=1, le=1000)] | None = None
    start_period: Duration | None = None


class Resources(Model):
    cpus: Cpus | None = None
    memory: Memory | None = None


class ResourceSpec(Model):
    limits: Resources = Resources.model_construct()  # not Resources(): that builds the validator at import
    reservations: Resources = Resources.model_construct()


class Spread(Model):
    spread: Annotated[str, Field(pattern=PREFERENCE.pattern)]


class Placement(Model):
    constraints: list[Constraint] = []
    preferences: list[Spread] = []


class UpdatePolicy(Model):
    parallelism: Annotated[int, Field(strict=True, ge=0, le=10000)] | None = None
    delay: Duration | None = None
    order: Literal["start-first", "stop-first"] | None = None
    failure_action: Literal["pause", "continue", "rollback"] | None = None


class RollbackPolicy(UpdatePolicy):
    failure_action: Literal["pause", "continue"] | None = None


class FileRef(Model):
    file: str = Field(min_length=1)
    target: str | None = None

    @field_validator("file")
    @classmethod
    def _file(cls, value: str) -> str:
        if "\0" in value or "\n" in value:
            raise ValueError("a file name may not hold a newline or NUL byte")
        return value


ImageSource = Literal["auto", "pull", "stream"]


class RunOptions(Model):
    """What containers and services share beyond image, command and networks."""

    env: Env = {}
    env_file: str | None = None
    mounts: list[Mount] = []
    entrypoint: Command | None = None
    user: Annotated[str, BeforeValidator(_user)] | None = None
    workdir: AbsPath | None = None
    labels: Labels = {}
    healthcheck: Healthcheck | None = None
    resources: ResourceSpec | None = None
    image_source: ImageSource | None = None

    @field_validator("labels")
    @classmethod
    def _not_ours(cls, labels: dict[str, str]) -> dict[str, str]:
        for k in labels:
            if k == "dnet" or k.startswith("dnet."):
                raise ValueError(f"label '{k}': keys under dnet. are dnet's own; choose another name")
        return labels

    @field_validator("mounts")
    @classmethod
    def _one_per_target(cls, mounts: list[Mount]) -> list[Mount]:
        seen: set[str] = set()
        for m in mounts:
            if m.target in seen:
                raise ValueError(f"two mounts at {m.target}; each target takes one")
            seen.add(m.target)
        return mounts


__all__ = ["ENV_REF", "FileRef", "Healthcheck", "Mount", "Name", "Placement", "ResourceSpec", "RollbackPolicy",
           "RunOptions", "UpdatePolicy", "memory_bytes"]
