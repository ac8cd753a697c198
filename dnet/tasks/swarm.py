"""Swarm tasks: init, join with in-memory tokens, leave, roles and node labels."""
from __future__ import annotations

import contextlib
import json

from dnet.errors import DnetError
from dnet.facts import concatenated, engine_get
from dnet.inventory.resolve import address_of
from dnet.plan import desired as d
from dnet.plan.model import NodeAvailability, NodeLabels, NodeRemove, NodeRole, SwarmInit, SwarmJoin, SwarmLeave
from dnet.poll import PollTimeout, poll
from dnet.tasks.base import Context, node_update, task
from dnet.tasks.restart import restart
from dnet.tasks.unlock import keep_unlock_key
from dnet.transport.base import mask, quote


def advertise(ctx: Context, host: str) -> str:
    """The address or interface a host advertises to the swarm."""
    spec = ctx.specs[host]
    if spec.advertise_addr:
        return spec.advertise_addr
    if ctx.inv.swarm and ctx.inv.swarm.advertise_interface:
        return ctx.inv.swarm.advertise_interface
    return address_of(spec)


def free_gossip_port(ctx: Context, host: str) -> str:
    """Restart the engine of a host that left a swarm but still holds its gossip port; say so for the message."""
    return restart(ctx, host).replace("engine restarted", "engine restarted to free 7946/tcp", 1) + "; "


@task(SwarmInit)
def init(ctx: Context, c: SwarmInit) -> str:
    freed = free_gossip_port(ctx, c.host) if c.restart else ""
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
    ctx.run(c.host, quote(*args) + " >/dev/null")  # stdout holds the unlock key: read again below, never logged
    load_tokens(ctx)
    if sw and sw.autolock:
        ctx.unlock_key = ctx.read(c.host, "docker swarm unlock-key -q", "unlock key")
        return f"{freed}swarm initialised, advertising {adv}; autolocked, {keep_unlock_key(ctx)}"
    return f"{freed}swarm initialised, advertising {adv}"


def load_tokens(ctx: Context) -> None:
    """Fetch join tokens and the manager address from the leader into memory, in one round trip (the Engine
    API's /swarm and /info through one curl; three docker CLI runs without it)."""
    if ctx.tokens or not ctx.leader:
        return
    r = ctx.run(ctx.leader, TOKENS, check=False)
    if ctx.dry_run:
        ctx.tokens.update({"worker": "<worker join token>", "manager": "<manager join token>"})
        ctx.manager_addr = "<manager address>"
        return
    out = r.stdout.strip()
    try:
        if out.startswith("{"):
            sw, info = [*concatenated(out), {}, {}][:2]
            tokens, addr = sw.get("JoinTokens", {}), info.get("Swarm", {}).get("NodeAddr", "")
            worker, manager = tokens.get("Worker", ""), tokens.get("Manager", "")
        else:
            worker, manager, addr = [*out.splitlines(), "", "", ""][:3]
    except (ValueError, AttributeError):
        worker = manager = addr = ""
    if not (worker and manager and addr):
        r.check()
        raise DnetError(f"{ctx.leader}: could not read the swarm's join tokens and manager address")
    ctx.tokens.update({"worker": worker.strip(), "manager": manager.strip()})
    ctx.manager_addr = addr.strip()


TOKENS = engine_get(["/swarm", "/info"], "docker swarm join-token -q worker && docker swarm join-token -q manager "
                    "&& docker info --format '{{.Swarm.NodeAddr}}'")


@task(SwarmJoin)
def join(ctx: Context, c: SwarmJoin) -> str:
    load_tokens(ctx)
    if not ctx.tokens:
        raise DnetError(f"{c.host}: no manager to join")
    if c.stuck:  # a join cut off earlier (a partition, a timeout) keeps retrying in the engine: end it first
        ctx.run(c.host, "docker swarm leave --force >/dev/null 2>&1 || true")
    freed = free_gossip_port(ctx, c.host) if c.restart else ""
    adv = advertise(ctx, c.host)
    body = json.dumps({"ListenAddr": "0.0.0.0:2377", "AdvertiseAddr": adv, "DataPathAddr": adv,
                       "RemoteAddrs": [f"{ctx.manager_addr}:2377"], "JoinToken": ctx.tokens[c.role]})
    # The token goes to the Engine API on stdin: never on a command line (ps, sudo's log) on the host.
    r = ctx.run(c.host, JOIN_API, stdin=body.encode(), check=False, timeout=120)
    if r.code == 127:  # no curl there: the docker CLI, whose command line shows the token to local processes
        cmd = quote("docker", "swarm", "join", "--token", ctx.tokens[c.role], "--advertise-addr", adv,
                    "--data-path-addr", adv, f"{ctx.manager_addr}:2377")
        ctx.run(c.host, cmd + " >/dev/null", timeout=120)
        return f"{freed}joined as {c.role} (with the docker CLI: install curl on {c.host} to keep the token off " \
               "its command line)"
    if r.stdout.strip() != "200" and not ctx.dry_run:
        raise DnetError(f"{c.host}: swarm join failed (HTTP {r.stdout.strip() or '?'}): "
                        f"{mask(r.stderr.strip()[-400:], ctx.secrets())}")
    return f"{freed}joined as {c.role}"


JOIN_API = ("command -v curl >/dev/null 2>&1 || exit 127; curl -sS --unix-socket /var/run/docker.sock "
            "-H 'Content-Type: application/json' -X POST --data-binary @- -o /dev/stderr -w '%{http_code}' "
            "http://localhost/swarm/join")


@task(SwarmLeave)
def leave(ctx: Context, c: SwarmLeave) -> str:
    ctx.run(c.host, "docker swarm leave --force >/dev/null")
    return "left the swarm"


def _node_id(ctx: Context, host: str) -> str:
    """The host's swarm node ID: from the facts when it was already a member, else asked once."""
    if host not in ctx.node_ids:
        f = ctx.facts[host]
        node = f.node_id if f.swarm_state == "active" else ""
        node = node or ctx.read(host, "docker info --format '{{.Swarm.NodeID}}'", f"{host} node ID")
        if not node:
            raise DnetError(f"{host}: not in the swarm (no node ID)")
        ctx.node_ids[host] = node
    return ctx.node_ids[host]


@task(NodeRole)
def role(ctx: Context, c: NodeRole) -> str:
    node_update(ctx, c.host, quote("docker", "node", str(c.action), _node_id(ctx, c.target)) + " >/dev/null")
    return f"{c.target} {c.action}d"


@task(NodeLabels)
def labels(ctx: Context, c: NodeLabels) -> str:
    args = ["docker", "node", "update"]
    for k, v in c.add.items():
        args += ["--label-add", f"{k}={v}"]
    for k in c.rm:
        args += ["--label-rm", k]
    args += ["--label-add", f"{d.NODE_LABELS}={c.owned}", _node_id(ctx, c.target)]
    node_update(ctx, c.host, quote(*args) + " >/dev/null")
    return f"labels on {c.target}: {c.detail}"


@task(NodeAvailability)
def availability(ctx: Context, c: NodeAvailability) -> str:
    node_update(ctx, c.host, quote("docker", "node", "update", "--availability", c.availability,
                                   _node_id(ctx, c.target)) + " >/dev/null")
    return f"{c.target} is {c.availability}"


@task(NodeRemove)
def remove_node(ctx: Context, c: NodeRemove) -> str:
    """Drain the stranger, wait until its tasks are gone, demote it if a manager, and remove it."""
    node = quote(c.node_id)
    node_update(ctx, c.host, f"docker node update --availability drain {node} >/dev/null")
    if not ctx.dry_run:
        tasks = f"docker node ps {node} --filter desired-state=running -q"
        with contextlib.suppress(PollTimeout):  # a node that is down keeps its tasks listed: remove it anyway
            poll(lambda: not ctx.run(c.host, tasks, check=False).stdout.strip(), timeout=60, interval=1,
                 what=f"tasks to leave node {c.name}")
    if c.manager:
        node_update(ctx, c.host, f"docker node demote {node} >/dev/null")
    ctx.run(c.host, f"docker node rm --force {node} >/dev/null")
    return f"node {c.name} drained{', demoted' if c.manager else ''} and removed"
