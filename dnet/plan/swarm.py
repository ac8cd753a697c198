"""Swarm part of the diff: init, joins, roles and node labels."""
from __future__ import annotations

from dnet.facts import HostFacts, NodeFact
from dnet.inventory.resolve import address_of
from dnet.inventory.semantic import swarm_hosts
from dnet.plan import desired as d
from dnet.plan.model import NodeAvailability, NodeLabels, NodeRemove, NodeRole, Plan, Role, SwarmInit, SwarmJoin
from dnet.plan.world import World


def diff(w: World, plan: Plan) -> None:
    """Plan swarm membership for every swarm host, and refuse hosts that belong to another swarm."""
    members = swarm_hosts(w.inv)
    leader = w.leader()
    if not leader or leader not in w.facts:  # not read (--limit without swarm hosts)
        return
    lf = w.facts[leader]
    cluster = lf.cluster_id if lf.swarm_state == "active" and lf.is_manager else ""
    if not cluster:
        if lf.swarm_state != "inactive":
            plan.errors.append(f"{leader}: swarm state is '{lf.swarm_state}' ({lf.swarm.error or 'no detail'}); "
                               "fix or leave that swarm by hand (docker swarm leave --force)")
            return
        sw = w.inv.swarm
        if _gossip_port_taken(w, plan, leader):
            return
        plan.add(SwarmInit(host=leader, pools=tuple(sw.default_addr_pool) if sw else (), restart=lf.stale_gossip))
    known_nodes = {n.id: n for n in lf.nodes} if cluster else {}
    for h in members:
        if h not in w.facts:  # unreachable: reported by the caller
            continue
        f = w.facts[h]
        role: Role = "manager" if "manager" in w.inv.hosts[h].roles else "worker"
        node = known_nodes.get(f.node_id)
        if h == leader and not cluster:
            pass
        elif f.swarm_state == "inactive":
            if not _gossip_port_taken(w, plan, h):
                plan.add(SwarmJoin(host=h, role=role, restart=f.stale_gossip))
        elif f.swarm_state in ("pending", "error") and cluster and _joining_us(w, f, known_nodes):
            plan.add(SwarmJoin(host=h, role=role, stuck=f.swarm_state))
            node = None  # leaving and joining again makes a new node: what the old one had is gone
        elif f.swarm_state != "active":
            plan.errors.append(f"{h}: swarm state is '{f.swarm_state}'; fix it by hand (docker swarm leave --force)")
            continue
        elif not cluster or (f.is_manager and f.cluster_id != cluster) or \
                (not f.is_manager and f.node_id not in known_nodes):
            other = f.cluster_id or "unknown to this swarm's managers"
            plan.errors.append(f"{h}: already in another swarm (cluster {other[:12]}); dnet will not move it. "
                               f"Leave that swarm on {h} (docker swarm leave) or drop {h} from the inventory")
            continue
        _node(w, plan, h, role, node, leader)
    _strangers(w, plan, leader, known_nodes)


def _gossip_port_taken(w: World, plan: Plan, host: str) -> bool:
    """Outside a swarm, something other than the engine listens on swarm's gossip port: an error in the plan."""
    f = w.facts[host]
    if f.swarm_state != "inactive" or not f.gossip_listener or f.stale_gossip:
        return False
    plan.errors.append(f"{host}: 7946/tcp, the port swarm's gossip needs, is taken by another program "
                       f"({f.gossip_listener}); stop it, then apply again")
    return True


def _joining_us(w: World, f: HostFacts, nodes: dict[str, NodeFact]) -> bool:
    """A join that never finished, aimed at this swarm's managers (and no other swarm's), or one that never got
    as far as a node identity (it belongs to no swarm: leaving it loses nothing)."""
    if not f.node_id and not f.swarm.remote_managers:
        return True
    ours = {n.addr for n in nodes.values() if n.role == "manager"} | \
        {address_of(w.specs[h]) for h in w.inv.hosts if "manager" in w.inv.hosts[h].roles and h in w.specs}
    return bool(f.swarm.manager_addrs) and set(f.swarm.manager_addrs) <= ours


def _strangers(w: World, plan: Plan, leader: str, nodes: dict[str, NodeFact]) -> None:
    """Swarm nodes that no inventory host is: reported, and removed with --prune-nodes."""
    ours = {f.node_id for f in w.facts.values() if f.node_id}
    names = set(w.inv.hosts)
    addrs = {address_of(spec) for spec in w.specs.values()}
    for n in nodes.values():
        if n.id in ours or n.hostname in names or n.addr in addrs:
            continue
        if w.prune_nodes:
            plan.add(NodeRemove(host=leader, node_id=n.id, hostname=n.hostname, manager=n.role == "manager"))
        else:
            plan.warnings.append(f"swarm node {n.hostname or n.id[:12]} ({n.addr}, {n.role}, {n.state}) is not in the "
                                 "inventory; apply --prune-nodes removes it")


def _node(w: World, plan: Plan, h: str, role: Role, node: NodeFact | None, leader: str) -> None:
    if node and node.role != role:
        plan.add(NodeRole(host=leader, target=h, role=role, current=node.role))
    want_av = w.inv.hosts[h].availability
    have_av = node.availability if node else "active"  # a node joins active
    if want_av and have_av != want_av:
        plan.add(NodeAvailability(host=leader, target=h, availability=want_av, current=have_av))
    have = node.labels if node else {}
    owned = [k for k in have.get(d.NODE_LABELS, "").split(",") if k]
    want = dict(w.inv.hosts[h].labels)
    add = {k: v for k, v in want.items() if have.get(k) != v}
    rm = tuple(k for k in owned if k not in want and k in have)
    new_owned = ",".join(sorted(want))
    if add or rm or have.get(d.NODE_LABELS, "") != new_owned:
        current = {k: v for k, v in have.items() if k in want or k in owned}
        plan.add(NodeLabels(host=leader, target=h, add=add, rm=rm, owned=new_owned, current=current))
