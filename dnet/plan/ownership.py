"""Plan the ownership records: add what this plan adopts, drop objects that are gone (see dnet.brownfield.own)."""
from __future__ import annotations

from dnet.brownfield import own
from dnet.plan.model import Adopt, Plan
from dnet.plan.world import World


def diff(w: World, plan: Plan) -> None:
    """One Adopt per record location whose list changes: what this plan adopts added, vanished objects dropped."""
    cluster, leader = w.inv.cluster, w.leader()
    alive = {x.id for f in w.facts.values() for x in f.networks} | \
        {x.id for f in w.facts.values() for x in f.containers} | {x.id for f in w.facts.values() for x in f.services}
    have = own.records(w.facts, cluster)
    where: dict[tuple[str, str], dict[str, tuple[str, str]]] = {}
    for r in have:
        if r.store == "config" and (not leader or leader not in w.facts):
            continue
        key = ("config", leader or r.host) if r.store == "config" else ("volume", r.host)
        where.setdefault(key, {}).update({i: v for i, v in r.owned.items() if i in alive})
    new: dict[tuple[str, str], list[str]] = {}
    for host, oid, kind, name in w.adopting:
        swarm_wide = kind == "service" or any(n.id == oid and n.scope == "swarm" for n in w.facts[host].networks)
        key = ("config", host) if swarm_wide else ("volume", host)
        where.setdefault(key, {})[oid] = (kind, name)
        new.setdefault(key, []).append(f"{kind} {name}")
    for (store, host), owned in sorted(where.items()):
        old = sorted(r.name for r in have if r.store == store and (store == "config" or r.host == host))
        name = own.record_name(cluster, owned) if owned else ""
        if old == [name] or (not old and not owned):
            continue
        plan.add(Adopt(host=host, store=store, record=name,  # type: ignore[arg-type]
                       owned=tuple((i, k, n) for i, (k, n) in sorted(owned.items())),
                       replaces=tuple(old), new=tuple(new.get((store, host), ()))))
