"""Typed views over what a host reports: only the fields dnet uses, read once from `docker inspect` JSON."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dnet import CLUSTER_LABEL, MANAGED_LABEL
from dnet.errors import DnetError

KIND_LABEL = "dnet.kind"
SPEC_LABEL = "dnet.spec"
TASK_ID_LABEL = "com.docker.swarm.task.id"
SERVICE_NAME_LABEL = "com.docker.swarm.service.name"
TASK_NAME_LABEL = "com.docker.swarm.task.name"


class FactsError(DnetError):
    """A host printed something dnet could not read."""

    def __init__(self, host: str, section: str, what: str) -> None:
        self.host, self.section = host, section
        super().__init__(f"{host}: cannot read its {section} ({what}); run the facts command there by hand "
                         "(DNET_DEBUG=1 shows it) and check that docker answers")


class Reader:
    """Reads typed values out of one JSON object, naming the host and section when a value has the wrong type."""

    def __init__(self, host: str, section: str) -> None:
        self.host, self.section = host, section

    def fail(self, what: str) -> FactsError:
        return FactsError(self.host, self.section, what)

    def obj(self, data: Any, key: str) -> dict[str, Any]:
        val = data.get(key) if isinstance(data, dict) else None
        if val is None:
            return {}
        if not isinstance(val, dict):
            raise self.fail(f"'{key}' is a {type(val).__name__}, expected an object")
        return val

    def seq(self, data: dict[str, Any], key: str) -> list[Any]:
        val = data.get(key)
        if val is None:
            return []
        if not isinstance(val, list):
            raise self.fail(f"'{key}' is a {type(val).__name__}, expected a list")
        return val

    def text(self, data: dict[str, Any], key: str, required: bool = False) -> str:
        val = data.get(key)
        if val is None:
            if required:
                raise self.fail(f"'{key}' is missing")
            return ""
        if not isinstance(val, str):
            raise self.fail(f"'{key}' is a {type(val).__name__}, expected a string")
        return val

    def flag(self, data: dict[str, Any], key: str) -> bool:
        val = data.get(key)
        if val is None:
            return False
        if not isinstance(val, bool):
            raise self.fail(f"'{key}' is a {type(val).__name__}, expected true or false")
        return val

    def number(self, data: dict[str, Any], key: str) -> int:
        val = data.get(key)
        if val is None:
            return 0
        if not isinstance(val, int) or isinstance(val, bool):
            raise self.fail(f"'{key}' is a {type(val).__name__}, expected a number")
        return val

    def labels(self, data: dict[str, Any], key: str = "Labels") -> dict[str, str]:
        return {str(k): str(v) for k, v in self.obj(data, key).items()}


@dataclass
class Labelled:
    """Something that carries Docker labels."""

    labels: dict[str, str]

    @property
    def managed(self) -> bool:
        return self.labels.get(MANAGED_LABEL) == "true"

    @property
    def owner(self) -> str:
        """The dnet cluster that made it; "" for things made before clusters were labelled."""
        return self.labels.get(CLUSTER_LABEL, "")

    @property
    def spec_hash(self) -> str:
        return self.labels.get(SPEC_LABEL, "")

    @property
    def kind(self) -> str:
        """What converge made it as (network, container, service); "" for dnet's other things (labs, probes)."""
        return self.labels.get(KIND_LABEL, "")


@dataclass
class Endpoint:
    """A container's attachment to one network."""

    network: str
    network_id: str
    ip: str  # current IPv4 address
    static_ip: str  # the address asked for (IPAMConfig), "" when dynamic
    aliases: list[str]


@dataclass
class ContainerFact(Labelled):
    """A container as `docker inspect` reports it."""

    id: str
    name: str
    image: str
    running: bool
    status: str
    restart_count: int
    restart_policy: str
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)  # `docker inspect`, for import

    @property
    def is_task(self) -> bool:
        return TASK_ID_LABEL in self.labels

    @property
    def service(self) -> str:
        return self.labels.get(SERVICE_NAME_LABEL, "")

    @property
    def task_name(self) -> str:
        return self.labels.get(TASK_NAME_LABEL, "")


@dataclass
class NetworkFact(Labelled):
    """A network as `docker network inspect` reports it."""

    id: str
    name: str
    driver: str
    scope: str
    subnets: list[str]
    internal: bool
    attachable: bool
    mtu: int | None = None  # com.docker.network.driver.mtu when set
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass
class ServiceFact(Labelled):
    """A swarm service as `docker service inspect` reports it."""

    id: str
    name: str
    image: str
    replicas: int | None  # None for global services
    network_targets: list[str]  # network IDs or names the tasks attach to
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass
class ObjectFact(Labelled):
    """A swarm secret or config, or a volume: its name and labels."""

    id: str
    name: str


@dataclass
class NodeFact(Labelled):
    """A swarm node as `docker node inspect` reports it (labels are the node's Spec labels)."""

    id: str
    hostname: str
    role: str
    availability: str
    state: str
    addr: str


@dataclass
class SwarmFact:
    """This host's swarm membership (`docker info` .Swarm)."""

    state: str = "inactive"
    node_id: str = ""
    node_addr: str = ""
    cluster_id: str = ""
    control_available: bool = False
    error: str = ""
    autolock: bool = False
    remote_managers: list[tuple[str, str]] = field(default_factory=list)  # (node ID, address without the port)
    cluster_spec: dict[str, Any] = field(default_factory=dict, repr=False)  # .Cluster: pools, data path port

    @property
    def managers(self) -> list[str]:
        """Node IDs of the managers this node knows (RemoteManagers)."""
        return [nid for nid, _ in self.remote_managers]

    @property
    def manager_addrs(self) -> list[str]:
        return [addr for _, addr in self.remote_managers]
