"""Read a host's actual state in one round trip: one shell script, then a pure parse()."""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import Any

from dnet.transport.base import Transport

MARK = "@@dnet:"


def script(images: list[str]) -> str:
    """The one command that prints every fact, section by section."""
    imgs = " ".join(shlex.quote(i) for i in images)
    return f"""S() {{ printf '\\n{MARK}%s\\n' "$1"; }}
S os; (. /etc/os-release 2>/dev/null; echo "${{ID:-unknown}}")
S init; [ -d /run/systemd/system ] && echo systemd || echo sysv
S docker; if command -v docker >/dev/null 2>&1; then docker version --format '{{{{.Server.Version}}}}' 2>&1 | head -1; else echo MISSING; fi
S daemon; cat /etc/docker/daemon.json 2>/dev/null
S swarm; docker info --format '{{{{json .Swarm}}}}' 2>/dev/null
S networks; docker network ls -q 2>/dev/null | xargs -r docker network inspect 2>/dev/null
S containers; docker ps -aq 2>/dev/null | xargs -r docker inspect 2>/dev/null
S services; docker service ls -q 2>/dev/null | xargs -r docker service inspect 2>/dev/null
S nodes; docker node ls -q 2>/dev/null | xargs -r docker node inspect 2>/dev/null
S images; for i in {imgs}; do docker image inspect --format "$i {{{{.Id}}}}" "$i" 2>/dev/null; done
S nat; iptables -w -t nat -S 2>/dev/null | grep -E -- '^-[AN] DNET-|-j DNET-'
S filter; iptables -w -S 2>/dev/null | grep -E -- '^-[AN] DNET-|-j DNET-'
S routes; ip -4 -o route 2>/dev/null
S ipvs; [ -e /proc/net/ip_vs ] && echo yes || echo no
S end
"""


@dataclass
class HostFacts:
    """What one host has now."""

    host: str
    os_id: str = "unknown"
    init: str = "sysv"
    engine: str | None = None  # server version, None when docker is missing or down
    engine_error: str = ""
    daemon: dict[str, Any] = field(default_factory=dict)
    daemon_raw: str = ""
    swarm: dict[str, Any] = field(default_factory=dict)
    networks: list[dict[str, Any]] = field(default_factory=list)
    containers: list[dict[str, Any]] = field(default_factory=list)
    services: list[dict[str, Any]] = field(default_factory=list)
    nodes: list[dict[str, Any]] = field(default_factory=list)
    images: dict[str, str] = field(default_factory=dict)
    nat_rules: list[str] = field(default_factory=list)
    filter_rules: list[str] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)
    ipvs: bool = False

    @property
    def swarm_state(self) -> str:
        return str(self.swarm.get("LocalNodeState") or "inactive")

    @property
    def node_id(self) -> str:
        return str(self.swarm.get("NodeID") or "")

    @property
    def cluster_id(self) -> str:
        return str((self.swarm.get("Cluster") or {}).get("ID") or "")

    @property
    def is_manager(self) -> bool:
        return bool(self.swarm.get("ControlAvailable"))

    def network(self, name: str) -> dict[str, Any] | None:
        return next((n for n in self.networks if n.get("Name") == name), None)

    def container(self, name: str) -> dict[str, Any] | None:
        return next((c for c in self.containers if c.get("Name", "").lstrip("/") == name), None)

    def service(self, name: str) -> dict[str, Any] | None:
        return next((s for s in self.services if (s.get("Spec") or {}).get("Name") == name), None)


def _json(text: str, default: Any) -> Any:
    text = text.strip()
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def parse(host: str, text: str) -> HostFacts:
    """Turn the script's output into HostFacts (pure; tested from recorded output)."""
    sections: dict[str, str] = {}
    name = ""
    for line in text.splitlines():
        if line.startswith(MARK):
            name = line[len(MARK):].strip()
            sections[name] = ""
        elif name:
            sections[name] += line + "\n"
    f = HostFacts(host)
    f.os_id = sections.get("os", "").strip() or "unknown"
    f.init = sections.get("init", "").strip() or "sysv"
    ver = sections.get("docker", "").strip()
    if ver and ver != "MISSING" and not ver.lower().startswith(("cannot", "error", "template")) and " " not in ver:
        f.engine = ver
    else:
        f.engine_error = ver or "no output"
    f.daemon_raw = sections.get("daemon", "")
    daemon = _json(f.daemon_raw, {})
    f.daemon = daemon if isinstance(daemon, dict) else {}
    swarm = _json(sections.get("swarm", ""), {})
    f.swarm = swarm if isinstance(swarm, dict) else {}
    for key in ("networks", "containers", "services", "nodes"):
        val = _json(sections.get(key, ""), [])
        setattr(f, key, val if isinstance(val, list) else [])
    for line in sections.get("images", "").splitlines():
        if " " in line.strip():
            ref, iid = line.strip().rsplit(" ", 1)
            f.images[ref] = iid
    f.nat_rules = [ln for ln in sections.get("nat", "").splitlines() if ln.strip()]
    f.filter_rules = [ln for ln in sections.get("filter", "").splitlines() if ln.strip()]
    f.routes = [ln for ln in sections.get("routes", "").splitlines() if ln.strip()]
    f.ipvs = sections.get("ipvs", "").strip() == "yes"
    return f


def gather(t: Transport, images: list[str]) -> HostFacts:
    """Read every fact of one host in a single command."""
    r = t.run(script(images), check=False, timeout=120)
    if "end" not in r.stdout.split(MARK)[-1]:
        r.check()
    return parse(t.name, r.stdout)
