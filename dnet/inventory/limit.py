"""--limit PATTERN, Ansible's host patterns: `all` or `*`, hosts, groups, roles (manager, workers, ...), wildcards
(`web*`), `~regex`, joined by `,` or `:` (union), with `&` (intersection) and `!` (exclusion) on a pattern.
As Ansible does, unions apply first, then intersections, then exclusions; with none, exclusions start from all."""
from __future__ import annotations

import fnmatch
import re

from dnet.errors import DnetError
from dnet.inventory.schema import Inventory
from dnet.inventory.semantic import members

ROLES = {"manager": "manager", "managers": "manager", "worker": "worker", "workers": "worker"}


def _one(inv: Inventory, token: str) -> set[str]:
    """The hosts one pattern names (no & or !)."""
    if token in ("all", "*"):
        return set(inv.hosts)
    if token in inv.hosts or token in inv.groups:
        return set(members(inv, [token]))
    if token in ROLES:
        return {h for h, spec in inv.hosts.items() if ROLES[token] in spec.roles}
    if token.startswith("~"):
        try:
            rx = re.compile(token[1:])
        except re.error as exc:
            raise DnetError(f"--limit: '{token}' is not a regular expression ({exc})") from None
        names = [n for n in [*inv.hosts, *inv.groups] if rx.search(n)]
    elif any(ch in token for ch in "*?["):
        names = [n for n in [*inv.hosts, *inv.groups] if fnmatch.fnmatchcase(n, token)]
    else:
        import difflib  # only a wrong name needs it

        near = difflib.get_close_matches(token, [*inv.hosts, *inv.groups, *ROLES, "all"], n=1, cutoff=0.6)
        raise DnetError(f"--limit: '{token}' is no host, group or role of this inventory"
                        + (f"; did you mean '{near[0]}'?" if near else "") + " (hosts: "
                        f"{', '.join(inv.hosts)}; groups: {', '.join(inv.groups) or 'none'}; roles: managers, "
                        "workers; or all, a wildcard such as node*, ~regex, &PATTERN, !PATTERN)")
    if not names:
        raise DnetError(f"--limit: '{token}' matches no host or group of this inventory (hosts: "
                        f"{', '.join(inv.hosts)}; groups: {', '.join(inv.groups) or 'none'})")
    return set(members(inv, names))


def select(inv: Inventory, spec: str) -> list[str]:
    """Host names for an Ansible-style pattern, in inventory order."""
    tokens = [t.strip() for t in re.split(r"[,:]", spec) if t.strip()]
    plus = [t for t in tokens if t[0] not in "&!"]
    both = [t[1:] for t in tokens if t[0] == "&"]
    minus = [t[1:] for t in tokens if t[0] == "!"]
    if any(not t for t in both + minus):
        raise DnetError(f"--limit '{spec}': & and ! need a pattern after them (e.g. all:!node3, managers:&web*)")
    chosen: set[str] = set().union(*(_one(inv, t) for t in plus)) if plus else set(inv.hosts)
    for t in both:
        chosen &= _one(inv, t)
    for t in minus:
        chosen -= _one(inv, t)
    if not chosen:
        raise DnetError(f"--limit '{spec}' selects no host")
    return [h for h in inv.hosts if h in chosen]
