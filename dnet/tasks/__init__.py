"""Idempotent operations that turn a Change into commands on hosts."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from dnet.facts import HostFacts
from dnet.inventory.resolve import HostSpec
from dnet.inventory.schema import Inventory
from dnet.plan.model import Change
from dnet.transport.base import Transport


@dataclass
class Context:
    """What tasks share during one apply. Tokens live only here, in memory."""

    inv: Inventory
    specs: dict[str, HostSpec]
    facts: dict[str, HostFacts]
    transports: dict[str, Transport]
    leader: str | None
    tokens: dict[str, str] = field(default_factory=dict, repr=False)
    manager_addr: str = ""
    node_ids: dict[str, str] = field(default_factory=dict)  # host -> swarm node ID, read at most once

    def secrets(self) -> tuple[str, ...]:
        return tuple(self.tokens.values())


Task = Callable[[Context, Change], str]


def handler(change: Change) -> Task:
    """The function that carries out a change."""
    from dnet.tasks import engine, forward, network, swarm, workload

    table: dict[tuple[str, str], Task] = {
        ("engine", "install"): engine.install, ("engine", "start"): engine.start,
        ("daemon", "update"): engine.daemon_json,
        ("swarm", "init"): swarm.init, ("swarm", "join"): swarm.join, ("swarm", "leave"): swarm.leave,
        ("node", "promote"): swarm.role, ("node", "demote"): swarm.role, ("node", "label"): swarm.labels,
        ("network", "create"): network.create, ("network", "recreate"): network.recreate,
        ("network", "remove"): network.remove,
        ("image", "stream"): workload.stream, ("image", "pull"): workload.pull,
        ("container", "create"): workload.container, ("container", "recreate"): workload.container,
        ("container", "start"): workload.start, ("container", "remove"): workload.remove_container,
        ("service", "create"): workload.service, ("service", "recreate"): workload.service,
        ("service", "remove"): workload.remove_service,
        ("forward", "rewrite"): forward.rewrite, ("forward", "remove"): forward.remove,
    }
    return table[(change.kind, change.action)]
