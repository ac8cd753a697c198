"""Conditions for wait-until and fail-if, read from the hosts (read-only, so they also run in a dry run).

A condition is one registered function: `@condition(NAME)` on `fn(rc, host, command) -> (holds, what was seen)`,
called once per target; `swarm_wide=True` ones are called once with host "" and need no targets. `own_host=True`
ones read the target itself (an unreachable target fails them); the others ask a manager about it."""
from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import Field, field_validator

from dnet.converge import task_counts
from dnet.runbook.context import RunContext, RunError
from dnet.runbook.model import Strict
from dnet.runbook.swarmops import node_id
from dnet.transport.base import quote

Check = Callable[[RunContext, str, "str | None"], tuple[bool, str]]


@dataclass(frozen=True)
class ConditionDef:
    name: str
    check: Check
    doc: str
    own_host: bool = False  # reads the target itself, not a manager
    swarm_wide: bool = False  # about the swarm: no hosts needed


CONDITIONS: dict[str, ConditionDef] = {}


def condition(name: str, *, own_host: bool = False, swarm_wide: bool = False) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        CONDITIONS[name] = ConditionDef(name, fn, (fn.__doc__ or "").strip().split("\n")[0], own_host, swarm_wide)
        return fn
    return register


class ConditionArgs(Strict):
    """Arguments of wait-until and fail-if."""

    condition: str = Field(description="a condition name (see the runbook reference)")
    command: str | None = Field(None, description="for condition shell: holds when it exits 0 on every target")
    timeout: float = Field(120, gt=0)
    message: str = ""

    @field_validator("condition")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in CONDITIONS:
            near = difflib.get_close_matches(str(v), list(CONDITIONS), n=1, cutoff=0.6)
            raise ValueError(f"unknown condition '{v}'" + (f"; did you mean '{near[0]}'?" if near else "")
                             + f"; conditions: {', '.join(CONDITIONS)}")
        return v


def holds(rc: RunContext, name: str, targets: list[str], command: str | None) -> tuple[bool, str]:
    """Whether the condition holds now (on every target), and what was seen (for messages)."""
    c = CONDITIONS.get(name)
    if c is None:
        raise RunError(f"unknown condition {name}")
    if c.swarm_wide:
        return c.check(rc, "", command)
    seen: list[str] = []
    ok = True
    for h in targets:
        good, what = c.check(rc, h, command)
        ok = ok and good
        seen.append(f"{h}: {what}")
    return ok, "; ".join(seen)


TASKS = "docker ps -q --filter label=com.docker.swarm.task.id | wc -l"


@condition("no-tasks", own_host=True)
def _no_tasks(rc: RunContext, h: str, command: str | None) -> tuple[bool, str]:
    """No swarm task container runs on the host (after a drain)."""
    n = int(rc.read(h, TASKS).stdout.strip() or 0)
    return n == 0, f"{n} swarm tasks running"


def _swarm_state(rc: RunContext, h: str) -> str:
    return rc.read(h, "docker info --format '{{.Swarm.LocalNodeState}}'", check=False).stdout.strip()


@condition("in-swarm", own_host=True)
def _in_swarm(rc: RunContext, h: str, command: str | None) -> tuple[bool, str]:
    """The host's engine is an active swarm member."""
    state = _swarm_state(rc, h)
    return state == "active", f"swarm state {state or 'unknown'}"


@condition("not-in-swarm", own_host=True)
def _not_in_swarm(rc: RunContext, h: str, command: str | None) -> tuple[bool, str]:
    """The host's engine is in no swarm."""
    state = _swarm_state(rc, h)
    return state != "active", f"swarm state {state or 'unknown'}"


@condition("shell", own_host=True)
def _shell(rc: RunContext, h: str, command: str | None) -> tuple[bool, str]:
    """`command` exits 0 on the host (never run in a dry run)."""
    r = rc.script(h, command or "false")
    return r.ok, f"exit {r.code}"


def _node_state(rc: RunContext, h: str) -> str | None:
    """The node's state as a manager sees it (ready, down, ...), or None when the host is no swarm node."""
    mgr = rc.manager(avoid=[h])
    nid = node_id(rc, h, mgr)
    if not nid:
        return None
    inspect = rc.read(mgr, f"docker node inspect {quote(nid)} --format '{{{{.Status.State}}}}'", check=False)
    return inspect.stdout.strip() or "unknown"


@condition("node-ready")
def _node_ready(rc: RunContext, h: str, command: str | None) -> tuple[bool, str]:
    """A manager sees the host's node as ready."""
    got = _node_state(rc, h)
    return got == "ready", f"node {got}" if got else "not a swarm node"


@condition("node-down")
def _node_down(rc: RunContext, h: str, command: str | None) -> tuple[bool, str]:
    """A manager sees the host's node as down (or it is no node at all)."""
    got = _node_state(rc, h)
    return got in ("down", None), f"node {got}" if got else "not a swarm node"


@condition("node-absent")
def _node_absent(rc: RunContext, h: str, command: str | None) -> tuple[bool, str]:
    """The host is not in the swarm's node list (after node-remove)."""
    mgr = rc.manager(avoid=[h])
    nid = node_id(rc, h, mgr)
    listed = rc.read(mgr, "docker node ls -q").stdout.split()
    present = nid is not None and any(nid.startswith(x) or x.startswith(nid) for x in listed)
    return not present, "in the node list" if present else "not in the node list"


@condition("last-manager")
def _last_manager(rc: RunContext, h: str, command: str | None) -> tuple[bool, str]:
    """The host is the swarm's only manager (fail-if before demoting or removing it)."""
    mgr = rc.manager(avoid=[h])
    nid = node_id(rc, h, mgr)
    if not nid:
        return False, "not a swarm node"
    managers = rc.read(mgr, "docker node ls -q --filter role=manager").stdout.split()
    mine = any(nid.startswith(x) for x in managers)
    return mine and len(managers) == 1, f"{len(managers)} managers, {'one of them' if mine else 'not one'}"


@condition("services-converged", swarm_wide=True)
def _services(rc: RunContext, h: str, command: str | None) -> tuple[bool, str]:
    """Every service runs its replicas, and no task that is being replaced still runs."""
    mgr = rc.manager()
    lines = rc.read(mgr, "docker service ls --format '{{.Name}} {{.Replicas}}'").stdout.splitlines()
    desired = {name: reps.split(" ")[0].partition("/")[2] for name, _, reps in (x.partition(" ") for x in lines)}
    counts = task_counts(rc.transport(mgr), sorted(desired))
    short = [f"{n} {counts.get(n, (0, 0))[0]}/{want}" for n, want in desired.items()
             if not want.isdigit() or counts.get(n, (0, 0)) != (int(want), int(want))]
    return not short, ", ".join(short) if short else f"{len(lines)} services run every replica"


@condition("quorum", swarm_wide=True)
def _quorum(rc: RunContext, h: str, command: str | None) -> tuple[bool, str]:
    """Most of the swarm's managers are reachable, so raft can commit changes (`not quorum`: a lost quorum, where
    the managers still answer reads but change nothing)."""
    mgr = rc.manager()
    got = rc.read(mgr, "docker node ls --filter role=manager --format '{{.Hostname}} {{.ManagerStatus}}'",
                  check=False)
    if not got.ok:
        return False, f"{mgr} cannot list the managers: {got.stderr.strip()[-200:]}"
    rows = [line.split() for line in got.stdout.splitlines() if line.strip()]
    up = [r[0] for r in rows if r[1:] and r[1] in ("Leader", "Reachable")]
    return len(up) * 2 > len(rows), f"{len(up)} of {len(rows)} managers reachable ({', '.join(up) or 'none'})"
