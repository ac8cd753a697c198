"""Swarm tasks: init, join with in-memory tokens, roles and node labels."""
from __future__ import annotations

from dnet.errors import DnetError
from dnet.plan import desired as d
from dnet.plan.model import Change
from dnet.tasks import Context
from dnet.transport.base import quote


def advertise(ctx: Context, host: str) -> str:
    """The address or interface a host advertises to the swarm."""
    spec = ctx.specs[host]
    if spec.advertise_addr:
        return spec.advertise_addr
    if ctx.inv.swarm and ctx.inv.swarm.advertise_interface:
        return ctx.inv.swarm.advertise_interface
    return d.address_of(spec)


def init(ctx: Context, c: Change) -> str:
    t = ctx.transports[c.host]
    adv = advertise(ctx, c.host)
    args = ["docker", "swarm", "init", "--advertise-addr", adv, "--data-path-addr", adv]
    sw = ctx.inv.swarm
    if sw:
        for pool in sw.default_addr_pool:
            args += ["--default-addr-pool", pool]
        if sw.default_addr_pool:
            args += ["--default-addr-pool-mask-length", str(sw.subnet_size)]
        if sw.data_path_port:
            args += ["--data-path-port", str(sw.data_path_port)]
        if sw.autolock:
            args += ["--autolock"]
    t.run(quote(*args) + " >/dev/null")  # stdout may hold the unlock key: never kept
    load_tokens(ctx)
    return f"swarm initialised, advertising {adv}"


def load_tokens(ctx: Context) -> None:
    """Fetch join tokens and the manager address from the leader into memory."""
    if ctx.tokens or not ctx.leader:
        return
    t = ctx.transports[ctx.leader]
    for role in ("worker", "manager"):
        ctx.tokens[role] = t.run(f"docker swarm join-token -q {role}").stdout.strip()
    ctx.manager_addr = t.run("docker info --format '{{.Swarm.NodeAddr}}'").stdout.strip()


def join(ctx: Context, c: Change) -> str:
    load_tokens(ctx)
    if not ctx.tokens:
        raise DnetError(f"{c.host}: no manager to join")
    role = c.data["role"]
    adv = advertise(ctx, c.host)
    t = ctx.transports[c.host]
    cmd = quote("docker", "swarm", "join", "--token", ctx.tokens[role], "--advertise-addr", adv,
                "--data-path-addr", adv, f"{ctx.manager_addr}:2377")
    t.run(cmd + " >/dev/null", secrets=ctx.secrets(), timeout=120)
    return f"joined as {role}"


def leave(ctx: Context, c: Change) -> str:
    ctx.transports[c.host].run("docker swarm leave --force >/dev/null")
    return "left the swarm"


def _node_id(ctx: Context, host: str) -> str:
    """The host's swarm node ID: from the facts when it was already a member, else asked once."""
    if host not in ctx.node_ids:
        f = ctx.facts[host]
        node = f.node_id if f.swarm_state == "active" else ""
        node = node or ctx.transports[host].run("docker info --format '{{.Swarm.NodeID}}'").stdout.strip()
        if not node:
            raise DnetError(f"{host}: not in the swarm (no node ID)")
        ctx.node_ids[host] = node
    return ctx.node_ids[host]


def role(ctx: Context, c: Change) -> str:
    target = c.data["target"]
    ctx.transports[c.host].run(quote("docker", "node", c.action, _node_id(ctx, target)) + " >/dev/null")
    return f"{target} {c.action}d"


def labels(ctx: Context, c: Change) -> str:
    target = c.data["target"]
    args = ["docker", "node", "update"]
    for k, v in c.data["add"].items():
        args += ["--label-add", f"{k}={v}"]
    for k in c.data["rm"]:
        args += ["--label-rm", k]
    args += ["--label-add", f"{d.NODE_LABELS}={c.data['owned']}", _node_id(ctx, target)]
    ctx.transports[c.host].run(quote(*args) + " >/dev/null")
    return f"labels on {target}: {c.detail}"
