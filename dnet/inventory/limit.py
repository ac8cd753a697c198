"""--limit HOST|GROUP|ROLE[,...] (Ansible's convention): the hosts a run may connect to and change."""
from __future__ import annotations

from dnet.errors import DnetError
from dnet.inventory.schema import Inventory
from dnet.inventory.semantic import members

ROLES = {"manager": "manager", "managers": "manager", "worker": "worker", "workers": "worker"}


def select(inv: Inventory, spec: str) -> list[str]:
    """Host names for a comma-separated list of hosts, groups and roles, in inventory order."""
    chosen: set[str] = set()
    for token in [t.strip() for t in spec.split(",") if t.strip()]:
        if token in inv.hosts or token in inv.groups:
            chosen.update(members(inv, [token]))
        elif token in ROLES:
            chosen.update(h for h, spec_ in inv.hosts.items() if ROLES[token] in spec_.roles)
        else:
            raise DnetError(f"--limit: '{token}' is no host, group or role of this inventory (hosts: "
                            f"{', '.join(inv.hosts)}; groups: {', '.join(inv.groups) or 'none'}; roles: manager, "
                            "worker)")
    if not chosen:
        raise DnetError(f"--limit '{spec}' selects no host")
    return [h for h in inv.hosts if h in chosen]
