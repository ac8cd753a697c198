"""Connect -> facts -> plan -> apply, host by host in parallel, with per-host results."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dnet import MANAGED_LABEL
from dnet.errors import CommandError, DnetError
from dnet.facts import HostFacts, gather
from dnet.images import local_image_id
from dnet.inventory import Loaded
from dnet.inventory.resolve import HostSpec, hosts
from dnet.inventory.semantic import swarm_hosts
from dnet.plan import desired as d
from dnet.plan.diff import World, diff
from dnet.plan.model import PHASES, Change, Plan
from dnet.runner import parallel
from dnet.tasks import Context, handler
from dnet.transport import Transport, connect
from dnet.transport.base import mask

Log = Callable[[str], None]


@dataclass
class Session:
    """Open connections and gathered facts for one run; close() when done."""

    loaded: Loaded
    specs: dict[str, HostSpec]
    transports: dict[str, Transport] = field(default_factory=dict)
    facts: dict[str, HostFacts] = field(default_factory=dict)
    host_errors: dict[str, str] = field(default_factory=dict)
    local_images: dict[str, str | None] = field(default_factory=dict)

    def close(self) -> None:
        for t in self.transports.values():
            t.close()


def open_session(loaded: Loaded, accept_new_host_keys: bool, log: Log) -> Session:
    """Connect to every host (one connection each, in parallel) and read their facts."""
    inv = loaded.model
    s = Session(loaded, hosts(inv))
    images = sorted({c.image for c in inv.containers.values()} | {x.image for x in inv.services.values()})
    start = time.monotonic()

    def work(spec: HostSpec) -> tuple[Transport, HostFacts]:
        t = connect(spec, accept_new_host_keys)
        try:
            return t, gather(t, images)
        except BaseException:
            t.close()
            raise

    def done(r: Any) -> None:
        log(f"{r.host}: " + ("facts read" if r.ok else f"unreachable: {r.error}"))

    for r in parallel(s.specs.values(), work, name=lambda sp: sp.name, on_done=done):
        if r.ok and r.value:
            s.transports[r.host], s.facts[r.host] = r.value
        else:
            s.host_errors[r.host] = r.error or "unknown error"
    s.local_images = {i: local_image_id(i) for i in images}
    log(f"{len(s.transports)}/{len(s.specs)} hosts read in {time.monotonic() - start:.1f}s")
    return s


def make_plan(s: Session) -> Plan:
    """Diff the inventory against the reachable hosts."""
    w = World(s.loaded.model, s.specs, s.facts, s.local_images)
    leader = w.leader()
    if leader and leader not in s.facts:
        plan = Plan(errors=[f"{leader}: the swarm's first manager is unreachable; swarm, overlay and service changes "
                            "need it"])
        return plan
    return diff(w)


@dataclass
class Outcome:
    """What happened to one change."""

    change: Change
    status: str  # ok | failed | skipped
    message: str = ""

    def public(self) -> dict[str, Any]:
        return {**self.change.public(), "status": self.status, "message": self.message}


def apply(s: Session, plan: Plan, log: Log) -> list[Outcome]:
    """Carry out the plan phase by phase; hosts in parallel; a failed host skips its later changes."""
    inv = s.loaded.model
    ctx = Context(inv, s.specs, s.facts, s.transports, World(inv, s.specs, s.facts, s.local_images).leader())
    failed: set[str] = set(s.host_errors)
    outcomes: list[Outcome] = []
    changes = plan.ordered()
    for phase in PHASES:
        batch = [c for c in changes if c.phase == phase]
        if not batch:
            continue
        if phase == "swarm":  # init first, then joins in parallel
            init = _run(ctx, [c for c in batch if c.action == "init"], failed, log)
            outcomes += init
            if any(o.status != "ok" for o in init):
                failed.update(swarm_hosts(inv))
            batch = [c for c in batch if c.action != "init"]
        outcomes += _run(ctx, batch, failed, log)
    return outcomes


def _run(ctx: Context, batch: list[Change], failed: set[str], log: Log) -> list[Outcome]:
    by_host: dict[str, list[Change]] = {}
    for c in batch:
        by_host.setdefault(c.host, []).append(c)

    def work(host: str) -> list[Outcome]:
        out = []
        for c in by_host[host]:
            if host in failed:
                out.append(Outcome(c, "skipped", "an earlier change on this host failed"))
                continue
            try:
                msg = handler(c)(ctx, c)
                out.append(Outcome(c, "ok", msg))
                log(f"{host}: {c.kind} {c.name}: {msg}")
            except (CommandError, DnetError) as exc:
                failed.add(host)
                text = mask(str(exc), ctx.secrets())
                out.append(Outcome(c, "failed", text))
                log(f"{host}: {c.kind} {c.name}: FAILED: {text}")
        return out

    results = parallel(list(by_host), work)
    return [o for r in results for o in (r.value or [])]


def wait_services(s: Session, timeout: float = 60) -> dict[str, str]:
    """Wait until every dnet service runs all its replicas; return name -> 'running/desired'."""
    leader = World(s.loaded.model, s.specs, s.facts, s.local_images).leader()
    if not leader or leader not in s.transports or not s.loaded.model.services:
        return {}
    t = s.transports[leader]
    deadline = time.monotonic() + timeout
    while True:
        r = t.run("docker service ls --filter label=dnet.managed=true --format '{{.Name}} {{.Replicas}}'", check=False)
        state = dict(line.split(" ", 1) for line in r.stdout.splitlines() if " " in line)
        state = {k: v.split(" ")[0] for k, v in state.items() if k in s.loaded.model.services}
        done = all(v.split("/")[0] == v.split("/")[1] for v in state.values() if "/" in v)
        if (done and len(state) == len(s.loaded.model.services)) or time.monotonic() > deadline:
            return state
        time.sleep(0.5)


def wait_tasks_gone(s: Session, timeout: float = 60) -> list[str]:
    """Wait until no task containers of dnet services remain; return hosts where some still do."""
    def one(h: str) -> bool:
        cmd = ("for i in $(seq %d); do [ -z \"$(docker ps -aq --filter label=dnet.service)\" ] && exit 0; "
               "sleep 0.5; done; exit 1") % int(timeout * 2)
        return s.transports[h].run(cmd, check=False, timeout=timeout + 10).ok

    return [r.host for r in parallel(list(s.transports), one) if not r.value]


def destroy_plan(s: Session, leave_swarm: bool) -> Plan:
    """Every dnet-managed thing on the reachable hosts, as removals (and swarm leaves when asked).

    Cluster-wide things (services, overlay networks) are read from one manager only.
    """
    plan = Plan()
    leader = World(s.loaded.model, s.specs, s.facts, s.local_images).leader()
    manager = leader if leader in s.facts and s.facts[leader].is_manager else None

    def ours(labels: dict[str, str] | None) -> bool:
        return (labels or {}).get(MANAGED_LABEL) == "true"

    if manager:
        for svc in s.facts[manager].services:
            if ours(svc["Spec"].get("Labels")):
                plan.add(Change(manager, "prune", "service", svc["Spec"]["Name"], "remove", "dnet-managed"))
    for h, f in s.facts.items():
        for ctr in f.containers:
            labels = (ctr.get("Config") or {}).get("Labels") or {}
            if ours(labels) and labels.get(d.KIND_LABEL) == "container":
                plan.add(Change(h, "prune", "container", ctr["Name"].lstrip("/"), "remove", "dnet-managed"))
        for n in f.networks:
            if ours(n.get("Labels")) and (n.get("Scope") != "swarm" or h == manager):
                plan.add(Change(h, "network", "network", n["Name"], "remove", "dnet-managed"))
        if any(r.startswith("-N DNET-") or "-j DNET-" in r for r in f.nat_rules + f.filter_rules):
            plan.add(Change(h, "forward", "forward", "forwards", "remove", "dnet's NAT chains"))
    if leave_swarm:
        members = [h for h, f in s.facts.items() if f.swarm_state == "active"]
        for h in sorted(members, key=lambda x: (x == leader, s.facts[x].is_manager)):
            plan.add(Change(h, "forward", "swarm", "swarm", "leave", "leave the swarm"))
    return plan
