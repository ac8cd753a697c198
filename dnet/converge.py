"""Plan -> apply, host by host in parallel, with per-host results."""
from __future__ import annotations

import contextlib
import copy
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from dnet import gossip, rolling
from dnet.errors import DnetError, Interrupted
from dnet.facts import concatenated, engine_get, tasks_path
from dnet.inventory.placement import expected_tasks
from dnet.inventory.semantic import swarm_hosts
from dnet.plan.destroy import destroy
from dnet.plan.diff import diff
from dnet.plan.model import (
    Change,
    DaemonUpdate,
    EnginePackage,
    NetworkCreate,
    Phase,
    Plan,
    SwarmInit,
    SwarmJoin,
)
from dnet.plan.target import Target, narrow
from dnet.plan.world import World
from dnet.poll import PollTimeout, poll
from dnet.runner import parallel
from dnet.session import Log, Session, open_session
from dnet.tasks import Context, handler
from dnet.transport import Transport
from dnet.transport.base import mask, quote
from dnet.transport.record import Recorder

__all__ = ["Log", "Outcome", "Session", "apply", "commands", "destroy_plan", "make_plan", "open_session",
           "settle", "wait_overlays", "wait_services",
           "wait_tasks_gone"]


def world(s: Session, prune_nodes: bool = False) -> World:
    src = Path(s.loaded.path)
    return World(s.loaded.model, s.specs, s.facts, s.local_images, prune_nodes,
                 src.parent if src.is_file() else Path(), local_arches=s.local_arches)


def make_plan(s: Session, prune_nodes: bool = False, targets: list[Target] | None = None) -> Plan:
    """Diff the inventory against the reachable hosts (with prune_nodes, remove swarm nodes it does not list); with
    targets, only their changes and what those need (see dnet.plan.target)."""
    w = world(s, prune_nodes)
    leader = w.leader()
    swarm_limited = s.limit is None or any(s.loaded.model.hosts[h].roles for h in s.limit)
    if leader and leader not in s.facts and swarm_limited:
        return Plan(errors=[f"{leader}: the swarm's first manager is unreachable; swarm, overlay and service "
                            "changes need it"])
    return narrow(limited(s, diff(w)), targets or [], s.loaded.model)


def limited(s: Session, plan: Plan) -> Plan:
    """With --limit: only the changes about the limited hosts (a manager's change to another node is about that
    node: see Change.acts_on)."""
    if s.limit is None:
        return plan
    keep = [c for c in plan.changes if c.acts_on in s.limit]
    return Plan(keep, plan.errors, plan.warnings)


def destroy_plan(s: Session, leave_swarm: bool, volumes: bool = False) -> Plan:
    """Every dnet-managed thing on the reachable hosts, as removals (and swarm leaves and volumes when asked)."""
    return limited(s, destroy(world(s), leave_swarm, volumes))


Status = Literal["ok", "failed", "skipped"]


@dataclass
class Outcome:
    """What happened to one change."""

    change: Change
    status: Status
    message: str = ""

    def public(self) -> dict[str, Any]:
        return {**self.change.public(), "status": self.status, "message": self.message}


def commands(s: Session, plan: Plan) -> list[tuple[Change, list[tuple[str, str]]]]:
    """The exact commands apply would run for each change, as (host, command), without running any.

    Values only a host can tell (join tokens, node and network IDs) show as <placeholders>; secrets as ***.
    """
    log: list[tuple[str, str]] = []
    recorders: dict[str, Transport] = {h: Recorder(h, log) for h in s.specs}
    ctx = Context(s.loaded.model, s.specs, copy.deepcopy(s.facts), recorders, s.leader(), dry_run=True)
    out = []
    for c in plan.ordered():
        start = len(log)
        try:
            handler(c)(ctx, c)
        except DnetError as exc:
            log.append((c.host, f"# stops here: {exc}"))
        out.append((c, log[start:]))
    return out


def rolling_batches(s: Session, changes: list[Change], serial: int) -> list[list[Change]]:
    """Engine restarts of swarm members in batches (see dnet.rolling.batches), hosts in name order."""
    by_host = {c.host: c for c in changes}
    return [[by_host[h] for h in b] for b in rolling.batches(s.facts, sorted(by_host), serial)]


@dataclass
class Progress:
    """The run under way, for the summary an interrupt prints: what was done, what was in flight, what never
    started."""

    planned: list[Change]
    done: list[Outcome] = field(default_factory=list)
    running: dict[int, Change] = field(default_factory=dict)  # id(change) -> change
    stopping: bool = False  # set on an interrupt: lanes start nothing more

    def summary(self) -> list[str]:
        ok = [o for o in self.done if o.status == "ok"]
        bad = [o for o in self.done if o.status != "ok"]
        touched = {id(o.change) for o in self.done} | set(self.running)
        untouched = [c for c in self.planned if id(c) not in touched]
        lines = [f"{len(ok)} of {len(self.planned)} changes done, {len(bad)} failed or skipped, "
                 f"{len(self.running)} abandoned in flight, {len(untouched)} not started"]
        lines += [f"  abandoned: {c.host} {c.kind} {c.name} ({c.action})" for c in self.running.values()]
        lines += [f"  not started: {c.host} {c.kind} {c.name} ({c.action})" for c in untouched]
        return lines


def local_lane(s: Session, changes: list[Change]) -> list[Change]:
    """The changes that need nothing of the swarm: host-scoped networks, images, containers on host-scoped
    networks only, forwards. Apply runs them beside the swarm's changes instead of after them.

    A container stays in the swarm lane when it uses an overlay, or a network that the swarm lane changes
    (recreated or removed), so that it never attaches to a network about to go. A host whose engine the swarm
    lane restarts (to free a stale gossip port) keeps all its changes there.
    """
    inv = s.loaded.model
    restarting = {c.host for c in changes if isinstance(c, SwarmInit | SwarmJoin) and c.restart}
    overlay = {n for n, net in inv.networks.items() if net.driver == "overlay"}
    made = {(c.host, c.network) for c in changes if isinstance(c, NetworkCreate) and c.spec.driver != "overlay"}
    busy = {(c.host, c.name) for c in changes if c.kind == "network"} - made

    def local(c: Change) -> bool:
        if c.host in restarting:
            return False
        return c.lane == "local" or (c.lane == "networks" and not any(
            n in overlay or (c.host, n) in busy for n in c.networks()))

    return [c for c in changes if local(c)]


def apply(s: Session, plan: Plan, log: Log, serial: int = 1, progress: Progress | None = None) -> list[Outcome]:
    """Carry out the plan: engines first, then two lanes side by side; hosts in parallel in each; a failed host
    skips its later changes.

    The swarm lane goes phase by phase (swarm, nodes, prune, networks, workloads); the local lane (see local_lane)
    needs nothing of the swarm, so bridges, images and plain containers are made while the swarm forms. The swarm
    lane's workloads wait for the local lane's images. Engine restarts of swarm members go in rolling batches of
    `serial` hosts (see rolling_batches); a failed batch stops the rest of the roll.

    Interrupted (Ctrl-C, SIGTERM), it raises Interrupted with what was done, in flight and not started.
    """
    progress = progress or Progress([])
    progress.planned = plan.ordered()
    try:
        return _apply(s, plan, log, serial, progress)
    except KeyboardInterrupt as exc:
        progress.stopping = True  # the local lane starts nothing more
        if isinstance(exc, Interrupted):
            raise
        raise Interrupted(progress.summary()) from exc


def _apply(s: Session, plan: Plan, log: Log, serial: int, progress: Progress) -> list[Outcome]:
    inv = s.loaded.model
    ctx = Context(inv, s.specs, s.facts, s.transports, s.leader())
    failed: set[str] = set(s.host_errors)
    outcomes: list[Outcome] = []
    changes = progress.planned
    engine = [c for c in changes if c.phase == Phase.ENGINE]
    if engine:
        roll: list[Change] = [c for c in engine if (isinstance(c, DaemonUpdate) or
                                                    (isinstance(c, EnginePackage) and not c.hold_only))
                              and s.facts[c.host].swarm_state == "active"]
        outcomes += _run(ctx, [c for c in engine if c not in roll], failed, log, progress)
        for group in rolling_batches(s, roll, serial):
            if any(o.status != "ok" for o in outcomes if o.change in roll):
                outcomes += [Outcome(c, "skipped", "an earlier engine restart failed; the roll stopped")
                             for c in group]
                failed.update(c.host for c in group)
                continue
            log(f"restarting engines: {', '.join(c.host for c in group)}")
            outcomes += _run(ctx, group, failed, log, progress)
    rest = [c for c in changes if c.phase != Phase.ENGINE]
    local = local_lane(s, rest)
    in_local = {id(c) for c in local}
    swarm = [c for c in rest if id(c) not in in_local]
    images_ready = threading.Event()
    local_out: list[Outcome] = []
    errors: list[BaseException] = []

    def run_local() -> None:
        try:
            for phase in Phase:
                if progress.stopping:
                    return
                local_out.extend(_run(ctx, [c for c in local if c.phase == phase], failed, log, progress))
                if phase == Phase.IMAGE:
                    images_ready.set()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            images_ready.set()

    lane = threading.Thread(target=run_local, name="dnet-local-lane")
    lane.start()
    try:
        for phase in Phase:
            batch = [c for c in swarm if c.phase == phase]
            if not batch:
                continue
            if phase >= Phase.WORKLOAD:
                while not images_ready.wait(0.1):  # a short wait keeps Ctrl-C prompt
                    pass
            if phase == Phase.SWARM:  # init first, then joins in parallel
                init = _run(ctx, [c for c in batch if isinstance(c, SwarmInit)], failed, log, progress)
                outcomes += init
                if any(o.status != "ok" for o in init):
                    failed.update(swarm_hosts(inv))
                batch = [c for c in batch if not isinstance(c, SwarmInit)]
            outcomes += _run(ctx, batch, failed, log, progress)
        while lane.is_alive():
            lane.join(0.1)
    except BaseException:
        progress.stopping = True  # the local lane starts nothing more
        raise
    if errors:
        raise errors[0]
    # phase by phase; within a phase in the order things ran (a rolling restart's order is part of the result)
    return sorted(outcomes + local_out, key=lambda o: o.change.phase)


def _run(ctx: Context, batch: list[Change], failed: set[str], log: Log, progress: Progress) -> list[Outcome]:
    by_host: dict[str, list[Change]] = {}
    for c in batch:
        by_host.setdefault(c.host, []).append(c)

    done: dict[str, list[Outcome]] = {h: [] for h in by_host}

    def work(host: str) -> list[Outcome]:
        out = done[host]  # kept even if something below raises: no result is ever dropped
        for c in by_host[host]:
            if progress.stopping:
                break  # interrupted: left as not started
            if host in failed or c.target in failed:  # a manager acting on a node that failed: skipped too
                out.append(Outcome(c, "skipped", "an earlier change on this host failed" if host in failed else
                                   f"an earlier change on {c.target} failed"))
                progress.done.append(out[-1])
                continue
            progress.running[id(c)] = c
            try:
                msg = handler(c)(ctx, c)
                out.append(Outcome(c, "ok", msg))
                log(f"{host}: {c.kind} {c.name}: {msg}")
            except Exception as exc:
                failed.add(host)
                why = str(exc) if isinstance(exc, DnetError) else f"{type(exc).__name__}: {exc}"
                text = mask(why, ctx.secrets())
                out.append(Outcome(c, "failed", text))
                log(f"{host}: {c.kind} {c.name}: FAILED: {text}")
            progress.running.pop(id(c), None)
            progress.done.append(out[-1])
        return out

    for r in parallel(list(by_host), work):
        if not r.ok:  # an exception outside any one change: every change not yet reported failed with it
            failed.add(r.host)
            seen = {id(o.change) for o in done[r.host]}
            done[r.host] += [Outcome(c, "failed", mask(r.error or "unknown error", ctx.secrets()))
                             for c in by_host[r.host] if id(c) not in seen]
    return [o for h in by_host for o in done[h]]


def task_counts(t: Transport, names: list[str]) -> dict[str, tuple[int, int]]:
    """Per service: (tasks running now, tasks meant to run). A task being shut down still runs, so a service is
    settled only when both equal its replicas (`docker service ls` counts only the second kind).

    One curl answers for every service when the Engine API is reachable (a `docker service ps` costs ~100 ms of
    the manager's CPU, and waits poll this often); the CLI otherwise."""
    if not names:
        return {}
    cli = "; ".join(f"echo {quote(n)} $(docker service ps {quote(n)} --format "
                    "'{{.DesiredState}}:{{.CurrentState}}' 2>/dev/null)" for n in names)
    out = t.run(engine_get([tasks_path(n) for n in names], cli), check=False).stdout
    if out.lstrip().startswith(("[", "{")):  # one answer per service, in order: a task list, or an error object
        try:
            docs, counts = concatenated(out), {}
        except ValueError:  # cut short: nothing known yet
            return {}
        for n, doc in zip(names, docs, strict=False):
            tasks = [x for x in doc if isinstance(x, dict)] if isinstance(doc, list) else []
            counts[n] = (sum(x.get("Status", {}).get("State") == "running" for x in tasks),
                         sum(x.get("DesiredState") == "running" for x in tasks))
        return counts
    result: dict[str, tuple[int, int]] = {}
    for line in out.splitlines():
        name, _, rest = line.partition(" ")
        pairs = re.findall(r"(\w+):(\w+)", rest)
        result[name] = (sum(cur == "Running" for _, cur in pairs), sum(want == "Running" for want, _ in pairs))
    return result


def wait_services(s: Session, timeout: float = 60) -> dict[str, str]:
    """Wait until every dnet service runs all its replicas and nothing more; return name -> 'running/desired'."""
    leader = s.leader()
    wanted = s.loaded.model.services
    if not leader or leader not in s.transports or not wanted:
        return {}
    t = s.transports[leader]
    state: dict[str, str] = {}

    want = {k: expected_tasks(s.loaded.model, k) for k in wanted}

    def ready() -> bool:
        counts = task_counts(t, sorted(wanted))
        state.clear()
        state.update({k: f"{now}/{want[k]}" for k, (now, _) in counts.items()})
        return len(counts) == len(wanted) and all(now == meant == want[k] for k, (now, meant) in counts.items())

    with contextlib.suppress(PollTimeout):  # a shortfall shows in the running/desired counts
        poll(ready, timeout=timeout, interval=0.1, max_interval=0.25, what="services to run every replica")
    return state


def wait_overlays(s: Session, timeout: float = 60, log: Log | None = None) -> list[str]:
    """Wait until every overlay's gossip knows its nodes and running tasks (see dnet.gossip.wait)."""
    return gossip.wait(s, s.leader(), timeout, log)


def settle(s: Session, changes: list[Change], log: Log | None = None) -> tuple[dict[str, str], list[str]]:
    """After changes that touched services: wait until they run every replica (name -> 'running/desired'), then
    until every overlay's gossip knows them (what it still does not know after the wait, as warnings)."""
    if not any(c.kind == "service" for c in changes):
        return {}, []
    return wait_services(s), wait_overlays(s, log=log)


def wait_tasks_gone(s: Session, timeout: float = 60) -> list[str]:
    """Wait until no task containers of this cluster's dnet services remain; return hosts where some still do."""
    gone = quote("docker", "ps", "-aq", "--filter", "label=dnet.service", "--filter",
                 f"label=dnet.cluster={s.loaded.model.cluster}")

    def one(h: str) -> bool:
        cmd = f"for i in $(seq {int(timeout * 2)}); do [ -z \"$({gone})\" ] && exit 0; sleep 0.5; done; exit 1"
        return s.transports[h].run(cmd, check=False, timeout=timeout + 10).ok

    return [r.host for r in parallel(list(s.transports), one) if not r.value]


