"""`--target KIND.NAME` (Terraform's -target): only the changes to the named resources and what they strictly
need; every other pending change stays pending and is listed as not targeted."""
from __future__ import annotations

import difflib
from dataclasses import dataclass

from dnet.errors import DnetError
from dnet.inventory.schema import Inventory
from dnet.plan.model import (
    Change,
    ContainerRun,
    ContainerStart,
    EngineInstall,
    EngineStart,
    FileCreate,
    ImagePull,
    ImageStream,
    NetworkCreate,
    NetworkRecreate,
    NodeLabels,
    Plan,
    ServiceRun,
    ServiceUpdate,
    SwarmInit,
    SwarmJoin,
)

KINDS = ("service", "container", "network", "stack", "node", "engine", "daemon", "swarm", "image", "secret",
         "volume", "forward", "ownership")
NAMED = {"service": "services", "container": "containers", "network": "networks", "stack": "stacks"}


@dataclass(frozen=True)
class Target:
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}.{self.name}"


def parse(texts: list[str] | tuple[str, ...], inv: Inventory) -> list[Target]:
    """KIND.NAME values, checked against the inventory (a service, container, network or stack it declares)."""
    out = []
    for text in texts:
        kind, dot, name = text.partition(".")
        if not dot or not name or kind not in KINDS:
            near = difflib.get_close_matches(kind, KINDS, n=1, cutoff=0.6)
            raise DnetError(f"--target {text}: write KIND.NAME, KIND one of {', '.join(KINDS)}"
                            + (f" (did you mean {near[0]}.{name}?)" if near and dot else "")
                            + ", e.g. service.web")
        if kind in NAMED:
            declared = list(getattr(inv, NAMED[kind]))
            if name not in declared:
                near = difflib.get_close_matches(name, declared, n=1, cutoff=0.6)
                raise DnetError(f"--target {text}: the inventory declares no {kind} '{name}'"
                                + (f"; did you mean {kind}.{near[0]}?" if near else "")
                                + f" ({NAMED[kind]}: {', '.join(declared) or 'none'})")
        out.append(Target(kind, name))
    return out


def _needs(c: Change, plan: Plan, inv: Inventory) -> list[Change]:
    """The pending changes a targeted change cannot do without: its networks, image and files, the swarm for
    swarm resources, and a stopped or missing engine on its host; never a restart of a running engine."""
    networks: tuple[str, ...] = ()
    image = ""
    files: set[str] = set()
    swarm = isinstance(c, ServiceRun | ServiceUpdate) or c.kind == "stack"
    labels = False
    if isinstance(c, ServiceRun | ServiceUpdate) and c.spec is not None:
        networks, image = tuple(c.spec.networks), c.spec.image
        files = {f.object for f in (*c.spec.secrets, *c.spec.configs)}
        labels = any("node.labels" in x for x in c.spec.constraints)
    elif isinstance(c, ContainerRun) and c.spec is not None:
        networks, image = tuple(c.spec.networks), c.spec.image
    elif isinstance(c, ContainerStart):
        networks = c.on
    elif isinstance(c, NetworkCreate | NetworkRecreate):
        swarm = c.spec.driver == "overlay"
    swarm = swarm or any(inv.networks[n].driver == "overlay" for n in networks if n in inv.networks)
    local = not isinstance(c, ServiceRun | ServiceUpdate) and c.kind != "stack"

    def needed(d: Change) -> bool:
        if isinstance(d, NetworkCreate | NetworkRecreate):
            return d.network in networks and (not local or d.host == c.host or d.spec.driver == "overlay")
        if isinstance(d, ImagePull | ImageStream):
            return d.image == image and (not local or d.host == c.host)
        if isinstance(d, FileCreate):
            return d.file.object in files
        if isinstance(d, SwarmInit | SwarmJoin):
            return swarm
        if isinstance(d, NodeLabels):
            return labels
        if isinstance(d, EngineInstall | EngineStart):  # nothing runs on a host without a running engine
            return d.host == c.host or swarm
        return False

    return [d for d in plan.changes if d is not c and needed(d)]


def narrow(plan: Plan, targets: list[Target], inv: Inventory) -> Plan:
    """The plan cut down to the targets and what they need; the rest in `untargeted`."""
    if not targets:
        return plan
    wanted = {(t.kind, t.name) for t in targets}
    keep: list[Change] = [c for c in plan.changes if (c.kind, c.name) in wanted]
    todo = list(keep)
    while todo:  # what they need may need something too (a network needs the swarm)
        for d in _needs(todo.pop(), plan, inv):
            if not any(d is k for k in keep):
                keep.append(d)
                todo.append(d)
    chosen = [c for c in plan.changes if any(c is k for k in keep)]
    left = [c for c in plan.changes if not any(c is k for k in keep)]
    return Plan(chosen, plan.errors, plan.warnings, untargeted=left, targets=[str(t) for t in targets])
