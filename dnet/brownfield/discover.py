"""`verify --discover`: what runs on the hosts but is not in the inventory, added for one verify run only (read
with the import readers; nothing is changed, nothing is written)."""
from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from dnet.brownfield import importer
from dnet.facts import HostFacts
from dnet.inventory.resolve import HostSpec
from dnet.inventory.schema import Container, Inventory, Network, Service


def merge(inv: Inventory, facts: dict[str, HostFacts], specs: dict[str, HostSpec], stacks: set[str] | None = None
          ) -> tuple[Inventory, set[str], list[str]]:
    """The inventory plus every undeclared network, service and container the hosts run (with `stacks`: only the
    services and networks of those stacks); their names; and what could not be added (with why)."""
    got = importer.gather(facts, specs, inv.cluster)
    if stacks is not None:
        got.containers = {}
        for key in ("networks", "services"):  # Docker names a stack's objects STACK_name
            setattr(got, key, {n: e for n, e in getattr(got, key).items() if "_" in n and n.split("_", 1)[0] in stacks})
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

