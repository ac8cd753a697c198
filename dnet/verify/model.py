"""Checks and their outcomes."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCOPES = {1: "inside a container", 2: "same host", 3: "across hosts", 4: "out to the internet", 5: "declared checks"}


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
    scope: int
    src: str  # instance name, host name, or "operator"
    dst: str
    what: str  # short description shown in tables
    action: list[str]  # probe verb and arguments, e.g. ["tcp", "10.0.0.2", "80"]
    expect: bool = True
    where: tuple[str, ...] = ()  # ("ctr", host, cid) | ("host", host) | ("operator",)
    tags: dict[str, str] = field(default_factory=dict)
    result: str = "pending"  # ok | unresolved | refused | timeout | wrong | mtu | error
    detail: str = ""

    @property
    def ok(self) -> bool:
        return (self.result == "ok") == self.expect and self.result != "error"

    def public(self) -> dict[str, Any]:
        return {"scope": SCOPES[self.scope], "from": self.src, "to": self.dst, "ok": self.ok,
                "detail": self.detail, "check": self.what, "expect": "reachable" if self.expect else "unreachable",
                "result": self.result, "on": self.where[1] if len(self.where) > 1 else "operator", **self.tags}
