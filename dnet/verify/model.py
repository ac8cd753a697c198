"""Checks and their outcomes."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Literal

SCOPES = {1: "inside a container", 2: "same host", 3: "across hosts", 4: "out to the internet", 5: "declared checks"}


class Scope(IntEnum):
    """The ways containers talk, as verify groups its checks (`--scope N`, the JSON's `scope` text)."""

    CONTAINER = 1
    SAME_HOST = 2
    ACROSS_HOSTS = 3
    OUT = 4
    DECLARED = 5

    @property
    def label(self) -> str:
        return SCOPES[self.value]


@dataclass(frozen=True)
class Where:
    """Where a check runs from.

    - ctr: inside a running container (host, container ID); host: in a host's own network namespace;
    - operator: from this machine; local: decided from the facts already read;
    - missing: its source instance (named in `container`) is not running on `host`, so nothing can run."""

    kind: Literal["ctr", "host", "operator", "local", "missing"]
    host: str = ""
    container: str = ""

    @property
    def remote(self) -> bool:
        """Runs on a host over SSH (in a probe container)."""
        return self.kind in ("ctr", "host")


@dataclass
class Instance:
    """A running (or expected) workload instance: a container or a service task."""

    name: str  # display name: "edge", "web.1"
    workload: str  # container or service name
    kind: str  # container | task
    host: str
    cid: str = ""
    ips: dict[str, str] = field(default_factory=dict)  # network -> IPv4
    ports: list[int] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return bool(self.cid)


@dataclass
class Check:
    """One path to probe: where from, what action, and what is expected."""

    id: str
    scope: Scope
    src: str  # instance name, host name, or "operator"
    dst: str
    what: str  # short description shown in tables
    action: list[str]  # probe verb and arguments, e.g. ["tcp", "10.0.0.2", "80"]
    expect: bool = True
    where: Where = Where("operator")
    tags: dict[str, str] = field(default_factory=dict)
    result: str = "pending"  # ok | unresolved | refused | timeout | wrong | mtu | tls | error
    detail: str = ""

    @property
    def ok(self) -> bool:
        return (self.result == "ok") == self.expect and self.result != "error"

    def public(self) -> dict[str, Any]:
        return {"scope": self.scope.label, "from": self.src, "to": self.dst, "ok": self.ok,
                "detail": self.detail, "check": self.what, "expect": "reachable" if self.expect else "unreachable",
                "result": self.result, "on": self.where.host or "operator", **self.tags}
