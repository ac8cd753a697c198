"""`verify --discover`: what runs on the hosts but is not in the inventory, added for one verify run only (read
with the import readers; nothing is changed, nothing is written)."""
from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from dnet.brownfield import importer
from dnet.facts import HostFacts
from dnet.inventory.resolve import HostSpec
from dnet.inventory.schema import Container, Inventory, Network, Service
from dnet.verify.model import Check


def merge(inv: Inventory, facts: dict[str, HostFacts], specs: dict[str, HostSpec]
          ) -> tuple[Inventory, set[str], list[str]]:
    """The inventory plus every undeclared network, service and container the hosts run; their names; and what
    could not be added (with why)."""
    got = importer.gather(facts, specs, inv.cluster)
    notes = list(got.notes)
    added: set[str] = set()
    parts: dict[str, dict[str, Any]] = {"networks": dict(inv.networks), "services": dict(inv.services),
                                        "containers": dict(inv.containers)}
    models: dict[str, Any] = {"networks": Network, "services": Service, "containers": Container}
    for key in ("networks", "services", "containers"):
        for name, entry in getattr(got, key).items():
            if name in parts[key]:
                continue
            entry = {k: v for k, v in entry.items() if k != "adopt"}
            missing = [n for n in entry.get("networks", []) if n not in parts["networks"]]
            if missing:
                notes.append(f"{key[:-1]} {name}: not probed: on network {missing[0]}, which was not read")
                continue
            try:
                parts[key][name] = models[key].model_validate(entry)
            except ValidationError as exc:
                notes.append(f"{key[:-1]} {name}: not probed: {exc.errors()[0]['msg']}")
                continue
            added.add(name)
    return inv.model_copy(update=parts), added, notes


def mark(checks: list[Check], names: set[str]) -> None:
    """Tag each check whose source or destination is a discovered workload (or one of its tasks)."""
    for c in checks:
        found = [x for x in (c.src, c.dst.split(":")[0]) if x in names or x.rsplit(".", 1)[0] in names]
        if found:
            c.tags["discovered"] = ",".join(dict.fromkeys(found))
