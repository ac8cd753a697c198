"""Engine tasks: install Docker, start it, write daemon.json and restart only when it changed."""
from __future__ import annotations

import json

from dnet.errors import DnetError
from dnet.plan.model import DaemonUpdate, EngineInstall, EngineStart
from dnet.tasks.base import Context, task

WAIT_READY = "for i in $(seq 120); do docker info >/dev/null 2>&1 && exit 0; sleep 0.5; done; " \
             "echo 'the engine did not come up within 60s' >&2; exit 1"


def _service(ctx: Context, host: str, verb: str) -> str:
    if ctx.facts[host].init == "systemd":
        return f"systemctl {verb} docker"
    return f"service docker {verb}"


@task(EngineInstall)
def install(ctx: Context, c: EngineInstall) -> str:
    ctx.run(c.host, "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && "
            "apt-get install -y -qq --no-install-recommends docker.io iptables >/dev/null", timeout=900)
    _start(ctx, c.host)
    return "installed docker.io"


@task(EngineStart)
def start(ctx: Context, c: EngineStart) -> str:
    return _start(ctx, c.host)


def _start(ctx: Context, host: str) -> str:
    ctx.run(host, _service(ctx, host, "start") + " >/dev/null 2>&1; " + WAIT_READY, timeout=90)
    ctx.facts[host].engine = ctx.read(host, "docker version --format '{{.Server.Version}}'", "engine version")
    return f"engine {ctx.facts[host].engine} running"


def restart(ctx: Context, host: str) -> None:
    """Restart the engine, wait until it answers, and start dnet's containers that did not come back."""
    ctx.run(host, _service(ctx, host, "restart") + " >/dev/null 2>&1; sleep 0.5; " + WAIT_READY, timeout=120)
    ctx.run(host, "docker ps -aq --filter label=dnet.kind=container --filter status=exited | "
            "xargs -r docker start >/dev/null")


@task(DaemonUpdate)
def daemon_json(ctx: Context, c: DaemonUpdate) -> str:
    f = ctx.facts[c.host]
    if not f.daemon_valid:
        raise DnetError(f"{c.host}: /etc/docker/daemon.json is not valid JSON; fix it by hand first")
    merged = {**f.daemon, **c.settings}
    body = (json.dumps(merged, indent=2) + "\n").encode()
    ctx.run(c.host, "mkdir -p /etc/docker && cat > /etc/docker/daemon.json.dnet && "
            "{ [ ! -f /etc/docker/daemon.json ] || "
            "cp -p /etc/docker/daemon.json /etc/docker/daemon.json.dnet-backup; } && "
            "mv /etc/docker/daemon.json.dnet /etc/docker/daemon.json", stdin=body)
    if f.engine is not None:
        restart(ctx, c.host)
    f.daemon = merged
    return "daemon.json written, engine restarted"
