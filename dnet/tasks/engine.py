"""Engine tasks: install Docker, start it, write daemon.json and restart only when it changed."""
from __future__ import annotations

import json

from dnet.errors import DnetError
from dnet.plan.model import Change
from dnet.tasks import Context
from dnet.transport.base import Transport

WAIT_READY = "for i in $(seq 120); do docker info >/dev/null 2>&1 && exit 0; sleep 0.5; done; " \
             "echo 'the engine did not come up within 60s' >&2; exit 1"


def _service(ctx: Context, host: str, verb: str) -> str:
    if ctx.facts[host].init == "systemd":
        return f"systemctl {verb} docker"
    return f"service docker {verb}"


def install(ctx: Context, c: Change) -> str:
    t = ctx.transports[c.host]
    t.run("export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && "
          "apt-get install -y -qq --no-install-recommends docker.io iptables >/dev/null", timeout=900)
    start(ctx, c)
    return "installed docker.io"


def start(ctx: Context, c: Change) -> str:
    t = ctx.transports[c.host]
    t.run(_service(ctx, c.host, "start") + " >/dev/null 2>&1; " + WAIT_READY, timeout=90)
    ctx.facts[c.host].engine = t.run("docker version --format '{{.Server.Version}}'").stdout.strip()
    return f"engine {ctx.facts[c.host].engine} running"


def restart(ctx: Context, t: Transport, host: str) -> None:
    """Restart the engine, wait until it answers, and start dnet's containers that did not come back."""
    t.run(_service(ctx, host, "restart") + " >/dev/null 2>&1; sleep 0.5; " + WAIT_READY, timeout=120)
    t.run("docker ps -aq --filter label=dnet.kind=container --filter status=exited | xargs -r docker start >/dev/null")


def daemon_json(ctx: Context, c: Change) -> str:
    t = ctx.transports[c.host]
    current = ctx.facts[c.host].daemon
    if ctx.facts[c.host].daemon_raw.strip() and not current:
        raise DnetError(f"{c.host}: /etc/docker/daemon.json is not valid JSON; fix it by hand first")
    merged = {**current, **c.data["settings"]}
    body = (json.dumps(merged, indent=2) + "\n").encode()
    t.run("mkdir -p /etc/docker && cat > /etc/docker/daemon.json.dnet && "
          "{ [ ! -f /etc/docker/daemon.json ] || cp -p /etc/docker/daemon.json /etc/docker/daemon.json.dnet-backup; } && "
          "mv /etc/docker/daemon.json.dnet /etc/docker/daemon.json", stdin=body)
    if ctx.facts[c.host].engine is not None:
        restart(ctx, t, c.host)
    ctx.facts[c.host].daemon = merged
    return "daemon.json written, engine restarted"
