"""The destroy plan: every dnet-managed thing on the reachable hosts, as removals."""
from __future__ import annotations

from dnet.brownfield import own
from dnet.plan import stacks
from dnet.plan.diff import forwards_on
from dnet.plan.model import (
    ContainerRemove,
    FileRemove,
    ForwardRemove,
    ForwardRewrite,
    NetworkRemove,
    Plan,
    ServiceRemove,
    StackRemove,
    SwarmLeave,
    VolumeRemove,
)
from dnet.plan.world import World


def destroy(w: World, leave_swarm: bool, volumes: bool = False) -> Plan:
    """Removals for what dnet's converge made for this cluster (swarm leaves and named volumes only when asked),
    never a lab's, a probe's or another cluster's things.

    Cluster-wide things are read from one manager.
    """
    plan = Plan()
    leader = w.leader()
    manager = leader if leader in w.facts and w.facts[leader].is_manager else None
    if manager:
        for name, rec in sorted(stacks.records(w, manager).items()):
            plan.add(StackRemove(host=manager, stack=name, records=tuple(sorted(o.name for o in rec)),
                                 why="dnet deployed it"))
        for svc in w.facts[manager].services:
            if w.ours(svc) and w.kind(svc) == "service":
                plan.add(ServiceRemove(host=manager, service=svc.name, why="dnet-managed"))
        for what, objs in (("secret", w.facts[manager].secrets), ("config", w.facts[manager].configs)):
            for o in objs:
                if w.ours(o) and o.kind == what:
                    plan.add(FileRemove(host=manager, object=o.name, what=what, why="dnet-managed"))  # type: ignore[arg-type]
    for h, f in w.facts.items():
        for ctr in f.containers:
            if w.ours(ctr) and w.kind(ctr) == "container":
                plan.add(ContainerRemove(host=h, container=ctr.name, why="dnet-managed"))
        for n in f.networks:
            if w.ours(n) and w.kind(n) == "network" and (n.scope != "swarm" or h == manager):
                plan.add(NetworkRemove(host=h, network=n.name, why="dnet-managed", pruning=False))
        for v in f.volumes if volumes else []:
            # a volume has no kind: the cluster label says whose it is (the mount's volume-label writes both)
            if v.managed and v.owner == w.inv.cluster and v.kind != own.KIND:
                plan.add(VolumeRemove(host=h, volume=v.name))
        have, keep = forwards_on(w, f)
        if keep and have:  # other clusters' forwards stay
            plan.add(ForwardRewrite(host=h, rules=(), current=tuple(have), keep=keep))
        elif not keep and any(r.startswith("-N DNET-") or "-j DNET-" in r for r in f.nat_rules + f.filter_rules):
            plan.add(ForwardRemove(host=h, why="dnet's NAT chains", label="forwards"))
    for r in own.records(w.facts, w.inv.cluster):  # after what they list (same phase, added later)
        if r.store == "volume":
            plan.add(VolumeRemove(host=r.host, volume=r.name, why="dnet's ownership record (holds no data)"))
        elif manager:
            plan.add(FileRemove(host=manager, object=r.name, what="config", why="dnet's ownership record"))
    if leave_swarm:
        members = [h for h, f in w.facts.items() if f.swarm_state != "inactive"]  # also pending/error after a prune
        ours = {n.id for n in w.facts[manager].nodes} if manager else set()
        for h in sorted(members, key=lambda x: (x == leader, w.facts[x].is_manager)):
            f = w.facts[h]
            # a node of our swarm, or one pruned from it: it still knows our managers
            if f.swarm_state == "active" and f.node_id not in ours and not ours & set(f.swarm.managers):
                plan.errors.append(
                    f"{h}: in a swarm other than the inventory's (cluster {f.cluster_id or 'unknown'}, not a node of "
                    f"{leader or 'any inventory manager'}'s swarm): --leave-swarm leaves only the inventory's swarm; "
                    "if this host should leave that one too, run 'docker swarm leave --force' on it yourself")
                continue
            plan.add(SwarmLeave(host=h))
    return plan
