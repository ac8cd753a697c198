"""Network part of the diff: create, recreate (with what it disconnects), prune; overlap checks."""
from __future__ import annotations

import ipaddress

from dnet.brownfield import actual
from dnet.facts import NetworkFact
from dnet.inventory.semantic import bridge_hosts, swarm_hosts
from dnet.plan import desired as d
from dnet.plan.model import Attachment, NetworkCreate, NetworkRecreate, NetworkRemove, Plan
from dnet.plan.world import World


def attached(w: World, net: NetworkFact) -> tuple[list[Attachment], list[str]]:
    """Plain containers (with aliases and addresses) and services attached to a network, across hosts."""
    ctrs: list[Attachment] = []
    svcs: set[str] = set()
    for h, f in w.facts.items():
        for c in f.containers:
            ep = c.endpoints.get(net.name)
            if ep is None or c.is_task:
                continue
            ctrs.append(Attachment(h, c.name, tuple(a for a in ep.aliases if a != c.id[:12]), ep.static_ip,
                                   c.managed))
        for s in f.services:
            if set(s.network_targets) & {net.id, net.name}:
                svcs.add(s.name)
    return ctrs, sorted(svcs)


def current(net: NetworkFact) -> dict[str, object]:
    """A network's actual settings, for the plan's before values."""
    return {"driver": net.driver, "subnet": ",".join(net.subnets) or None, "attachable": net.attachable,
            "internal": net.internal, "spec": net.spec_hash}


def diff(w: World, plan: Plan) -> None:
    leader = w.leader()
    wanted: dict[str, set[str]] = {}
    for name, net in w.inv.networks.items():
        where = ([leader] if leader else []) if net.driver == "overlay" else bridge_hosts(w.inv, name)
        spans = swarm_hosts(w.inv) if net.driver == "overlay" else where
        overlaps(w, plan, name, net.subnet, spans)
        spec = d.network_spec(net)
        for h in where:
            wanted.setdefault(h, set()).add(name)
            if h not in w.facts:
                continue
            have = w.facts[h].network(name)
            if have is None:
                plan.add(NetworkCreate(host=h, network=name, spec=spec))
            elif not w.ours(have):
                if net.adopt:
                    _adopt(w, plan, h, have, spec)
                else:
                    plan.errors.append(f"{h}: network '{name}' exists but was made by {w.whose(have)}; {TAKE_OVER}")
            elif (have.spec_hash or _actual_hash(plan, h, have)) != spec.hash:
                ctrs, svcs = attached(w, have)
                ours = tuple(x for x in svcs if x in w.inv.services)
                plan.add(NetworkRecreate(host=h, network=name, spec=spec, current=current(have), containers=tuple(ctrs),
                                         services=tuple(x for x in svcs if x not in ours), services_rm=ours))
    for h, f in w.facts.items():
        for n in f.networks:
            if not w.ours(n) or w.kind(n) != "network" or n.name in wanted.get(h, set()):  # not a lab's network
                continue
            if n.scope == "swarm" and h != leader:
                continue
            plan.add(NetworkRemove(host=h, network=n.name))


TAKE_OVER = ("rename it in the inventory, remove it by hand, or take it over: `dnet import` writes an inventory of "
             "what runs, or set adopt: true on the entry")


def _actual_hash(plan: Plan, h: str, have: NetworkFact) -> str:
    try:
        return actual.network(have).hash
    except actual.Unreadable as exc:
        plan.errors.append(f"{h}: adopted {exc}")
        return ""


def _adopt(w: World, plan: Plan, h: str, have: NetworkFact, spec: d.NetworkSpec) -> None:
    """Adopt a network dnet did not make when it is what the entry declares (a network cannot change in place)."""
    try:
        got = actual.network(have)
    except actual.Unreadable as exc:
        plan.errors.append(f"{h}: cannot adopt {exc}")
        return
    if got.hash == spec.hash:
        w.adopt(h, have, "network", have.name)
        return
    plan.errors.append(f"{h}: network '{have.name}' is {got.describe()}, the inventory declares {spec.describe()}; "
                       "adopting it would mean recreating it: make the entry say what runs (dnet import writes it), "
                       "adopt, then change it")


def overlaps(w: World, plan: Plan, name: str, subnet: str | None, hosts: list[str]) -> None:
    """Refuse a subnet that overlaps another docker network or a route on any host it spans."""
    if not subnet:
        return
    mine = ipaddress.ip_network(subnet)
    for h in hosts:
        if h not in w.facts:
            continue
        f = w.facts[h]
        docker_nets: set[ipaddress.IPv4Network | ipaddress.IPv6Network] = set()
        for n in f.networks:
            for sub in n.subnets:
                if ":" in sub:
                    continue
                other = ipaddress.ip_network(sub, strict=False)
                docker_nets.add(other)
                if n.name != name and other.overlaps(mine):
                    plan.errors.append(f"{h}: network '{name}' ({subnet}) overlaps existing docker network "
                                       f"'{n.name}' ({sub}); pick another subnet")
        for line in f.routes:
            dest = line.split()[0]
            if dest == "default":
                continue
            try:
                net = ipaddress.ip_network(dest, strict=False)
            except ValueError:
                continue
            if net not in docker_nets and net.overlaps(mine):
                plan.errors.append(f"{h}: network '{name}' ({subnet}) overlaps the route '{line.strip()}'; "
                                   "pick another subnet")
