"""Which swarm members restart their engine together: the one batching of apply's daemon changes and the runbook's
engine-restart."""
from __future__ import annotations

from collections.abc import Mapping

from dnet.facts import HostFacts


def batches(facts: Mapping[str, HostFacts], hosts: list[str], serial: int) -> list[list[str]]:
    """Hosts in batches of at most `serial`, workers first (each group in the order given), and never more managers
    at once than raft can lose and keep quorum ((managers - 1) // 2, at least 1). In an autolocked swarm a restarted
    manager waits for its unlock key, so managers go one at a time."""
    managers = sum(1 for f in facts.values() if f.swarm_state == "active" and f.is_manager)
    autolock = any(f.swarm.autolock for f in facts.values())
    per_batch = 1 if autolock else max(1, (managers - 1) // 2)
    is_mgr = {h: bool(h in facts and facts[h].is_manager) for h in hosts}
    out: list[list[str]] = []
    for h in sorted(hosts, key=lambda h: is_mgr[h]):  # stable: the given order within workers and managers
        last = out[-1] if out else None
        if last is None or len(last) >= serial or (is_mgr[h] and sum(is_mgr[x] for x in last) >= per_batch):
            out.append([h])
        else:
            last.append(h)
    return out
