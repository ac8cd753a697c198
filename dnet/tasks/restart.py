"""Engine restarts that keep a serving cluster serving.

A swarm member is drained first (its tasks move elsewhere), restarted, waited for (engine answers, swarm state
active, node Ready), gets its availability back, and then every container that ran before is started again,
whoever made it (a drained node gets no overlay attachments, so plain containers on overlays wait for that).
The caller restarts swarm members in batches (converge.apply, --serial).
"""
from __future__ import annotations

import contextlib

from dnet.errors import DnetError
from dnet.poll import PollTimeout, poll
from dnet.tasks.base import Context, clear_stale_tasks, node_update
from dnet.tasks.unlock import unlock_key
from dnet.transport.base import quote

WAIT_READY = "for i in $(seq 300); do docker info >/dev/null 2>&1 && exit 0; sleep 0.2; done; " \
             "echo 'the engine did not come up within 60s' >&2; exit 1"
LIST = "docker ps --no-trunc --format '{{.ID}} {{.Label \"com.docker.swarm.task.id\"}}'"


def service_cmd(ctx: Context, host: str, verb: str) -> str:
    if ctx.facts[host].init == "systemd":
        return f"systemctl {verb} docker"
    return f"service docker {verb}"


def manager_for(ctx: Context, host: str) -> str | None:
    """A reachable manager to drain and activate `host` from: another one when there is one, else the host."""
    managers = [h for h, f in ctx.facts.items() if f.swarm_state == "active" and f.is_manager and
                h in ctx.transports]
    others = [h for h in managers if h != host]
    if ctx.leader in others:
        return ctx.leader
    return others[0] if others else (host if host in managers else None)


def restart(ctx: Context, host: str, first: str = "") -> str:
    """Restart one host's engine safely; return what happened, for the change's message. `first` runs on the
    drained host before the restart (a package upgrade); when it fails, the engine is not restarted."""
    f = ctx.facts[host]
    before = [line.split() for line in ctx.read(host, LIST, "running containers").splitlines() if line.strip()]
    plain = [p[0] for p in before if len(p) == 1]  # not swarm tasks: nobody else starts them again
    member = f.swarm_state == "active" and bool(f.node_id)
    check_unlockable(ctx, host)
    manager = manager_for(ctx, host) if member else None
    availability = "active"
    if manager:
        node = quote(f.node_id)
        availability = ctx.read(manager, f"docker node inspect {node} --format '{{{{.Spec.Availability}}}}'",
                                "availability") or "active"
    try:
        if manager:
            node_update(ctx, manager, f"docker node update --availability drain {quote(f.node_id)} >/dev/null")
        if manager and not ctx.dry_run:
            with_tasks = "docker ps -q --filter label=com.docker.swarm.task.id"
            poll(lambda: not ctx.run(host, with_tasks, check=False).stdout.strip(), timeout=90, interval=0.5,
                 what=f"{host}'s swarm tasks to stop after draining it")
        if first:
            ctx.run(host, first, timeout=900)
        _stop_on_overlays(ctx, host, plain)
        restart_cmd = service_cmd(ctx, host, "restart") + " >/dev/null 2>&1; sleep 0.5; " + WAIT_READY
        ctx.run(host, restart_cmd, timeout=150)
        if member and not ctx.dry_run:
            try:
                _wait_member(ctx, host, manager, timeout=60)
            except PollTimeout:  # its agent's session to the managers can stay broken: a second restart mends it
                ctx.run(host, restart_cmd, timeout=150)
                _wait_member(ctx, host, manager)
    finally:  # even when the restart fails: a node left drained runs nothing
        if manager:  # and before starting containers: a drained node gets no overlay attachments for them
            with contextlib.suppress(DnetError):  # the drain's error, if any, is the one to report
                node_update(ctx, manager, f"docker node update --availability {quote(availability)} "
                                          f"{quote(f.node_id)} >/dev/null")
    started = _start_again(ctx, host, plain, availability)
    drained = f", drained and set {availability} again" if manager else ""
    return f"engine restarted{drained}; {started} containers that ran before started again"


def check_unlockable(ctx: Context, host: str) -> None:
    """Refuse, before anything changes, to restart an autolocked manager without its unlock key at hand."""
    f = ctx.facts[host]
    if f.swarm_state == "active" and f.is_manager and f.swarm.autolock and not unlock_key(ctx) and not ctx.dry_run:
        raise DnetError(f"{host} is a manager of an autolocked swarm: after a restart it stays locked until it is "
                        "unlocked with the swarm's unlock key, which this run does not have; set "
                        "swarm.unlock_key_file or DNET_UNLOCK_KEY (docker swarm unlock-key -q on a manager shows it), "
                        "then apply again. Nothing was changed on it.")


def _stop_on_overlays(ctx: Context, host: str, plain: list[str]) -> None:
    """Stop the plain containers on overlay networks before the restart (they are started again after it): at boot
    a drained node gets no overlay attachment for them, and the engine's start waits 20s on each and can leave its
    swarm agent without a working session. Not with live-restore, which keeps containers running."""
    f = ctx.facts[host]
    if f.daemon.get("live-restore") is True:
        return
    swarm_nets = {n.name for n in f.networks if n.scope == "swarm"}
    on = [c.id for c in f.containers if c.id in plain and swarm_nets & set(c.endpoints)]
    if on:
        ctx.run(host, quote("docker", "stop", *on) + " >/dev/null", check=False)


def _wait_member(ctx: Context, host: str, manager: str | None, timeout: float = 90) -> None:
    """Wait until the restarted host is back in its swarm (unlocking an autolocked manager) and its node is Ready."""
    node_id = ctx.facts[host].node_id
    state = "docker info --format '{{.Swarm.LocalNodeState}}'"
    if ctx.facts[host].is_manager and ctx.facts[host].swarm.autolock:
        poll(lambda: ctx.run(host, state, check=False).stdout.strip() in ("locked", "active"), timeout=90,
             interval=0.5, what=f"{host} to come back (locked) after the restart")
        if ctx.run(host, state, check=False).stdout.strip() == "locked":
            ctx.run(host, "docker swarm unlock >/dev/null", stdin=(unlock_key(ctx) + "\n").encode())
    poll(lambda: ctx.run(host, state, check=False).stdout.strip() == "active", timeout=timeout, interval=0.5,
         what=f"{host} to rejoin its swarm after the restart")
    if manager:
        ready = f"docker node inspect {quote(node_id)} --format '{{{{.Status.State}}}}'"
        poll(lambda: ctx.run(manager, ready, check=False).stdout.strip() == "ready", timeout=timeout, interval=0.5,
             what=f"{host}'s swarm node to be Ready")


def _start_again(ctx: Context, host: str, ids: list[str], availability: str = "active") -> int:
    """Start every listed container that is not running (an overlay attachment may need a few tries)."""
    if not ids:
        return 0
    if ctx.dry_run:
        ctx.run(host, quote("docker", "start", *ids))
        return len(ids)
    errors: list[str] = []

    def all_running() -> bool:
        r = ctx.run(host, "docker ps -q --no-trunc", check=False)
        down = [i for i in ids if i not in r.stdout.split()]
        if not down:
            return True
        s = ctx.run(host, quote("docker", "start", *down) + " >/dev/null", check=False)
        errors.append((s.stdout + s.stderr).strip()[-300:])
        clear_stale_tasks(ctx, host, s.stdout + s.stderr)
        return False

    try:
        poll(all_running, timeout=90, interval=1, what=f"containers on {host} to start again")
    except PollTimeout as exc:
        why = (f" ({host}'s node is set to {availability}: a node that is not active gets no overlay attachments, "
               "so containers on overlay networks cannot start there; activate it)" if availability != "active" else "")
        raise DnetError(f"{host}: {exc}; last error: {errors[-1] if errors else 'none'}{why}") from None
    return len(ids)
