"""The inventory schema: frozen pydantic models, one per section of the YAML."""
from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from dnet.inventory.base import Command, Labels, Model, Name
from dnet.inventory.workload import FileRef, ImageSource, Placement, RollbackPolicy, RunOptions, UpdatePolicy

Port = Annotated[int, Field(strict=True, ge=1, le=65535)]
Protocol = Literal["tcp", "udp"]


def _ip(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected an IP address as a string, got {value!r}")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"'{value}' is not a valid IP address") from None


def _cidr(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a CIDR like 10.0.0.0/24, got {value!r}")
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"'{value}' is not a valid network in CIDR form ({exc})") from None
    if net.prefixlen == 0:
        raise ValueError(f"'{value}' covers every address; give a real subnet such as 10.0.0.0/24")
    return str(net)


# Docker's reference grammar (distribution/reference): [domain[:port]/]path[:tag][@digest]; never starts with '-'.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?"
IMAGE_RE = re.compile(rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*(?::[\w][\w.-]{{0,127}})?"
                      r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?")


def _image(value: Any) -> Any:
    if isinstance(value, str) and not IMAGE_RE.fullmatch(value):
        raise ValueError(f"'{value}' is not an image reference; write for example nginx:1.27 or "
                         "registry.example:5000/team/app:2.1")
    return value


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"expected the number 1, got {value!r}")
    return value


def _address(value: Any) -> Any:
    """An IP, a DNS name or 'local'; something made only of digits and dots must be a real IPv4 address."""
    if isinstance(value, str) and re.fullmatch(r"[0-9.]+", value.strip()):
        try:
            ipaddress.IPv4Address(value.strip())
        except ValueError:
            raise ValueError(f"'{value}' looks like an IPv4 address but is not one "
                             "(four numbers 0-255 separated by dots)") from None
    return value


IP = Annotated[str, BeforeValidator(_ip)]
CIDR = Annotated[str, BeforeValidator(_cidr)]
Image = Annotated[str, BeforeValidator(_image)]


class AddressPool(Model):
    base: CIDR
    size: Annotated[int, Field(strict=True, ge=1, le=32)]

    @model_validator(mode="after")
    def _size_fits(self) -> AddressPool:
        if self.size < ipaddress.ip_network(self.base).prefixlen:
            raise ValueError(f"size /{self.size} is larger than the pool {self.base}")
        return self


MODELLED = {"mtu": "mtu", "dns": "dns", "default-address-pools": "default_address_pools"}
# daemon.json keys that would stop the engine from starting the way the host's init starts it, or lose its data
REFUSED = {"hosts": "the init system already passes -H to dockerd, and the engine will not start with both",
           "data-root": "moving the data root hides every image, volume and container the engine has"}


def _json_value(value: Any, where: str = "") -> None:
    if value is None or isinstance(value, (str, bool, int, float)):
        return
    if isinstance(value, list):
        for i, v in enumerate(value):
            _json_value(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"key {k!r}{' in ' + where if where else ''} must be a string")
            _json_value(v, f"{where}.{k}" if where else k)
        return
    raise ValueError(f"{where or 'value'}: {value} is a {type(value).__name__}, not a JSON value; quote it")


def _daemon(value: Any) -> Any:
    if isinstance(value, dict):
        _json_value(value)
        for k in value:
            if k in REFUSED:
                raise ValueError(f"daemon.json key '{k}' is refused: {REFUSED[k]}")
    return value


class DockerEngine(Model):
    mtu: Annotated[int, Field(strict=True, ge=576, le=9216)] | None = None
    dns: list[IP] = []
    default_address_pools: list[AddressPool] = []
    daemon: Annotated[dict[str, Any], BeforeValidator(_daemon)] = {}
    package: Literal["docker.io", "docker-ce"] | None = None
    version: Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+){0,2}$")] | None = None

    @model_validator(mode="after")
    def _not_both_ways(self) -> DockerEngine:
        for key, field in MODELLED.items():
            if key in self.daemon and field in self.model_fields_set:
                raise ValueError(f"'{key}' is set both as docker.{field} and in docker.daemon; keep one")
        return self


Transport = Literal["paramiko", "openssh"]


class Defaults(Model):
    user: str | None = None
    port: Port | None = None
    identity_file: str | None = None
    known_hosts: str | None = None
    transport: Transport | None = None
    docker: DockerEngine = DockerEngine.model_construct()  # not DockerEngine(): that builds validators at import
    image_source: ImageSource = "auto"


class Host(Model):
    address: Annotated[str, BeforeValidator(_address)] | None = None
    port: Port | None = None
    user: str | None = None
    identity_file: str | None = None
    transport: Transport | None = None
    roles: list[Literal["manager", "worker"]] = []
    labels: Labels = {}
    advertise_addr: IP | None = None
    availability: Literal["active", "pause", "drain"] | None = None
    docker: DockerEngine | None = None

    @field_validator("roles")
    @classmethod
    def _one_role(cls, roles: list[str]) -> list[str]:
        if len(set(roles)) > 1:
            raise ValueError("a host is either a manager or a worker, not both")
        return roles


class Swarm(Model):
    advertise_interface: str | None = None
    default_addr_pool: list[CIDR] = []
    subnet_size: Annotated[int, Field(strict=True, ge=16, le=29)] = 24
    data_path_port: Port | None = None
    autolock: bool = False
    unlock_key_file: str | None = None


class Network(Model):
    driver: Literal["overlay", "bridge"]
    subnet: CIDR | None = None
    gateway: IP | None = None
    attachable: bool = False
    internal: bool = False
    encrypted: bool = False
    mtu: Annotated[int, Field(strict=True, ge=576, le=9216)] | None = None
    hosts: list[str] = []
    adopt: bool = False

    @model_validator(mode="after")
    def _gateway_in_subnet(self) -> Network:
        if self.gateway and not self.subnet:
            raise ValueError("a gateway needs a subnet")
        if self.gateway and self.subnet:
            net = ipaddress.ip_network(self.subnet)
            gw = ipaddress.ip_address(self.gateway)
            if gw not in net or gw in (net.network_address, net.broadcast_address):
                raise ValueError(f"gateway {self.gateway} is not a usable address of {self.subnet}")
        if self.driver == "overlay" and self.hosts:
            raise ValueError("an overlay network spans the whole swarm; 'hosts' is only for bridge networks")
        if self.driver == "bridge" and self.encrypted:
            raise ValueError("'encrypted' is only for overlay networks")
        return self


class ServicePort(Model):
    published: Port
    target: Port
    protocol: Protocol = "tcp"
    mode: Literal["ingress", "host"] = "ingress"


class Service(RunOptions):
    image: Image
    command: Command | None = None
    mode: Literal["replicated", "global"] = "replicated"
    replicas: Annotated[int, Field(strict=True, ge=0, le=10000)] = 1
    networks: list[str] = []
    endpoint_mode: Literal["vip", "dnsrr"] = "vip"
    ports: list[ServicePort] = []
    placement: Placement | None = None
    update: UpdatePolicy | None = None
    rollback: RollbackPolicy | None = None
    secrets: dict[Name, FileRef] = {}
    configs: dict[Name, FileRef] = {}
    adopt: bool = False

    @model_validator(mode="after")
    def _global_has_no_replicas(self) -> Service:
        if self.mode == "global" and "replicas" in self.model_fields_set:
            raise ValueError("a global service runs one task per node; remove replicas or use mode: replicated")
        return self


PORT_RE = re.compile(r"^(?:(?P<ip>[0-9.]+):)?(?P<host>\d+):(?P<ctr>\d+)(?:/(?P<proto>tcp|udp))?$")


class ContainerPort(Model):
    """A parsed `H:C[/proto]` (or `IP:H:C[/proto]`) port mapping."""

    host_ip: str | None = None
    published: Port
    target: Port
    protocol: Protocol = "tcp"

    @classmethod
    def parse(cls, text: Any) -> Any:
        if isinstance(text, dict):
            return text
        if not isinstance(text, str):
            raise ValueError(f"expected a port mapping like \"8080:80/tcp\", got {text!r}")
        m = PORT_RE.fullmatch(text.strip())
        if not m:
            raise ValueError(f"'{text}' is not a port mapping; write HOST:CONTAINER[/tcp|udp], e.g. \"8080:80/tcp\"")
        if m["ip"]:
            _ip(m["ip"])
        for part in ("host", "ctr"):
            if not 1 <= int(m[part]) <= 65535:
                raise ValueError(f"port {m[part]} in '{text}' is out of range 1-65535")
        return {"host_ip": m["ip"], "published": int(m["host"]), "target": int(m["ctr"]),
                "protocol": m["proto"] or "tcp"}

    def __str__(self) -> str:
        ip = f"{self.host_ip}:" if self.host_ip else ""
        return f"{ip}{self.published}:{self.target}/{self.protocol}"


def _restart(value: Any) -> Any:
    if isinstance(value, bool):  # YAML reads a bare `no` as false
        value = "always" if value else "no"
    if isinstance(value, str) and not re.fullmatch(r"no|always|unless-stopped|on-failure(:[1-9][0-9]{0,3})?", value):
        raise ValueError(f"'{value}' is not a restart policy; write no, always, unless-stopped or on-failure[:N]")
    return value


class Container(RunOptions):
    host: str
    image: Image
    command: Command | None = None
    restart: Annotated[str, BeforeValidator(_restart)] = "unless-stopped"
    networks: list[str] = []
    ports: list[Annotated[ContainerPort, BeforeValidator(ContainerPort.parse),
                          WithJsonSchema({"type": "string", "pattern": PORT_RE.pattern,
                                          "examples": ["9090:80/tcp", "127.0.0.1:8080:80/tcp"]})]] = []
    aliases: list[str] = []
    adopt: bool = False

    @model_validator(mode="after")
    def _no_cpu_reservation(self) -> Container:
        if self.resources and self.resources.reservations.cpus is not None:
            raise ValueError("a plain container cannot reserve CPUs (only swarm services can); use limits.cpus")
        return self


STACK_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*(:\d+)?")
TARGET_RE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*):(?P<port>\d+)$")


class Forward(Model):
    host: str
    listen: Port
    to: str
    protocol: Protocol = "tcp"

    @field_validator("to")
    @classmethod
    def _to(cls, value: str) -> str:
        m = TARGET_RE.fullmatch(value)
        if not m:
            raise ValueError(f"'{value}' is not HOST:PORT; write for example \"node2:9090\"")
        if not 1 <= int(m["port"]) <= 65535:
            raise ValueError(f"port {m['port']} in '{value}' is out of range 1-65535")
        if m["name"] in ("0.0.0.0", "255.255.255.255") or m["name"].startswith("0."):
            raise ValueError(f"'{value}' is no address a forward can reach; name a host or its IP")
        return value

    @model_validator(mode="after")
    def _not_itself(self) -> Forward:
        if self.to_host == self.host and self.to_port == self.listen:
            raise ValueError(f"a forward from {self.host}:{self.listen} to itself would loop; point it elsewhere")
        return self

    @property
    def to_host(self) -> str:
        return self.to.rsplit(":", 1)[0]

    @property
    def to_port(self) -> int:
        return int(self.to.rsplit(":", 1)[1])


URL_RE = re.compile(r"^(?P<scheme>https?)://(?P<host>[A-Za-z0-9.-]+)(?::(?P<port>\d+))?(?P<path>/[^\s]*)?$")


def _url(value: str) -> bool:
    m = URL_RE.fullmatch(value)
    if not m:
        return False
    return not m["port"] or 1 <= int(m["port"]) <= 65535


def _egress(value: Any) -> Any:
    if isinstance(value, str) and not _url(value):
        raise ValueError(f"{value!r} is not an http(s) URL; write for example http://upstream.lab/")
    return value


class Stack(Model):
    file: str = Field(min_length=1)
    adopt: bool = False

    @classmethod
    def shorthand(cls, value: Any) -> Any:
        return {"file": value} if isinstance(value, str) else value


class Check(Model):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)

    from_: str = Field(alias="from")
    to: str
    expect: Literal["reachable", "unreachable"] = "reachable"

    @field_validator("from_", "to", mode="before")
    @classmethod
    def _stack(cls, value: Any) -> Any:
        """A stack's service as Docker names it (STACK_service) or as STACK/service."""
        if isinstance(value, str) and not _url(value) and STACK_RE.fullmatch(value):
            return value.replace("/", "_", 1)
        return value

    @field_validator("to")
    @classmethod
    def _to(cls, value: str) -> str:
        if _url(value):
            return value
        m = TARGET_RE.fullmatch(value)
        if m and 1 <= int(m["port"]) <= 65535:
            return value
        if m:
            raise ValueError(f"port {m['port']} in '{value}' is out of range 1-65535")
        raise ValueError(f"{value!r} is neither NAME:PORT nor an http(s) URL")


class Inventory(Model):
    version: Annotated[Literal[1], BeforeValidator(_not_bool)]
    cluster: Name = "default"
    defaults: Defaults = Defaults.model_construct()
    hosts: dict[Name, Host] = Field(min_length=1)
    groups: dict[Name, list[str]] = {}
    swarm: Swarm | None = None
    networks: dict[Name, Network] = {}
    services: dict[Name, Service] = {}
    containers: dict[Name, Container] = {}
    forwards: list[Forward] = []
    egress: list[Annotated[str, BeforeValidator(_egress)]] = []
    checks: list[Check] = []
    stacks: dict[Name, Annotated[Stack, BeforeValidator(Stack.shorthand)]] = {}


def json_schema() -> dict[str, Any]:
    """The inventory's JSON Schema (draft 2020-12), every key described, for editors and the YAML language server."""
    schema = Inventory.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "dnet inventory",
            "description": "A dnet inventory: hosts, swarm, networks, workloads, forwards, egress and checks.",
            **{k: v for k, v in schema.items() if k != "title"}}
