"""Changes and plans: data only, nothing runs here.

A change is one of a closed set of typed classes; each says what it is (kind, action, phase), describes itself, and
shows its before and after values. How each is carried out lives in dnet.tasks, keyed on the class.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any, ClassVar, Literal

from dnet.plan.desired import ContainerSpec, ForwardRule, NetworkSpec, ServiceSpec

Role = Literal["manager", "worker"]


class Phase(IntEnum):
    """Apply order: lower phases first; within a phase hosts run in parallel."""

    ENGINE = 0
    SWARM = 1
    NODE = 2
    PRUNE = 3
    NETWORK = 4
    IMAGE = 5
    WORKLOAD = 6
    FORWARD = 7
    LEAVE = 8


class Action(StrEnum):
    """What a change does."""

    INSTALL = "install"
    START = "start"
    UPDATE = "update"
    INIT = "init"
    JOIN = "join"
    LEAVE = "leave"
    PROMOTE = "promote"
    DEMOTE = "demote"
    LABEL = "label"
    CREATE = "create"
    RECREATE = "recreate"
    REMOVE = "remove"
    STREAM = "stream"
    PULL = "pull"
    REWRITE = "rewrite"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Change:
    """One thing apply will do on one host. Subclasses are the closed set of change kinds."""

    host: str
    kind: ClassVar[str] = ""
    phase: ClassVar[Phase] = Phase.ENGINE

    @property
    def name(self) -> str:
        return self.kind

    verb: ClassVar[Action] = Action.UPDATE

    @property
    def action(self) -> Action:
        return self.verb

    @property
    def order(self) -> Phase:
        return self.phase

    @property
    def detail(self) -> str:
        return ""

    def before(self) -> Any:
        return None

    def after(self) -> Any:
        return None

    def public(self) -> dict[str, Any]:
        """The JSON form: what, where, why, and the values before and after (never secrets)."""
        return {"host": self.host, "kind": self.kind, "name": self.name, "action": str(self.action),
                "detail": self.detail, "before": self.before(), "after": self.after()}


@dataclass(frozen=True)
class EngineInstall(Change):
    kind: ClassVar[str] = "engine"
    verb: ClassVar[Action] = Action.INSTALL

    @property
    def name(self) -> str:
        return "docker"

    @property
    def detail(self) -> str:
        return "apt-get install docker.io"

    def before(self) -> Any:
        return {"installed": False}

    def after(self) -> Any:
        return {"installed": True, "running": True}


@dataclass(frozen=True)
class EngineStart(Change):
    error: str = ""
    kind: ClassVar[str] = "engine"
    verb: ClassVar[Action] = Action.START

    @property
    def name(self) -> str:
        return "docker"

    @property
    def detail(self) -> str:
        return f"engine not answering: {self.error[:120]}"

    def before(self) -> Any:
        return {"running": False}

    def after(self) -> Any:
        return {"running": True}


@dataclass(frozen=True)
class DaemonUpdate(Change):
    settings: dict[str, Any] = field(default_factory=dict)  # the keys dnet manages, as wanted
    current: dict[str, Any] = field(default_factory=dict)  # the same keys as the host has them
    stops: tuple[str, ...] = ()  # running containers (not swarm tasks) the restart stops, started again after
    moves: tuple[str, ...] = ()  # swarm tasks the drain moves away
    kind: ClassVar[str] = "daemon"
    verb: ClassVar[Action] = Action.UPDATE

    @property
    def name(self) -> str:
        return "/etc/docker/daemon.json"

    @property
    def detail(self) -> str:
        keys = ", ".join(f"{k}: {self.current.get(k)!r} -> {v!r}" for k, v in self.settings.items()
                         if self.current.get(k) != v)
        radius = [f"stops and restarts {', '.join(self.stops)}"] if self.stops else []
        radius += [f"moves tasks {', '.join(self.moves)}"] if self.moves else []
        return f"{keys}; restarts the engine" + (f" ({'; '.join(radius)})" if radius else "")

    def before(self) -> Any:
        return self.current

    def after(self) -> Any:
        return self.settings


RESTART = " (after restarting the engine: it still holds 7946/tcp from the swarm it left, so a new swarm's gossip " \
          "could not start and overlays would not reach this host)"


@dataclass(frozen=True)
class SwarmInit(Change):
    pools: tuple[str, ...] = ()
    restart: bool = False  # the engine still holds 7946 from a swarm it left: restarted first
    kind: ClassVar[str] = "swarm"
    phase: ClassVar[Phase] = Phase.SWARM
    verb: ClassVar[Action] = Action.INIT

    @property
    def detail(self) -> str:
        return f"first manager; overlay pools {', '.join(self.pools) or 'default pools'}" + (RESTART if self.restart
                                                                                              else "")

    def before(self) -> Any:
        return {"swarm": "inactive"}

    def after(self) -> Any:
        return {"swarm": "active", "role": "manager"}


@dataclass(frozen=True)
class SwarmJoin(Change):
    role: Role = "worker"
    stuck: str = ""  # a join to this swarm that never finished ('pending' or 'error'): left first, then joined again
    restart: bool = False  # the engine still holds 7946 from a swarm it left: restarted first
    kind: ClassVar[str] = "swarm"
    phase: ClassVar[Phase] = Phase.SWARM
    verb: ClassVar[Action] = Action.JOIN

    @property
    def detail(self) -> str:
        return f"as {self.role}" + (f" (after leaving a join stuck in '{self.stuck}')" if self.stuck else "") + \
            (RESTART if self.restart else "")

    def before(self) -> Any:
        return {"swarm": self.stuck or "inactive"}

    def after(self) -> Any:
        return {"swarm": "active", "role": self.role}


@dataclass(frozen=True)
class SwarmLeave(Change):
    kind: ClassVar[str] = "swarm"
    phase: ClassVar[Phase] = Phase.LEAVE
    verb: ClassVar[Action] = Action.LEAVE

    @property
    def detail(self) -> str:
        return "leave the swarm"

    def before(self) -> Any:
        return {"swarm": "active"}

    def after(self) -> Any:
        return {"swarm": "inactive"}


@dataclass(frozen=True)
class NodeRole(Change):
    """Promote or demote a node; runs on a manager (host), acts on target."""

    target: str = ""
    role: Role = "worker"
    current: str = ""
    kind: ClassVar[str] = "node"
    phase: ClassVar[Phase] = Phase.NODE

    @property
    def name(self) -> str:
        return self.target

    @property
    def action(self) -> Action:
        return Action.PROMOTE if self.role == "manager" else Action.DEMOTE

    @property
    def detail(self) -> str:
        return f"{self.current} -> {self.role}"

    def before(self) -> Any:
        return {"role": self.current}

    def after(self) -> Any:
        return {"role": self.role}


@dataclass(frozen=True)
class NodeAvailability(Change):
    """Set target's swarm availability (active, pause, drain); runs on a manager (host)."""

    target: str = ""
    availability: str = "active"
    current: str = ""
    kind: ClassVar[str] = "node"
    phase: ClassVar[Phase] = Phase.NODE
    verb: ClassVar[Action] = Action.UPDATE

    @property
    def name(self) -> str:
        return self.target

    @property
    def detail(self) -> str:
        return f"availability {self.current} -> {self.availability}"

    def before(self) -> Any:
        return {"availability": self.current}

    def after(self) -> Any:
        return {"availability": self.availability}


@dataclass(frozen=True)
class NodeRemove(Change):
    """Remove a swarm node the inventory does not list (apply --prune-nodes); runs on a manager (host)."""

    node_id: str = ""
    hostname: str = ""
    manager: bool = False
    kind: ClassVar[str] = "node"
    phase: ClassVar[Phase] = Phase.PRUNE
    verb: ClassVar[Action] = Action.REMOVE

    @property
    def name(self) -> str:
        return self.hostname or self.node_id[:12]

    @property
    def detail(self) -> str:
        return f"not in the inventory: drain, {'demote, ' if self.manager else ''}docker node rm"

    def before(self) -> Any:
        return {"node": self.node_id, "hostname": self.hostname}

    def after(self) -> Any:
        return None


@dataclass(frozen=True)
class NodeLabels(Change):
    """Set the node labels dnet owns on target; runs on a manager (host)."""

    target: str = ""
    add: dict[str, str] = field(default_factory=dict)
    rm: tuple[str, ...] = ()
    owned: str = ""  # comma-separated keys dnet manages after this change
    current: dict[str, str] = field(default_factory=dict)
    kind: ClassVar[str] = "node"
    phase: ClassVar[Phase] = Phase.NODE
    verb: ClassVar[Action] = Action.LABEL

    @property
    def name(self) -> str:
        return self.target

    @property
    def detail(self) -> str:
        return " ".join([f"+{k}={v}" for k, v in self.add.items()] + [f"-{k}" for k in self.rm]) or \
            "record owned labels"

    def before(self) -> Any:
        return self.current

    def after(self) -> Any:
        out = {k: v for k, v in self.current.items() if k not in self.rm}
        return {**out, **self.add}


@dataclass(frozen=True)
class Attachment:
    """A plain container attached to a network (to reconnect after the network is recreated)."""

    host: str
    container: str
    aliases: tuple[str, ...]
    ip: str
    managed: bool


@dataclass(frozen=True)
class NetworkCreate(Change):
    network: str = ""
    spec: NetworkSpec | None = None
    kind: ClassVar[str] = "network"
    phase: ClassVar[Phase] = Phase.NETWORK
    verb: ClassVar[Action] = Action.CREATE

    @property
    def name(self) -> str:
        return self.network

    @property
    def detail(self) -> str:
        return self.spec.describe() if self.spec else ""

    def after(self) -> Any:
        return self.spec.as_dict() if self.spec else None


@dataclass(frozen=True)
class NetworkRecreate(Change):
    network: str = ""
    spec: NetworkSpec | None = None
    current: dict[str, Any] = field(default_factory=dict)
    containers: tuple[Attachment, ...] = ()
    services: tuple[str, ...] = ()  # services kept: detached and attached again
    services_rm: tuple[str, ...] = ()  # dnet's services: removed here, created again from the inventory
    kind: ClassVar[str] = "network"
    phase: ClassVar[Phase] = Phase.NETWORK
    verb: ClassVar[Action] = Action.RECREATE

    @property
    def name(self) -> str:
        return self.network

    @property
    def detail(self) -> str:
        who = ", ".join([f"container {c.container}@{c.host}" for c in self.containers] +
                        [f"service {s}" for s in sorted(self.services + self.services_rm)])
        return f"{self.spec.describe() if self.spec else ''}; disconnects and reconnects: {who or 'nothing'}"

    def before(self) -> Any:
        return self.current

    def after(self) -> Any:
        return self.spec.as_dict() if self.spec else None


@dataclass(frozen=True)
class Removal(Change):
    """A change that removes something: it exists before, and not after."""

    verb: ClassVar[Action] = Action.REMOVE

    def before(self) -> Any:
        return {"exists": True}

    def after(self) -> Any:
        return {"exists": False}


@dataclass(frozen=True)
class Rebuild(Change):
    """Create a workload, or remove and create it again (recreate); `current` is what runs now."""

    recreate: bool = False
    why: str = ""
    current: dict[str, Any] | None = None

    @property
    def action(self) -> Action:
        return Action.RECREATE if self.recreate else Action.CREATE

    def before(self) -> Any:
        return self.current


@dataclass(frozen=True)
class NetworkRemove(Removal):
    network: str = ""
    why: str = "no longer in the inventory"
    pruning: bool = True  # prune phase during apply; network phase (after workloads) during destroy
    kind: ClassVar[str] = "network"

    @property
    def name(self) -> str:
        return self.network

    @property
    def detail(self) -> str:
        return self.why

    @property
    def order(self) -> Phase:
        return Phase.PRUNE if self.pruning else Phase.NETWORK


@dataclass(frozen=True)
class ImageStream(Change):
    image: str = ""
    image_id: str = ""
    current: str | None = None
    kind: ClassVar[str] = "image"
    phase: ClassVar[Phase] = Phase.IMAGE
    verb: ClassVar[Action] = Action.STREAM

    @property
    def name(self) -> str:
        return self.image

    @property
    def detail(self) -> str:
        return f"from this machine ({self.image_id[7:19]})"

    def before(self) -> Any:
        return {"id": self.current}

    def after(self) -> Any:
        return {"id": self.image_id}


@dataclass(frozen=True)
class ImagePull(Change):
    image: str = ""
    kind: ClassVar[str] = "image"
    phase: ClassVar[Phase] = Phase.IMAGE
    verb: ClassVar[Action] = Action.PULL

    @property
    def name(self) -> str:
        return self.image

    @property
    def detail(self) -> str:
        return "from its registry"

    def before(self) -> Any:
        return {"present": False}

    def after(self) -> Any:
        return {"present": True}


@dataclass(frozen=True)
class ContainerRun(Rebuild):
    """Create a container, or remove and create it again (recreate)."""

    spec: ContainerSpec | None = None
    kind: ClassVar[str] = "container"
    phase: ClassVar[Phase] = Phase.WORKLOAD

    @property
    def name(self) -> str:
        return self.spec.name if self.spec else ""

    @property
    def detail(self) -> str:
        if self.why:
            return self.why
        s = self.spec
        assert s is not None
        return f"{s.image} on {', '.join(s.networks) or 'default bridge'}" + \
            (f", ports {', '.join(s.ports)}" if s.ports else "")

    def after(self) -> Any:
        return self.spec.as_dict() if self.spec else None


@dataclass(frozen=True)
class ContainerStart(Change):
    container: str = ""
    kind: ClassVar[str] = "container"
    phase: ClassVar[Phase] = Phase.WORKLOAD
    verb: ClassVar[Action] = Action.START

    @property
    def name(self) -> str:
        return self.container

    @property
    def detail(self) -> str:
        return "stopped"

    def before(self) -> Any:
        return {"running": False}

    def after(self) -> Any:
        return {"running": True}


@dataclass(frozen=True)
class ContainerRemove(Removal):
    container: str = ""
    why: str = "no longer in the inventory"
    kind: ClassVar[str] = "container"
    phase: ClassVar[Phase] = Phase.PRUNE

    @property
    def name(self) -> str:
        return self.container

    @property
    def detail(self) -> str:
        return self.why


@dataclass(frozen=True)
class ServiceRun(Rebuild):
    """Create a service, or remove and create it again (recreate). Runs on a manager."""

    spec: ServiceSpec | None = None
    kind: ClassVar[str] = "service"
    phase: ClassVar[Phase] = Phase.WORKLOAD

    @property
    def name(self) -> str:
        return self.spec.name if self.spec else ""

    @property
    def detail(self) -> str:
        s = self.spec
        assert s is not None
        base = f"{s.image} x{s.replicas} on {', '.join(s.networks) or 'no network'}"
        return f"{base} ({self.why})" if self.why else base

    def after(self) -> Any:
        return self.spec.as_dict() if self.spec else None


@dataclass(frozen=True)
class ServiceRemove(Removal):
    service: str = ""
    why: str = "no longer in the inventory"
    kind: ClassVar[str] = "service"
    phase: ClassVar[Phase] = Phase.PRUNE

    @property
    def name(self) -> str:
        return self.service

    @property
    def detail(self) -> str:
        return self.why


@dataclass(frozen=True)
class ForwardRewrite(Change):
    rules: tuple[ForwardRule, ...] = ()
    current: tuple[str, ...] = ()  # the rule comments the host has now
    keep: tuple[tuple[str, str], ...] = ()  # (table, rule) of other dnet clusters' forwards, written back as they are
    kind: ClassVar[str] = "forward"
    phase: ClassVar[Phase] = Phase.FORWARD
    verb: ClassVar[Action] = Action.REWRITE

    @property
    def name(self) -> str:
        return f"{len(self.rules)} forwards"

    @property
    def detail(self) -> str:
        others = sum(ln.startswith("-A DNET-FWD ") for _, ln in self.keep)
        kept = f" (other clusters' {others} kept)" if others else ""
        return ("; ".join(map(str, self.rules)) or "none") + kept

    def before(self) -> Any:
        return list(self.current)

    def after(self) -> Any:
        return [r.comment for r in self.rules]


@dataclass(frozen=True)
class ForwardRemove(Change):
    why: str = "remove all"
    label: str = "0 forwards"
    kind: ClassVar[str] = "forward"
    phase: ClassVar[Phase] = Phase.FORWARD
    verb: ClassVar[Action] = Action.REMOVE

    @property
    def name(self) -> str:
        return self.label

    @property
    def detail(self) -> str:
        return self.why

    def after(self) -> Any:
        return []


@dataclass
class Plan:
    """Ordered changes plus problems that block an apply and warnings that do not."""

    changes: list[Change] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add(self, *changes: Change) -> None:
        self.changes.extend(changes)

    def ordered(self) -> list[Change]:
        return sorted(self.changes, key=lambda c: c.order)

    def public(self) -> dict[str, Any]:
        return {"changes": [c.public() for c in self.ordered()], "errors": self.errors, "warnings": self.warnings,
                "summary": {"changes": len(self.changes), "errors": len(self.errors)}}
