"""Conditions for wait-until and fail-if, read from the hosts (read-only, so they also run in a dry run)."""
from __future__ import annotations

from dnet.converge import task_counts
from dnet.runbook.context import RunContext, RunError
from dnet.runbook.swarmops import node_id
from dnet.transport.base import quote

TASKS = "docker ps -q --filter label=com.docker.swarm.task.id | wc -l"


def holds(rc: RunContext, condition: str, targets: list[str], command: str | None) -> tuple[bool, str]:
    """Whether the condition holds now, and what was seen (for messages)."""
    if condition == "services-converged":
        return _services(rc)
    seen: list[str] = []
    ok = True
    for h in targets:
        good, what = _one(rc, condition, h, command)
        ok = ok and good
        seen.append(f"{h}: {what}")
    return ok, "; ".join(seen)


def _one(rc: RunContext, condition: str, h: str, command: str | None) -> tuple[bool, str]:
    if condition == "no-tasks":
        n = int(rc.read(h, TASKS).stdout.strip() or 0)
        return n == 0, f"{n} swarm tasks running"
    if condition in ("in-swarm", "not-in-swarm"):
        state = rc.read(h, "docker info --format '{{.Swarm.LocalNodeState}}'", check=False).stdout.strip()
        return (state == "active") == (condition == "in-swarm"), f"swarm state {state or 'unknown'}"
    if condition == "shell":
        r = rc.script(h, command or "false")
        return r.ok, f"exit {r.code}"
    mgr = rc.manager(avoid=[h])
    nid = node_id(rc, h, mgr)
    if condition == "node-absent":
        listed = rc.read(mgr, "docker node ls -q").stdout.split()
        present = nid is not None and any(nid.startswith(x) or x.startswith(nid) for x in listed)
        return not present, "in the node list" if present else "not in the node list"
    if not nid:
        return condition == "node-down", "not a swarm node"
    if condition == "last-manager":
        managers = rc.read(mgr, "docker node ls -q --filter role=manager").stdout.split()
        mine = any(nid.startswith(x) for x in managers)
        return mine and len(managers) == 1, f"{len(managers)} managers, {'one of them' if mine else 'not one'}"
    inspect = rc.read(mgr, f"docker node inspect {quote(nid)} --format '{{{{.Status.State}}}}'", check=False)
    got = inspect.stdout.strip() or "unknown"
    if condition == "node-ready":
        return got == "ready", f"node {got}"
    if condition == "node-down":
        return got == "down", f"node {got}"
    raise RunError(f"unknown condition {condition}")


def _services(rc: RunContext) -> tuple[bool, str]:
    """Every service runs its replicas, and no task that is being replaced still runs."""
    mgr = rc.manager()
    lines = rc.read(mgr, "docker service ls --format '{{.Name}} {{.Replicas}}'").stdout.splitlines()
    desired = {name: reps.split(" ")[0].partition("/")[2] for name, _, reps in (x.partition(" ") for x in lines)}
    counts = task_counts(rc.transport(mgr), sorted(desired))
    short = [f"{n} {counts.get(n, (0, 0))[0]}/{want}" for n, want in desired.items()
             if not want.isdigit() or counts.get(n, (0, 0)) != (int(want), int(want))]
    return not short, ", ".join(short) if short else f"{len(lines)} services run every replica"
