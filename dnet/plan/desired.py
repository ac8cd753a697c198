"""What the inventory wants, as typed specs in the shapes Docker reports, plus stable hashes for change detection."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from dnet import CLUSTER_LABEL, MANAGED_LABEL
from dnet.facts.model import KIND_LABEL, SPEC_LABEL
from dnet.inventory.resolve import HostSpec, address_of
from dnet.inventory.schema import Container, Inventory, Network, Service
from dnet.inventory.workload import CONSTRAINT, RunOptions
from dnet.plan import runspec
from dnet.plan.runspec import EnvVar, FileSpec

__all__ = ["KIND_LABEL", "NODE_LABELS", "SPEC_LABEL", "ContainerSpec", "ForwardRule", "NetworkSpec",
           "ServicePortSpec", "ServiceSpec", "Where", "address_of", "container_spec", "daemon_settings",
           "forward_rules", "labels", "network_spec", "service_spec", "spec_hash"]

NODE_LABELS = "dnet.labels"  # node label listing the label keys dnet manages
SHOWN_LABEL = "dnet.shown"  # a workload's spec as plans show it (secret values as digests)


def spec_hash(data: Any) -> str:
    """A short stable hash of a JSON-able spec."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def daemon_settings(spec: HostSpec) -> dict[str, Any]:
    """The daemon.json keys dnet manages for this host (only those the inventory sets)."""
    e = spec.engine
    out: dict[str, Any] = dict(e.daemon)
    if e.mtu is not None:
        out["mtu"] = e.mtu
    if e.dns:
        out["dns"] = list(e.dns)
    if e.default_address_pools:
        out["default-address-pools"] = [{"base": p.base, "size": p.size} for p in e.default_address_pools]
    return out


class Spec:
    """A desired object: its dict form is what gets hashed into the dnet.spec label."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload, no-any-return]

    @property
    def hash(self) -> str:
        return spec_hash(self.as_dict())


@dataclass(frozen=True)
class NetworkSpec(Spec):
    driver: str
    subnet: str | None
    gateway: str | None
    attachable: bool
    internal: bool
    encrypted: bool
    mtu: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out = super().as_dict()
        if self.mtu is None:  # absent, so that networks made before the key existed keep their hash
            del out["mtu"]
        return out

    def describe(self) -> str:
        flags = [f for f in ("attachable", "internal", "encrypted") if getattr(self, f)]
        flags += [f"mtu {self.mtu}"] if self.mtu else []
        return f"{self.driver} {self.subnet or 'auto'}" + (f" ({', '.join(flags)})" if flags else "")


@dataclass(frozen=True)
class Workload(Spec):
    """The run options containers and services share. Each is left out of the hashed form while at its default,
    so that workloads made before it existed keep their hash (and are not changed by an upgrade of dnet)."""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = asdict(self)
        for f in fields(self):
            value = getattr(self, f.name)
            default = f.default_factory() if callable(f.default_factory) else f.default
            if f.metadata.get("new") and value == default:
                del out[f.name]
            elif f.name == "env":
                out["env"] = {e.key: e.shown for e in value}
            elif f.name in ("secrets", "configs"):
                out[f.name] = {x.name: {"object": x.object, "target": x.target} for x in value}
        return out

    @property
    def secret_values(self) -> tuple[str, ...]:
        """Values that must never be shown (masked in any error that quotes a command)."""
        return tuple(e.value for e in getattr(self, "env", ()) if e.secret and e.value)


NEW = {"new": True}  # metadata of a field added after workloads were first made (see Workload)


@dataclass(frozen=True)
class ContainerSpec(Workload):
    name: str
    image: str
    image_id: str | None
    command: list[str] | None
    networks: list[str]
    ports: list[str]
    aliases: list[str]
    env: tuple[EnvVar, ...] = field(default_factory=tuple, metadata=NEW)
    mounts: tuple[str, ...] = field(default_factory=tuple, metadata=NEW)
    entrypoint: list[str] | None = field(default=None, metadata=NEW)
    user: str | None = field(default=None, metadata=NEW)
    workdir: str | None = field(default=None, metadata=NEW)
    labels: dict[str, str] = field(default_factory=dict, metadata=NEW)
    healthcheck: dict[str, Any] | None = field(default=None, metadata=NEW)
    resources: dict[str, Any] | None = field(default=None, metadata=NEW)
    restart: str = field(default="unless-stopped", metadata=NEW)


@dataclass(frozen=True)
class ServicePortSpec:
    published: int
    target: int
    protocol: str
    mode: str

    def flag(self) -> str:
        return f"published={self.published},target={self.target},protocol={self.protocol},mode={self.mode}"


@dataclass(frozen=True)
class ServiceSpec(Workload):
    name: str
    image: str
    image_id: str | None
    command: list[str] | None
    replicas: int
    networks: list[str]
    endpoint_mode: str
    ports: list[ServicePortSpec]
    env: tuple[EnvVar, ...] = field(default_factory=tuple, metadata=NEW)
    mounts: tuple[str, ...] = field(default_factory=tuple, metadata=NEW)
    entrypoint: list[str] | None = field(default=None, metadata=NEW)
    user: str | None = field(default=None, metadata=NEW)
    workdir: str | None = field(default=None, metadata=NEW)
    labels: dict[str, str] = field(default_factory=dict, metadata=NEW)
    healthcheck: dict[str, Any] | None = field(default=None, metadata=NEW)
    resources: dict[str, Any] | None = field(default=None, metadata=NEW)
    mode: str = field(default="replicated", metadata=NEW)
    constraints: tuple[str, ...] = field(default_factory=tuple, metadata=NEW)
    preferences: tuple[str, ...] = field(default_factory=tuple, metadata=NEW)
    update: dict[str, Any] | None = field(default=None, metadata=NEW)
    rollback: dict[str, Any] | None = field(default=None, metadata=NEW)
    secrets: tuple[FileSpec, ...] = field(default_factory=tuple, metadata=NEW)
    configs: tuple[FileSpec, ...] = field(default_factory=tuple, metadata=NEW)


@dataclass(frozen=True)
class ForwardRule:
    """One kernel NAT forward on a host, its target resolved to an address."""

    listen: int
    protocol: str
    to_ip: str
    to_port: int
    cluster: str = "default"

    @property
    def comment(self) -> str:
        return f"dnet:fwd:{self.listen}/{self.protocol}->{self.to_ip}:{self.to_port}@{self.cluster}"

    def __str__(self) -> str:
        return f"{self.listen}/{self.protocol} -> {self.to_ip}:{self.to_port}"


def network_spec(net: Network) -> NetworkSpec:
    return NetworkSpec(net.driver, net.subnet, net.gateway, net.attachable, net.internal, net.encrypted, net.mtu)


def labels(kind: Literal["network", "container", "service"], spec: Spec, cluster: str) -> dict[str, str]:
    out = {MANAGED_LABEL: "true", CLUSTER_LABEL: cluster, KIND_LABEL: kind, SPEC_LABEL: spec.hash}
    if isinstance(spec, Workload):  # what it was made with, so a later plan can show and update each field
        out[SHOWN_LABEL] = json.dumps(spec.as_dict(), sort_keys=True, separators=(",", ":"))
    return out


def shown(labels: Mapping[str, str]) -> dict[str, Any] | None:
    """What a workload was made with (its SHOWN_LABEL), or None when it was made before dnet wrote it."""
    try:
        got = json.loads(labels.get(SHOWN_LABEL, ""))
    except ValueError:
        return None
    return got if isinstance(got, dict) else None


def command_list(cmd: list[str] | str | None) -> list[str] | None:
    if cmd is None:
        return None
    return ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)


@dataclass(frozen=True)
class Where:
    """What resolving a workload reads on this machine: the inventory's folder and the environment."""

    base: Path = Path(".")
    cluster: str = "default"
    environ: Mapping[str, str] = field(default_factory=runspec.environ)


def _options(owner: str, o: RunOptions, at: Where) -> dict[str, Any]:
    """Raises runspec.SpecError for an unset ${VAR} or an unreadable file."""
    return {"env": runspec.env(owner, o, at.base, at.cluster, at.environ),
            "mounts": tuple(runspec.mount(m) for m in o.mounts), "entrypoint": runspec.command(o.entrypoint),
            "user": o.user, "workdir": o.workdir, "labels": dict(o.labels), "healthcheck": runspec.healthcheck(o),
            "resources": runspec.resources(o)}


def _constraint(text: str) -> str:
    """One spelling per constraint ("a==b" and "a == b" are the same to Docker, and to the plan)."""
    m = CONSTRAINT.fullmatch(text)
    return f"{m[1]} {m[2]} {m[3]}" if m else text


def _policy(p: Any) -> dict[str, Any] | None:
    got = {k: v for k, v in p.model_dump().items() if v is not None} if p is not None else {}
    return got or None


def container_spec(name: str, c: Container, image_id: str | None, at: Where | None = None) -> ContainerSpec:
    return ContainerSpec(name, c.image, image_id, command_list(c.command), list(c.networks),
                         [str(p) for p in c.ports], list(c.aliases), restart=c.restart,
                         **_options(f"container '{name}'", c, at or Where()))


def service_spec(name: str, s: Service, image_id: str | None, at: Where | None = None) -> ServiceSpec:
    at = at or Where()
    ports = [ServicePortSpec(p.published, p.target, p.protocol, p.mode) for p in s.ports]
    owner = f"service '{name}'"
    place = s.placement
    return ServiceSpec(name, s.image, image_id, command_list(s.command), 0 if s.mode == "global" else s.replicas,
                       list(s.networks), s.endpoint_mode, ports, mode=s.mode,
                       constraints=tuple(_constraint(c) for c in place.constraints) if place else (),
                       preferences=tuple(f"spread={p.spread}" for p in place.preferences) if place else (),
                       update=_policy(s.update), rollback=_policy(s.rollback),
                       secrets=runspec.files(owner, s.secrets, "secret", at.base, at.cluster),
                       configs=runspec.files(owner, s.configs, "config", at.base, at.cluster),
                       **_options(owner, s, at))


def forward_rules(inv: Inventory, specs: dict[str, HostSpec], host: str) -> list[ForwardRule]:
    """The forwards that listen on `host`, with their targets resolved to addresses."""
    out = []
    for f in inv.forwards:
        if f.host != host:
            continue
        ip = address_of(specs[f.to_host]) if f.to_host in specs else f.to_host
        out.append(ForwardRule(f.listen, f.protocol, ip, f.to_port, inv.cluster))
    return out
