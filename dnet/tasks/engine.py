"""Engine tasks: install Docker, start it, write daemon.json and restart only when it changed."""
from __future__ import annotations

import json

from dnet.errors import DnetError
from dnet.plan.model import DaemonUpdate, EngineInstall, EnginePackage, EngineStart
from dnet.tasks.base import Context, task
from dnet.tasks.restart import WAIT_READY, check_unlockable, restart, service_cmd
from dnet.transport.base import quote


def apt_install(package: str, version: str) -> str:
    """Install the package (at the newest version that starts with `version`, then held), or fail saying that
    the host's apt sources do not have it."""
    if not version:
        return ("export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && "
                f"apt-get install -y -qq --no-install-recommends {quote(package)} iptables >/dev/null")
    # madison lists newest first; a version is "24.0" when 24.0 is followed by no digit (24.0.7, not 24.01)
    pick = ("awk -v p=" + quote(version) + " '{ v = $3; sub(/^[0-9]+:/, \"\", v); "
            "if (index(v, p) == 1 && substr(v, length(p) + 1, 1) !~ /[0-9]/) { print $3; exit } }'")
    return ("export DEBIAN_FRONTEND=noninteractive; apt-get update -qq >/dev/null 2>&1; "
            f"v=$(apt-cache madison {quote(package)} 2>/dev/null | {pick}); "
            f'[ -n "$v" ] || {{ echo "no {package} {version}.* in the apt sources of this host '
            f'(apt-cache madison {package} lists what they have)" >&2; exit 1; }}; '
            f'apt-mark unhold {quote(package)} >/dev/null 2>&1; '
            f'apt-get install -y -qq --no-install-recommends --allow-downgrades {quote(package)}="$v" iptables '
            f'>/dev/null && apt-mark hold {quote(package)} >/dev/null')


@task(EngineInstall)
def install(ctx: Context, c: EngineInstall) -> str:
    ctx.run(c.host, apt_install(c.package, c.version), timeout=900)
    _start(ctx, c.host)
    return f"installed {c.package}" + (f" {c.version} (held)" if c.version else "")


@task(EnginePackage)
def package(ctx: Context, c: EnginePackage) -> str:
    if c.hold_only:
        ctx.run(c.host, quote("apt-mark", "hold", c.package) + " >/dev/null")
        return f"held {c.package} at {c.current}"
    how = restart(ctx, c.host, first=apt_install(c.package, c.version))
    ctx.facts[c.host].engine = ctx.read(c.host, "docker version --format '{{.Server.Version}}'", "engine version")
    return f"{c.package} now {ctx.facts[c.host].engine} (held); {how}"


@task(EngineStart)
def start(ctx: Context, c: EngineStart) -> str:
    return _start(ctx, c.host)


def _start(ctx: Context, host: str) -> str:
    ctx.run(host, service_cmd(ctx, host, "start") + " >/dev/null 2>&1; " + WAIT_READY, timeout=90)
    ctx.facts[host].engine = ctx.read(host, "docker version --format '{{.Server.Version}}'", "engine version")
    return f"engine {ctx.facts[host].engine} running"


@task(DaemonUpdate)
def daemon_json(ctx: Context, c: DaemonUpdate) -> str:
    f = ctx.facts[c.host]
    if not f.daemon_valid:
        raise DnetError(f"{c.host}: /etc/docker/daemon.json is not valid JSON; fix it by hand first")
    if f.engine is not None:
        check_unlockable(ctx, c.host)  # before daemon.json changes: never a file the running engine does not use
    merged = {**f.daemon, **c.settings}
    body = (json.dumps(merged, indent=2) + "\n").encode()
    ctx.run(c.host, "mkdir -p /etc/docker && cat > /etc/docker/daemon.json.dnet && "
            "{ [ ! -f /etc/docker/daemon.json ] || "
            "cp -p /etc/docker/daemon.json /etc/docker/daemon.json.dnet-backup; } && "
            "mv /etc/docker/daemon.json.dnet /etc/docker/daemon.json", stdin=body)
    if f.engine is None:
        f.daemon = merged
        return "daemon.json written; engine not running yet"
    try:
        how = restart(ctx, c.host)
    except DnetError as exc:
        # a key the engine refuses stops it from starting: put the old file back so the host runs as before
        back = "mv /etc/docker/daemon.json.dnet-backup /etc/docker/daemon.json" if f.daemon_raw.strip() else \
            "rm -f /etc/docker/daemon.json"
        ctx.run(c.host, f"{back} && {{ {service_cmd(ctx, c.host, 'restart')} >/dev/null 2>&1; {WAIT_READY}; }}",
                check=False, timeout=150)
        raise DnetError(f"{c.host}: the engine did not start with the new daemon.json, so the previous one is back "
                        f"and the engine was started with it; check docker.daemon ({exc})") from None
    f.daemon = merged
    return f"daemon.json written; {how}"
