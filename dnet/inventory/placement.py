"""Which nodes a service's tasks may run on, from the inventory alone (roles, labels, names, availability)."""
from __future__ import annotations

from dnet.inventory.schema import Inventory, Service
from dnet.inventory.workload import CONSTRAINT


def _meets(inv: Inventory, host: str, constraint: str) -> bool:
    m = CONSTRAINT.fullmatch(constraint)
    if not m:
        return True
    key, op, value = m[1], m[2], m[3]
    h = inv.hosts[host]
    if key.startswith("node.labels."):
        have: str | None = h.labels.get(key.removeprefix("node.labels."))
    elif key == "node.role":
        have = h.roles[0] if h.roles else None
    elif key == "node.hostname":
        have = host
    else:  # node.id, platform, engine labels: not in the inventory, so not held against a node
        return True
    return (have == value) == (op == "==")


def eligible(inv: Inventory, svc: Service) -> list[str]:
    """Swarm hosts that are not drained and meet every constraint."""
    rules = svc.placement.constraints if svc.placement else []
    return [h for h, spec in inv.hosts.items() if spec.roles and spec.availability != "drain"
            and all(_meets(inv, h, c) for c in rules)]


def expected_tasks(inv: Inventory, name: str) -> int:
    """Tasks a service should run: its replicas, or one per eligible node for a global service."""
    svc = inv.services[name]
    return len(eligible(inv, svc)) if svc.mode == "global" else svc.replicas
