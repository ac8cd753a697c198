"""What the inventory wants, as typed specs in the shapes Docker reports, plus stable hashes for change detection."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Literal

from dnet import CLUSTER_LABEL, MANAGED_LABEL
from dnet.facts.model import KIND_LABEL, SPEC_LABEL
from dnet.inventory.resolve import HostSpec, address_of
from dnet.inventory.schema import Container, Inventory, Network, Service

__all__ = ["KIND_LABEL", "NODE_LABELS", "SPEC_LABEL", "ContainerSpec", "ForwardRule", "NetworkSpec", "ServicePortSpec",
           "ServiceSpec", "address_of", "container_spec", "daemon_settings", "forward_rules", "labels", "network_spec",
           "service_spec", "spec_hash"]

NODE_LABELS = "dnet.labels"  # node label listing the label keys dnet manages


def spec_hash(data: Any) -> str:
    """A short stable hash of a JSON-able spec."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def daemon_settings(spec: HostSpec) -> dict[str, Any]:
    """The daemon.json keys dnet manages for this host (only those the inventory sets)."""
    e = spec.engine
    out: dict[str, Any] = {}
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
class ContainerSpec(Spec):
    name: str
    image: str
    image_id: str | None
    command: list[str] | None
    networks: list[str]
    ports: list[str]
    aliases: list[str]


@dataclass(frozen=True)
class ServicePortSpec:
    published: int
    target: int
    protocol: str
    mode: str

    def flag(self) -> str:
        return f"published={self.published},target={self.target},protocol={self.protocol},mode={self.mode}"


@dataclass(frozen=True)
class ServiceSpec(Spec):
    name: str
    image: str
    image_id: str | None
    command: list[str] | None
    replicas: int
    networks: list[str]
    endpoint_mode: str
    ports: list[ServicePortSpec]


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
    return {MANAGED_LABEL: "true", CLUSTER_LABEL: cluster, KIND_LABEL: kind, SPEC_LABEL: spec.hash}


def command_list(cmd: list[str] | str | None) -> list[str] | None:
    if cmd is None:
        return None
    return ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)


def container_spec(name: str, c: Container, image_id: str | None) -> ContainerSpec:
    return ContainerSpec(name, c.image, image_id, command_list(c.command), list(c.networks),
                         [str(p) for p in c.ports], list(c.aliases))


def service_spec(name: str, s: Service, image_id: str | None) -> ServiceSpec:
    ports = [ServicePortSpec(p.published, p.target, p.protocol, p.mode) for p in s.ports]
    return ServiceSpec(name, s.image, image_id, command_list(s.command), s.replicas, list(s.networks),
                       s.endpoint_mode, ports)


def forward_rules(inv: Inventory, specs: dict[str, HostSpec], host: str) -> list[ForwardRule]:
    """The forwards that listen on `host`, with their targets resolved to addresses."""
    out = []
    for f in inv.forwards:
        if f.host != host:
            continue
        ip = address_of(specs[f.to_host]) if f.to_host in specs else f.to_host
        out.append(ForwardRule(f.listen, f.protocol, ip, f.to_port, inv.cluster))
    return out
