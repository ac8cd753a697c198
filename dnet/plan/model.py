"""Changes and plans: data only, nothing runs here.

A change is one of a closed set of typed classes; each says what it is (kind, action, phase), describes itself, and
shows its before and after values. How each is carried out lives in dnet.tasks, keyed on the class.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Any, ClassVar, Literal

from dnet.images import PROBE_IMAGE
from dnet.plan.desired import ContainerSpec, ForwardRule, NetworkSpec, ServiceSpec
from dnet.plan.runspec import FileSpec

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
    RETIRE = 8  # what workloads no longer use: old secrets and configs, volumes on destroy --volumes
    LEAVE = 9


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
    ADOPT = "adopt"  # records ownership only: nothing on the hosts runs differently
    REWRITE = "rewrite"

    def __str__(self) -> str:
        return self.value


Lane = Literal["swarm", "local", "networks"]


@dataclass(frozen=True, kw_only=True)
class Change:
    """One thing apply will do on one host. Subclasses are the closed set of change kinds; each names its kind,
    phase, action and lane in its class statement: `class SwarmInit(Change, kind="swarm", phase=Phase.SWARM, ...)`.

    - host: where the commands run; target: the node it acts on when that is another one (a manager promoting,
      draining or labelling a node), so `--limit node3` keeps node3's changes whichever manager runs them;
    - lane: "swarm" changes need the swarm (or go with it); "local" ones need nothing of it and run beside it;
      "networks" ones are local when every network they use is host-scoped (see converge.local_lane).
    """

    host: str
    target: str = ""
    kind: ClassVar[str] = ""
    lane: ClassVar[Lane] = "swarm"
    _phase: ClassVar[Phase] = Phase.ENGINE
    _action: ClassVar[Action] = Action.UPDATE

    def __init_subclass__(cls, *, kind: str = "", phase: Phase | None = None, action: Action | None = None,
                          lane: Lane | None = None, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls.kind = kind or cls.kind
        cls._phase = cls._phase if phase is None else phase
        cls._action = action or cls._action
        cls.lane = lane or cls.lane

    @property
    def name(self) -> str:
        return self.target or self.kind

    @property
    def action(self) -> Action:
        return self._action

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def acts_on(self) -> str:
        """The host this change is about: its target, else its own host (what --limit selects by)."""
        return self.target or self.host

    def networks(self) -> tuple[str, ...]:
        """The networks a "networks"-lane change uses."""
        return ()

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


@dataclass(frozen=True, kw_only=True)
class EngineInstall(Change, kind="engine", action=Action.INSTALL):
    package: str = "docker.io"
    version: str = ""  # a version prefix; "" for what apt offers

    @property
    def name(self) -> str:
        return "docker"

    @property
    def detail(self) -> str:
        return f"apt-get install {self.package}" + (f" {self.version}.* (held)" if self.version else "")

    def before(self) -> Any:
        return {"installed": False}

    def after(self) -> Any:
        return {"installed": True, "running": True}


@dataclass(frozen=True, kw_only=True)
class EnginePackage(Change, kind="engine", action=Action.UPDATE):
    """Bring the engine's package to the declared version (a rolling engine restart) and hold it; or only hold it,
    when the version is already right."""

    package: str
    version: str  # the declared prefix
    current: str  # the installed version ("" when another package is installed)
    hold_only: bool = False

    @property
    def name(self) -> str:
        return self.package

    @property
    def detail(self) -> str:
        if self.hold_only:
            return f"hold {self.package} at {self.current} (apt-mark hold)"
        return f"{self.current or 'not installed'} -> {self.version}.*; restarts the engine (held after)"

    def before(self) -> Any:
        return {"version": self.current or None}

    def after(self) -> Any:
        return {"version": f"{self.version}.*", "held": True}


@dataclass(frozen=True, kw_only=True)
class EngineStart(Change, kind="engine", action=Action.START):
    error: str

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


@dataclass(frozen=True, kw_only=True)
class DaemonUpdate(Change, kind="daemon", action=Action.UPDATE):
    settings: dict[str, Any]  # the keys dnet manages, as wanted
    current: dict[str, Any]  # the same keys as the host has them
    stops: tuple[str, ...] = ()  # running containers (not swarm tasks) the restart stops, started again after
    moves: tuple[str, ...] = ()  # swarm tasks the drain moves away

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


@dataclass(frozen=True, kw_only=True)
class SwarmInit(Change, kind="swarm", phase=Phase.SWARM, action=Action.INIT):
    pools: tuple[str, ...] = ()
    restart: bool = False  # the engine still holds 7946 from a swarm it left: restarted first

    @property
    def detail(self) -> str:
        return f"first manager; overlay pools {', '.join(self.pools) or 'default pools'}" + (RESTART if self.restart
                                                                                              else "")

    def before(self) -> Any:
        return {"swarm": "inactive"}

    def after(self) -> Any:
        return {"swarm": "active", "role": "manager"}


@dataclass(frozen=True, kw_only=True)
class SwarmJoin(Change, kind="swarm", phase=Phase.SWARM, action=Action.JOIN):
    role: Role
    stuck: str = ""  # a join to this swarm that never finished ('pending' or 'error'): left first, then joined again
    restart: bool = False  # the engine still holds 7946 from a swarm it left: restarted first

    @property
    def detail(self) -> str:
        return f"as {self.role}" + (f" (after leaving a join stuck in '{self.stuck}')" if self.stuck else "") + \
            (RESTART if self.restart else "")

    def before(self) -> Any:
        return {"swarm": self.stuck or "inactive"}

    def after(self) -> Any:
        return {"swarm": "active", "role": self.role}


@dataclass(frozen=True, kw_only=True)
class SwarmLeave(Change, kind="swarm", phase=Phase.LEAVE, action=Action.LEAVE):

    @property
    def detail(self) -> str:
        return "leave the swarm"

    def before(self) -> Any:
        return {"swarm": "active"}

    def after(self) -> Any:
        return {"swarm": "inactive"}


@dataclass(frozen=True, kw_only=True)
class NodeRole(Change, kind="node", phase=Phase.NODE):
    """Promote or demote a node; runs on a manager (host), acts on target."""

    target: str = field()  # required here (a plain `target: str` would inherit the base default)
    role: Role
    current: str

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


@dataclass(frozen=True, kw_only=True)
class NodeAvailability(Change, kind="node", phase=Phase.NODE, action=Action.UPDATE):
    """Set target's swarm availability (active, pause, drain); runs on a manager (host)."""

    target: str = field()  # required here (a plain `target: str` would inherit the base default)
    availability: str
    current: str

    @property
    def detail(self) -> str:
        return f"availability {self.current} -> {self.availability}"

    def before(self) -> Any:
        return {"availability": self.current}

    def after(self) -> Any:
        return {"availability": self.availability}


@dataclass(frozen=True, kw_only=True)
class NodeRemove(Change, kind="node", phase=Phase.PRUNE, action=Action.REMOVE):
    """Remove a swarm node the inventory does not list (apply --prune-nodes); runs on a manager (host)."""

    node_id: str
    hostname: str
    manager: bool

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


@dataclass(frozen=True, kw_only=True)
class NodeLabels(Change, kind="node", phase=Phase.NODE, action=Action.LABEL):
    """Set the node labels dnet owns on target; runs on a manager (host)."""

    target: str = field()  # required here (a plain `target: str` would inherit the base default)
    add: dict[str, str]
    rm: tuple[str, ...]
    owned: str  # comma-separated keys dnet manages after this change
    current: dict[str, str]

    @property
    def action(self) -> Action:
        return self._action if self.add or self.rm else Action.ADOPT  # only the list of labels dnet owns

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


@dataclass(frozen=True, kw_only=True)
class NetworkCreate(Change, kind="network", phase=Phase.NETWORK, action=Action.CREATE, lane="networks"):
    network: str
    spec: NetworkSpec

    def networks(self) -> tuple[str, ...]:
        return (self.network,)

    @property
    def name(self) -> str:
        return self.network

    @property
    def detail(self) -> str:
        return self.spec.describe()

    def after(self) -> Any:
        return self.spec.as_dict()


@dataclass(frozen=True, kw_only=True)
class NetworkRecreate(Change, kind="network", phase=Phase.NETWORK, action=Action.RECREATE):
    network: str
    spec: NetworkSpec
    current: dict[str, Any]
    containers: tuple[Attachment, ...] = ()
    services: tuple[str, ...] = ()  # services kept: detached and attached again
    services_rm: tuple[str, ...] = ()  # dnet's services: removed here, created again from the inventory

    @property
    def name(self) -> str:
        return self.network

    @property
    def detail(self) -> str:
        who = ", ".join([f"container {c.container}@{c.host}" for c in self.containers] +
                        [f"service {s}" for s in sorted(self.services + self.services_rm)])
        return f"{self.spec.describe()}; disconnects and reconnects: {who or 'nothing'}"

    def before(self) -> Any:
        return self.current

    def after(self) -> Any:
        return self.spec.as_dict()


@dataclass(frozen=True, kw_only=True)
class Removal(Change, action=Action.REMOVE):
    """A change that removes something: it exists before, and not after."""

    def before(self) -> Any:
        return {"exists": True}

    def after(self) -> Any:
        return {"exists": False}


@dataclass(frozen=True, kw_only=True)
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


@dataclass(frozen=True, kw_only=True)
class NetworkRemove(Removal, kind="network"):
    network: str
    why: str = "no longer in the inventory"
    pruning: bool = True  # prune phase during apply; network phase (after workloads) during destroy

    @property
    def name(self) -> str:
        return self.network

    @property
    def detail(self) -> str:
        return self.why

    @property
    def phase(self) -> Phase:
        return Phase.PRUNE if self.pruning else Phase.NETWORK


@dataclass(frozen=True, kw_only=True)
class ImageStream(Change, kind="image", phase=Phase.IMAGE, action=Action.STREAM, lane="local"):
    image: str
    image_id: str
    current: str | None

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


@dataclass(frozen=True, kw_only=True)
class ImagePull(Change, kind="image", phase=Phase.IMAGE, action=Action.PULL, lane="local"):
    image: str

    @property
    def name(self) -> str:
        return self.image

    @property
    def detail(self) -> str:
        if self.image == PROBE_IMAGE:
            return "dnet's probe: assembled on the host from its busybox, ping and openssl"
        return "from its registry"

    def before(self) -> Any:
        return {"present": False}

    def after(self) -> Any:
        return {"present": True}


@dataclass(frozen=True, kw_only=True)
class ContainerRun(Rebuild, kind="container", phase=Phase.WORKLOAD, lane="networks"):
    """Create a container, or remove and create it again (recreate)."""

    spec: ContainerSpec

    @property
    def name(self) -> str:
        return self.spec.name

    def networks(self) -> tuple[str, ...]:
        return tuple(self.spec.networks)

    @property
    def detail(self) -> str:
        if self.why:
            return self.why
        s = self.spec
        return f"{s.image} on {', '.join(s.networks) or 'default bridge'}" + \
            (f", ports {', '.join(s.ports)}" if s.ports else "")

    def after(self) -> Any:
        return self.spec.as_dict() if self.spec else None


@dataclass(frozen=True, kw_only=True)
class ContainerStart(Change, kind="container", phase=Phase.WORKLOAD, action=Action.START, lane="networks"):
    container: str
    on: tuple[str, ...]  # the networks it uses

    def networks(self) -> tuple[str, ...]:
        return self.on

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


@dataclass(frozen=True, kw_only=True)
class ContainerRemove(Removal, kind="container", phase=Phase.PRUNE):
    container: str
    why: str = "no longer in the inventory"

    @property
    def name(self) -> str:
        return self.container

    @property
    def detail(self) -> str:
        return self.why


@dataclass(frozen=True, kw_only=True)
class ServiceRun(Rebuild, kind="service", phase=Phase.WORKLOAD):
    """Create a service, or remove and create it again (recreate). Runs on a manager."""

    spec: ServiceSpec

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def detail(self) -> str:
        s = self.spec
        base = f"{s.image} x{s.replicas} on {', '.join(s.networks) or 'no network'}"
        return f"{base} ({self.why})" if self.why else base

    def after(self) -> Any:
        return self.spec.as_dict() if self.spec else None


def field_change(name: str, old: Any, new: Any) -> str:
    """One changed field as the plan shows it: env and labels key by key, the rest as before -> after."""
    if isinstance(old, dict) and isinstance(new, dict) and name in ("env", "labels"):
        parts = [f"{k} {_short(old.get(k))} -> {_short(new.get(k))}" for k in sorted({*old, *new})
                 if old.get(k) != new.get(k)]
        return f"{name} " + ", ".join(parts)
    return f"{name} {_short(old)} -> {_short(new)}"


def _short(v: Any) -> str:
    if v is None:
        return "unset"
    text = v if isinstance(v, str) else repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True, kw_only=True)
class ServiceUpdate(Change, kind="service", phase=Phase.WORKLOAD, action=Action.UPDATE):
    """Change a service in place (`docker service update`): its tasks roll by its update policy."""

    spec: ServiceSpec
    old: dict[str, Any]  # what it was made with (its dnet.shown label)
    fields: tuple[str, ...]  # the fields that differ

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def detail(self) -> str:
        new = self.spec.as_dict()
        return "rolling update: " + "; ".join(field_change(f, self.old.get(f), new.get(f)) for f in self.fields)

    def before(self) -> Any:
        return {f: self.old.get(f) for f in self.fields}

    def after(self) -> Any:
        new = self.spec.as_dict()
        return {f: new.get(f) for f in self.fields}


@dataclass(frozen=True, kw_only=True)
class FileCreate(Change, kind="secret", phase=Phase.IMAGE, action=Action.CREATE):
    """Make a swarm secret or config from a file on this machine (its contents go on stdin)."""

    file: FileSpec
    what: Literal["secret", "config"] = "secret"

    @property
    def name(self) -> str:
        return self.file.object

    @property
    def detail(self) -> str:
        return f"{self.what} {self.file.name} from {self.file.path}"

    def after(self) -> Any:
        return {"name": self.file.object, "target": self.file.target}


@dataclass(frozen=True, kw_only=True)
class FileRemove(Removal, kind="secret", phase=Phase.RETIRE):
    """Remove a swarm secret or config dnet made that no service uses any more."""

    object: str
    what: Literal["secret", "config"] = "secret"
    why: str = "no service uses it"

    @property
    def name(self) -> str:
        return self.object

    @property
    def detail(self) -> str:
        return f"{self.what}: {self.why}"


@dataclass(frozen=True, kw_only=True)
class VolumeRemove(Removal, kind="volume", phase=Phase.RETIRE, lane="local"):
    """Remove a named volume dnet made (destroy --volumes only): its data is gone after this."""

    volume: str
    why: str = "dnet-managed volume (--volumes): its data is deleted"

    @property
    def name(self) -> str:
        return self.volume

    @property
    def detail(self) -> str:
        return self.why


@dataclass(frozen=True, kw_only=True)
class ServiceRemove(Removal, kind="service", phase=Phase.PRUNE):
    service: str
    why: str = "no longer in the inventory"

    @property
    def name(self) -> str:
        return self.service

    @property
    def detail(self) -> str:
        return self.why


@dataclass(frozen=True, kw_only=True)
class ForwardRewrite(Change, kind="forward", phase=Phase.FORWARD, action=Action.REWRITE, lane="local"):
    rules: tuple[ForwardRule, ...]
    current: tuple[str, ...]  # the rule comments the host has now
    keep: tuple[tuple[str, str], ...]  # (table, rule) of other dnet clusters' forwards, written back as they are

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


@dataclass(frozen=True, kw_only=True)
class ForwardRemove(Change, kind="forward", phase=Phase.FORWARD, action=Action.REMOVE, lane="local"):
    why: str = "remove all"
    label: str = "0 forwards"

    @property
    def name(self) -> str:
        return self.label

    @property
    def detail(self) -> str:
        return self.why

    def after(self) -> Any:
        return []


@dataclass(frozen=True, kw_only=True)
class StackDeploy(Change, kind="stack", phase=Phase.WORKLOAD, action=Action.CREATE):
    """`docker stack deploy --prune` of a compose file (and the files it names, sent as one bundle) on a manager;
    a swarm config records what was deployed, so that an unchanged file is no change."""

    stack: str
    path: str  # the compose file on this machine
    digest: str  # of the compose file and the files it names
    services: dict[str, str]  # service -> digest of its section, as deployed by this change
    current: dict[str, str] = field(default_factory=dict)  # as the last deploy recorded them
    record: str
    replaces: tuple[str, ...] = ()
    adopt: bool = False  # the stack runs as the file says: record it, deploy nothing

    @property
    def name(self) -> str:
        return self.stack

    @property
    def action(self) -> Action:
        return Action.ADOPT if self.adopt else Action.UPDATE if self.replaces else Action.CREATE

    @property
    def detail(self) -> str:
        if self.adopt:
            return f"adopt: it runs as {Path(self.path).name} says; recorded as deployed (nothing redeployed)"
        new = [s for s in self.services if s not in self.current]
        changed = [s for s in self.services if s in self.current and self.current[s] != self.services[s]]
        gone = [s for s in self.current if s not in self.services]
        parts = [f"{label} {', '.join(names)}" for label, names in (("new:", new), ("changed:", changed),
                                                                     ("removed:", gone)) if names]
        return f"docker stack deploy {Path(self.path).name}: " + ("; ".join(parts) or "the stack's other settings")

    def before(self) -> Any:
        return dict(self.current) if self.replaces else None

    def after(self) -> Any:
        return dict(self.services)


@dataclass(frozen=True, kw_only=True)
class StackRemove(Removal, kind="stack", phase=Phase.PRUNE):
    """`docker stack rm` of a stack dnet deployed, and its record."""

    stack: str
    records: tuple[str, ...] = ()
    why: str = "no longer in the inventory"

    @property
    def name(self) -> str:
        return self.stack

    @property
    def detail(self) -> str:
        return f"docker stack rm: {self.why}"


@dataclass(frozen=True, kw_only=True)
class Adopt(Change, kind="ownership", phase=Phase.RETIRE, action=Action.ADOPT, lane="local"):
    """Record which objects dnet did not make belong to the inventory's cluster: a swarm config (for services and
    overlay networks) or a volume (for a host's containers and bridge networks), labelled with their IDs, kept by
    the cluster itself. Replaces the record it supersedes; nothing is restarted."""

    store: Literal["config", "volume"]
    record: str  # the new record's name
    owned: tuple[tuple[str, str, str], ...]  # (ID, kind, name) of everything the record lists
    replaces: tuple[str, ...] = ()
    new: tuple[str, ...] = ()  # names of the objects adopted by this change

    @property
    def name(self) -> str:
        return f"{len(self.new)} adopted" if self.new else f"{len(self.owned)} owned"

    @property
    def detail(self) -> str:
        what = f"adopt {', '.join(self.new)}" if self.new else "rewrite the ownership record"
        return f"{what} (ownership recorded in {self.store} {self.record}; nothing restarted)"

    def before(self) -> Any:
        return list(self.replaces)

    def after(self) -> Any:
        return sorted(f"{k} {n}" for _, k, n in self.owned)


@dataclass
class Plan:
    """Ordered changes plus problems that block an apply and warnings that do not."""

    changes: list[Change] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    untargeted: list[Change] = field(default_factory=list)  # pending, but left out by --target
    targets: list[str] = field(default_factory=list)  # --target KIND.NAME values
    overrides: dict[str, str] = field(default_factory=dict)  # `set:` values that override the file: path -> value

    def add(self, *changes: Change) -> None:
        self.changes.extend(changes)

    def ordered(self) -> list[Change]:
        return sorted(self.changes, key=lambda c: c.phase)

    @property
    def pending(self) -> list[Change]:
        """The changes that change what runs (adoptions only record ownership)."""
        return [c for c in self.changes if c.action != Action.ADOPT]

    def public(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.targets or self.overrides:  # a plan narrowed or overridden says so, in the same three keys
            extra = {"targets": self.targets,
                     "not_targeted": [c.public() for c in sorted(self.untargeted, key=lambda c: c.phase)],
                     "overrides": self.overrides}
        return {"changes": [c.public() for c in self.ordered()], "errors": self.errors, "warnings": self.warnings,
                **extra, "summary": {"changes": len(self.changes), "errors": len(self.errors),
                                     "adopt": len(self.changes) - len(self.pending)}}
