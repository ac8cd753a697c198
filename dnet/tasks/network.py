"""Network tasks: create, remove, and recreate with every attachment reconnected."""
from __future__ import annotations

import ipaddress
import time
from typing import Any

from dnet.errors import DnetError
from dnet.plan import desired as d
from dnet.plan.model import Change
from dnet.tasks import Context
from dnet.transport.base import quote


def create_args(name: str, spec: dict[str, Any]) -> list[str]:
    """The `docker network create` command for a spec, labelled as dnet's."""
    args = ["docker", "network", "create", "--driver", spec["driver"]]
    if spec["subnet"]:
        args += ["--subnet", spec["subnet"]]
    if spec["gateway"]:
        args += ["--gateway", spec["gateway"]]
    if spec["attachable"]:
        args.append("--attachable")
    if spec["internal"]:
        args.append("--internal")
    if spec["encrypted"]:
        args += ["--opt", "encrypted"]
    for k, v in d.labels("network", spec).items():
        args += ["--label", f"{k}={v}"]
    return args + [name]


def create(ctx: Context, c: Change) -> str:
    ctx.transports[c.host].run(quote(*create_args(c.name, c.data["spec"])) + " >/dev/null")
    return f"created {c.detail}"


def remove(ctx: Context, c: Change) -> str:
    _rm(ctx, c.host, c.name)
    return "removed"


def _rm(ctx: Context, host: str, name: str, wait: float = 60) -> None:
    """Remove a network and wait until it is really gone (swarm lets go of attachments asynchronously)."""
    t = ctx.transports[host]
    deadline = time.monotonic() + wait
    while True:
        r = t.run(quote("docker", "network", "rm", name), check=False)
        if not t.run(quote("docker", "network", "inspect", name), check=False).ok:
            return
        if time.monotonic() > deadline:
            r.check()
            raise DnetError(f"{host}: network {name} is still there {wait:.0f}s after docker network rm")
        time.sleep(0.5)


def recreate(ctx: Context, c: Change) -> str:
    """Disconnect everything attached, recreate the network, reconnect with aliases and addresses."""
    name, spec = c.name, c.data["spec"]
    leader = ctx.transports[c.host]
    for svc in c.data.get("services_rm", []):  # dnet's own: created again from the inventory afterwards
        leader.run(quote("docker", "service", "rm", svc) + " >/dev/null", check=False)
    for svc in c.data["services"]:  # waits until the tasks have left the network
        leader.run(quote("docker", "service", "update", "--quiet", "--network-rm", name, svc) + " >/dev/null",
                   timeout=300)
    for ctr in c.data["containers"]:
        ctx.transports[ctr["host"]].run(quote("docker", "network", "disconnect", "-f", name, ctr["name"]), check=False)
    _rm(ctx, c.host, name)
    net_id = leader.run(quote(*create_args(name, spec))).stdout.strip()
    subnet = ipaddress.ip_network(spec["subnet"]) if spec["subnet"] else None
    for ctr in c.data["containers"]:
        args = ["docker", "network", "connect"]
        for alias in ctr["aliases"]:
            if alias != ctr["name"]:
                args += ["--alias", alias]
        if ctr["ip"] and subnet and ipaddress.ip_address(ctr["ip"]) in subnet:
            args += ["--ip", ctr["ip"]]
        ctx.transports[ctr["host"]].run(quote(*args, net_id, ctr["name"]))  # by ID: a worker may still cache the old name
    for svc in c.data["services"]:
        leader.run(quote("docker", "service", "update", "--detach", "--network-add", name, svc) + " >/dev/null")
    n = len(c.data["containers"]) + len(c.data["services"])
    return f"recreated ({c.detail.split(';')[0]}), reconnected {n}"
