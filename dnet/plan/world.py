"""What a plan is made from (World): the inventory, resolved hosts, the hosts' facts and the operator's images."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dnet.brownfield import own
from dnet.facts import HostFacts
from dnet.facts.model import Labelled
from dnet.inventory.resolve import HostSpec
from dnet.inventory.schema import Inventory
from dnet.inventory.semantic import swarm_hosts


def leader(inv: Inventory, facts: Mapping[str, HostFacts]) -> str | None:
    """The manager that runs cluster-wide commands (first manager already active, else first manager)."""
    managers = [h for h in swarm_hosts(inv) if "manager" in inv.hosts[h].roles]
    for h in managers:
        f = facts.get(h)
        if f and f.swarm_state == "active" and f.is_manager:
            return h
    return managers[0] if managers else None


@dataclass
class World:
    """Everything diff needs: the inventory, resolved hosts, facts and the operator's image IDs."""

    inv: Inventory
    specs: dict[str, HostSpec]
    facts: dict[str, HostFacts]
    local_images: dict[str, str | None]
    prune_nodes: bool = False  # remove swarm nodes the inventory does not list
    base: Path = field(default_factory=Path)  # the inventory's folder: env_file, secret and config files are here
    adopted: dict[str, str] = field(default_factory=dict)  # ID -> kind of what this cluster adopted (own.records)
    adopting: list[tuple[str, str, str, str]] = field(default_factory=list)  # (host, ID, kind, name) this plan adopts
    local_arches: dict[str, str] = field(default_factory=dict)  # image -> its architecture in this machine's engine

    def __post_init__(self) -> None:
        self.adopted = own.adopted(self.facts, self.inv.cluster)

    def leader(self) -> str | None:
        return leader(self.inv, self.facts)

    def ours(self, thing: Labelled) -> bool:
        """Made by dnet for this inventory's cluster (or by a dnet too old to label clusters), or adopted by it."""
        return (thing.managed and thing.owner in ("", self.inv.cluster)) or self.adopted_id(thing) != ""

    def adopted_id(self, thing: Labelled) -> str:
        """The thing's ID when this cluster adopted it, else ""."""
        tid = str(getattr(thing, "id", ""))
        return tid if tid and tid in self.adopted else ""

    def kind(self, thing: Labelled) -> str:
        """What dnet made or adopted it as (network, container, service)."""
        return self.adopted.get(str(getattr(thing, "id", "")), "") or thing.kind

    def whose(self, thing: Labelled) -> str:
        """Why a thing that is not ours is not: for errors that tell the operator what to do."""
        return f"dnet cluster '{thing.owner}'" if thing.managed else "something other than dnet"

    def adopt(self, host: str, thing: Labelled, kind: str, name: str) -> None:
        """Note that this plan adopts a thing (own.diff records it)."""
        self.adopting.append((host, str(getattr(thing, "id", "")), kind, name))
