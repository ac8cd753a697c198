"""The destroy plan: every dnet-managed thing on the reachable hosts, as removals."""
from __future__ import annotations

from typing import TYPE_CHECKING

from dnet.plan.model import ContainerRemove, ForwardRemove, NetworkRemove, Plan, ServiceRemove, SwarmLeave

if TYPE_CHECKING:
    from dnet.plan.diff import World


def destroy(w: World, leave_swarm: bool) -> Plan:
    """Removals for what dnet's converge made (and swarm leaves when asked), never a lab's or a probe's things.

    Cluster-wide things are read from one manager.
    """
    plan = Plan()
    leader = w.leader()
    manager = leader if leader in w.facts and w.facts[leader].is_manager else None
    if manager:
        for svc in w.facts[manager].services:
            if svc.managed and svc.kind == "service":
                plan.add(ServiceRemove(manager, svc.name, "dnet-managed"))
    for h, f in w.facts.items():
        for ctr in f.containers:
            if ctr.managed and ctr.kind == "container":
                plan.add(ContainerRemove(h, ctr.name, "dnet-managed"))
        for n in f.networks:
            if n.managed and n.kind == "network" and (n.scope != "swarm" or h == manager):
                plan.add(NetworkRemove(h, n.name, "dnet-managed", pruning=False))
        if any(r.startswith("-N DNET-") or "-j DNET-" in r for r in f.nat_rules + f.filter_rules):
            plan.add(ForwardRemove(h, "dnet's NAT chains", "forwards"))
    if leave_swarm:
        members = [h for h, f in w.facts.items() if f.swarm_state != "inactive"]  # also pending/error after a prune
        for h in sorted(members, key=lambda x: (x == leader, w.facts[x].is_manager)):
            plan.add(SwarmLeave(h))
    return plan
