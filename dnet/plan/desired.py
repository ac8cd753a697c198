"""What the inventory wants, in the shapes Docker reports, plus stable hashes for change detection."""
from __future__ import annotations

import hashlib
import json
import socket
from typing import Any

from dnet import MANAGED_LABEL
from dnet.inventory.resolve import HostSpec
from dnet.inventory.schema import Container, Inventory, Network, Service

SPEC_LABEL = "dnet.spec"
KIND_LABEL = "dnet.kind"
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


def network_spec(net: Network) -> dict[str, Any]:
    return {"driver": net.driver, "subnet": net.subnet, "gateway": net.gateway, "attachable": net.attachable,
            "internal": net.internal, "encrypted": net.encrypted}


def labels(kind: str, spec: dict[str, Any]) -> dict[str, str]:
    return {MANAGED_LABEL: "true", KIND_LABEL: kind, SPEC_LABEL: spec_hash(spec)}


def command_list(cmd: list[str] | str | None) -> list[str] | None:
    if cmd is None:
        return None
    return ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)


def container_spec(name: str, c: Container, image_id: str | None) -> dict[str, Any]:
    return {"name": name, "image": c.image, "image_id": image_id, "command": command_list(c.command),
            "networks": list(c.networks), "ports": [str(p) for p in c.ports], "aliases": list(c.aliases)}


def service_spec(name: str, s: Service, image_id: str | None) -> dict[str, Any]:
    return {"name": name, "image": s.image, "image_id": image_id, "command": command_list(s.command),
            "replicas": s.replicas, "networks": list(s.networks), "endpoint_mode": s.endpoint_mode,
            "ports": [p.model_dump() for p in s.ports]}


def address_of(spec: HostSpec) -> str:
    """An IP for a host (resolving its name here when the inventory gives a name)."""
    try:
        return socket.gethostbyname(spec.hostname)
    except OSError:
        return spec.hostname


def forward_rules(inv: Inventory, specs: dict[str, HostSpec], host: str) -> list[dict[str, Any]]:
    """The forwards that listen on `host`, with their targets resolved to addresses."""
    out = []
    for f in inv.forwards:
        if f.host != host:
            continue
        target = specs[f.to_host] if f.to_host in specs else None
        ip = address_of(target) if target else f.to_host
        out.append({"listen": f.listen, "protocol": f.protocol, "to_ip": ip, "to_port": f.to_port,
                    "comment": f"dnet:fwd:{f.listen}/{f.protocol}->{ip}:{f.to_port}"})
    return out
