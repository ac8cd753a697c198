"""Network tasks: create, remove, and recreate with every attachment reconnected."""
from __future__ import annotations

import ipaddress

from dnet.plan import desired as d
from dnet.plan.model import NetworkCreate, NetworkRecreate, NetworkRemove
from dnet.poll import poll
from dnet.tasks.base import Context, retrying, task
from dnet.transport.base import quote


def create_args(name: str, spec: d.NetworkSpec, cluster: str) -> list[str]:
    """The `docker network create` command for a spec, labelled as dnet's."""
    args = ["docker", "network", "create", "--driver", spec.driver]
    if spec.subnet:
        args += ["--subnet", spec.subnet]
    if spec.gateway:
        args += ["--gateway", spec.gateway]
    if spec.attachable:
        args.append("--attachable")
    if spec.internal:
        args.append("--internal")
    if spec.encrypted:
        args += ["--opt", "encrypted"]
    if spec.mtu:
        args += ["--opt", f"com.docker.network.driver.mtu={spec.mtu}"]
    for k, v in d.labels("network", spec, cluster).items():
        args += ["--label", f"{k}={v}"]
    return [*args, name]


@task(NetworkCreate)
def create(ctx: Context, c: NetworkCreate) -> str:
    ctx.run(c.host, quote(*create_args(c.network, c.spec, ctx.inv.cluster)) + " >/dev/null")
    return f"created {c.detail}"


@task(NetworkRemove)
def remove(ctx: Context, c: NetworkRemove) -> str:
    _rm(ctx, c.host, c.network)
    return "removed"


def _rm(ctx: Context, host: str, name: str, wait: float = 60) -> None:
    """Remove a network and wait until it is really gone (swarm lets go of attachments asynchronously)."""
    errors: list[str] = []

    def gone() -> bool:
        r = ctx.run(host, quote("docker", "network", "rm", name), check=False)
        errors.append((r.stdout + r.stderr).strip()[-200:])
        return ctx.dry_run or not ctx.run(host, quote("docker", "network", "inspect", name) + " >/dev/null",
                                          check=False).ok

    poll(gone, timeout=wait, interval=0.5, what=f"{host}: network {name} to be removed",
         last=lambda: errors[-1] if errors else "")


@task(NetworkRecreate)
def recreate(ctx: Context, c: NetworkRecreate) -> str:
    """Disconnect everything attached, recreate the network, reconnect with aliases and addresses."""
    name, spec = c.network, c.spec
    for svc in c.services_rm:  # dnet's own: created again from the inventory afterwards
        ctx.run(c.host, quote("docker", "service", "rm", svc) + " >/dev/null", check=False)
    for svc in c.services:  # waits until the tasks have left the network
        ctx.run(c.host, quote("docker", "service", "update", "--quiet", "--network-rm", name, svc) + " >/dev/null",
                timeout=300)
    for ctr in c.containers:
        ctx.run(ctr.host, quote("docker", "network", "disconnect", "-f", name, ctr.container), check=False)
    _rm(ctx, c.host, name)
    net_id = ctx.read(c.host, quote(*create_args(name, spec, ctx.inv.cluster)), "network ID")
    subnet = ipaddress.ip_network(spec.subnet) if spec.subnet else None
    for ctr in c.containers:
        args = ["docker", "network", "connect"]
        for alias in ctr.aliases:
            if alias != ctr.container:
                args += ["--alias", alias]
        if ctr.ip and subnet and ipaddress.ip_address(ctr.ip) in subnet:
            args += ["--ip", ctr.ip]
        # by ID: a worker may cache the old name
        retrying(ctx, ctr.host, quote(*args, net_id, ctr.container), "connect to the new network")
    for svc in c.services:
        ctx.run(c.host, quote("docker", "service", "update", "--detach", "--network-add", name, svc) + " >/dev/null")
    n = len(c.containers) + len(c.services)
    return f"recreated ({c.detail.split(';')[0]}), reconnected {n}"
