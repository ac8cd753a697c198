"""Read a host's actual state in one round trip: one shell script, then a pure parse() into typed views."""
from __future__ import annotations

import ipaddress
import json
import re
import shlex
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dnet.facts.model import (
    TASK_ID_LABEL,
    ContainerFact,
    Endpoint,
    FactsError,
    NetworkFact,
    NodeFact,
    ObjectFact,
    Reader,
    ServiceFact,
    SwarmFact,
)
from dnet.transport.base import Transport

__all__ = ["ContainerFact", "Endpoint", "FactsError", "HostFacts", "NetworkFact", "NodeFact", "ObjectFact",
           "ServiceFact", "SwarmFact", "concatenated", "engine_get", "gather", "genuine_tasks", "parse", "script",
           "tasks_path"]

MARK = "@@dnet:"


SOCK = "/var/run/docker.sock"
# The Engine API through curl when the socket answers: one curl process fetches every engine fact over one
# connection (each docker CLI run costs ~40 ms of CPU and a facts read took 15 of them; a curl per section still
# cost 12 processes). Without curl or the socket: the CLI, a command per section.
API_PROBE = (f"A=; [ -S {SOCK} ] && command -v curl >/dev/null 2>&1 && "
             f"curl -sf --max-time 5 --unix-socket {SOCK} http://d/_ping >/dev/null 2>&1 && A=1")
API = f"curl -sf --max-time 60 --unix-socket {SOCK}"
API_ANSWERS = f"curl -s --max-time 60 --unix-socket {SOCK}"  # an error answer prints too (its JSON object)


def engine_get(paths: list[str], cli: str = ":") -> str:
    """A command that GETs every Engine API path with one curl, printing one JSON document per path (an error
    answer prints as its JSON object), or that runs `cli` when the API cannot be reached."""
    urls = " ".join(shlex.quote("http://d" + p) for p in paths)
    return f'{API_PROBE}; if [ -n "$A" ]; then {API_ANSWERS} {urls}; else {cli}; fi'


def tasks_path(service: str, running_only: bool = False) -> str:
    """The Engine API path listing a service's tasks."""
    filters: dict[str, list[str]] = {"service": [service]}
    if running_only:
        filters["desired-state"] = ["running"]
    return "/tasks?filters=" + urllib.parse.quote(json.dumps(filters))

# name, how the CLI reads it (or the whole command for facts outside the engine), the Engine API path ("" if none)
SECTIONS: list[tuple[str, str, str]] = [
    # shell builtins only (no process): /etc/os-release, /proc and /sys read with `read`
    ("os", 'while IFS== read -r k v; do [ "$k" = ID ] && { v=${v#\\"}; echo "${v%\\"}"; }; done '
           '</etc/os-release', ""),
    ("init", "[ -d /run/systemd/system ] && echo systemd || echo sysv", ""),
    ("docker", "if ! command -v docker >/dev/null 2>&1; then echo MISSING; "
               "else docker version --format '{{.Server.Version}} {{.Server.Arch}}' 2>&1 | head -1; fi", "/version"),
    ("daemon", "cat /etc/docker/daemon.json 2>/dev/null", ""),
    ("swarm", "docker info --format '{{json .Swarm}}' 2>/dev/null", "/info"),
    ("networks", "docker network ls -q 2>/dev/null | xargs -r docker network inspect 2>/dev/null", "/networks"),
    ("containers", "docker ps -aq 2>/dev/null | xargs -r docker inspect 2>/dev/null", "/containers/json?all=1"),
    ("services", "docker service ls -q 2>/dev/null | xargs -r docker service inspect 2>/dev/null", "/services"),
    ("nodes", "docker node ls -q 2>/dev/null | xargs -r docker node inspect 2>/dev/null", "/nodes"),
    # the manager's own list of tasks: a container's task labels alone can be set by any docker user
    ("tasks", "docker service ls -q 2>/dev/null | xargs -r docker service ps -q --no-trunc 2>/dev/null | "
              "xargs -r docker inspect --type task 2>/dev/null", "/tasks"),
    # a manager's swarm secrets and configs (names and labels only: Docker never gives their data back)
    ("secrets", "docker secret ls -q 2>/dev/null | xargs -r docker secret inspect 2>/dev/null", "/secrets"),
    ("configs", "docker config ls -q 2>/dev/null | xargs -r docker config inspect --format "
                "'{{json .ID}} {{json .Spec.Name}} {{json .Spec.Labels}}' 2>/dev/null", "/configs"),
    ("volumes", "docker volume ls -q 2>/dev/null | xargs -r docker volume inspect 2>/dev/null", "/volumes"),
    ("images", "", ""),  # per run: the inventory's images
    # dnet's chains in the nat and filter tables, from one iptables-save (two iptables runs where it is missing)
    ("rules", "if command -v iptables-save >/dev/null 2>&1; then iptables-save 2>/dev/null; else echo '*nat'; "
              "iptables -w -t nat -S 2>/dev/null; echo '*filter'; iptables -w -S 2>/dev/null; fi | "
              "grep -E -- '^[*]|^:DNET-|^-[AN] DNET-|-j DNET-'", ""),
    ("routes", 'while IFS= read -r l; do echo "$l"; done </proc/net/route', ""),
    ("ipvs", "[ -e /proc/net/ip_vs ] && echo yes || echo no", ""),
    # the engine's packages: name, version, dpkg status ("hold ok installed" when held)
    ("packages", "dpkg-query -W -f '${Package} ${Version} ${Status}\\n' docker.io docker-ce 2>/dev/null", ""),
    ("links", 'for l in /sys/class/net/*/mtu; do read -r m <"$l" && echo "${l%/mtu}" "$m"; done', ""),
    ("addrs", "ip -o -4 addr 2>/dev/null", ""),
    # who listens on swarm's gossip port: outside a swarm, an engine that still does cannot start a new swarm's
    # (read only when no engine answers or it is in no swarm; ss names the owner)
    ("gossip", "if command -v ss >/dev/null 2>&1; then ss -Hltnp 'sport = :7946' 2>/dev/null | "
               "{ read -r l && echo \"$l\"; }; else grep -qiE '^ *[0-9]+: [0-9A-F]+:1F0A [0-9A-F]+:0+ 0A' "
               "/proc/net/tcp /proc/net/tcp6 2>/dev/null && echo 'listening (owner unknown)'; fi", ""),
]
# sections that start a process only when a builtin test says there is something to read (an engine-less host reads
# neither; dpkg knows a package as installed only with its file list)
GUARDS = {
    "daemon": "[ -e /etc/docker/daemon.json ]",
    "rules": "{ command -v iptables-save || command -v iptables; } >/dev/null 2>&1",
    "addrs": "command -v ip >/dev/null 2>&1",
    "packages": '{ p=; for f in /var/lib/dpkg/info/docker.io.list /var/lib/dpkg/info/docker.io:*.list '
                '/var/lib/dpkg/info/docker-ce.list /var/lib/dpkg/info/docker-ce:*.list; do [ -e "$f" ] && p=1; '
                'done; [ -n "$p" ]; }',
}
_INDEX = {name: i for i, (name, _, _) in enumerate(SECTIONS)}


def _images_cli(images: list[str]) -> str:
    imgs = " ".join(shlex.quote(i) for i in images)
    return f'for i in {imgs}; do docker image inspect --format "$i {{{{.Id}}}}" "$i" 2>/dev/null; done'


def _first_id(var: str) -> str:
    """Shell: the first top-level "Id" of the one-line JSON in $var (parameter expansion, no process)."""
    return f'{var}=${{{var}#*\\"Id\\":\\"}}; {var}=${{{var}%%\\"*}}'


def _cli(images: list[str]) -> str:
    """Shell: the engine sections through the docker CLI, a command each, but only once `docker version` shows that
    an engine answers (on a host whose engine is stopped each would start, fail and cost ~40 ms of CPU)."""
    f = {name: f'"$d/{i}"' for name, i in _INDEX.items()}
    rest = [(i, cli) for i, (name, cli, path) in enumerate(SECTIONS) if path and name != "docker"]
    if images:
        rest.append((_INDEX["images"], _images_cli(images)))
    # a stale gossip listener is an answering engine's (a stopped or missing engine listens on nothing)
    rest.append((_INDEX["gossip"], SECTIONS[_INDEX["gossip"]][1]))
    background = " ".join(f'{{ {cmd}; }} >"$d/{i}" 2>/dev/null &' for i, cmd in rest)
    down = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"
    return (f'if ! command -v docker >/dev/null 2>&1; then echo MISSING >{f["docker"]}; '
            f'elif [ ! -S {SOCK} ] && [ -z "${{DOCKER_HOST:-}}" ]; then echo {shlex.quote(down)} >{f["docker"]}; '
            f'else {{ {SECTIONS[_INDEX["docker"]][1]}; }} >{f["docker"]} 2>/dev/null; read -r j <{f["docker"]}; '
            f'case $j in [0-9]*) {background} wait;; esac; fi')


def _api(images: list[str]) -> str:
    """Shell: every engine fact from one curl, then the containers' inspects from a second; writes the sections'
    files as the CLI commands would. When the socket does not answer (a stopped engine's leftover socket): the CLI."""
    f = {name: f'"$d/{i}"' for name, i in _INDEX.items()}
    gets = [f"-o {f[name]} 'http://d{path}'" for name, _, path in SECTIONS if path and name != "containers"]
    gets.append("-o \"$d/clist\" 'http://d/containers/json?all=1'")
    gets += [f"-o \"$d/img{k}\" {shlex.quote(f'http://d/images/{i}/json')}" for k, i in enumerate(images)]
    lines = [f"{API} {' '.join(gets)}",
             f"if [ $? = 7 ]; then {_cli(images)}; exit; fi",
             f"command -v docker >/dev/null 2>&1 || echo MISSING >{f['docker']}",
             # the list's top-level "Id"s (nested keys are "NetworkID", "EndpointID", ...), inspected in one run
             'u=; j=; read -r j <"$d/clist"',
             'while case $j in *\'"Id":"\'*) true;; *) false;; esac; do j=${j#*\\"Id\\":\\"}; '
             'u="$u http://d/containers/${j%%\\"*}/json"; j=${j#*\\"}; done',
             f'if [ -n "$u" ]; then {API} $u >{f["containers"]}; else : >{f["containers"]}; fi']
    for k, i in enumerate(images):
        lines.append(f'j=; [ -s "$d/img{k}" ] && read -r j <"$d/img{k}" && {{ {_first_id("j")}; '
                     f'echo {shlex.quote(i)} "$j"; }} >>{f["images"]}')
    # gossip matters only outside a swarm (the /info answer is one line)
    lines.append(f'j=; read -r j <{f["swarm"]}; case $j in *\'"LocalNodeState":"inactive"\'*|"") '
                 f'{{ {SECTIONS[_INDEX["gossip"]][1]}; }} >{f["gossip"]} 2>/dev/null;; esac')
    return "; ".join(lines)


def script(images: list[str], first: str = "") -> str:
    """The one command that prints every fact, section by section.

    The engine's sections (many reads, the slow part) run in the background, each into a file of a private temp
    directory, printed after the rest; every other section prints straight to stdout meanwhile. A host without an
    engine gets no temp directory at all: each file made on a container's overlay filesystem costs its CPU, and
    the files, their marks and the mktemp, cat and rm around them were half of a bare host's facts read. `first`
    runs before everything, its output in section "first" (a changing run takes its lock there, so its facts are
    read under the lock).
    """
    mark = f"printf '\\n{MARK}%s\\n'"
    # a private directory or nothing: a guessable /tmp path could be made a link by another user beforehand
    lines = ['mk() { d=$(mktemp -d) || { echo "dnet: mktemp -d failed on this host (is /tmp writable?)" >&2; '
             'exit 1; }; trap \'rm -rf "$d"\' EXIT; }; d=']
    if first:
        lines.append(f"{mark} first; {{ {first}; }} 2>/dev/null")
    # the Engine API when its socket is there and curl is; else the CLI; a bare host runs none of them
    lines.append(f'if [ -S {SOCK} ] && command -v curl >/dev/null 2>&1; then mk; {{ {_api(images)}; }} '
                 f'>/dev/null 2>&1 & elif ! command -v docker >/dev/null 2>&1; then {mark} docker; echo MISSING; '
                 f'else mk; {{ {_cli(images)}; }} >/dev/null 2>&1 & fi')
    engine = [(name, str(i)) for i, (name, _, path) in enumerate(SECTIONS) if path or name in ("images", "gossip")]
    in_files = {name for name, _ in engine}
    for name, cmd, _ in SECTIONS:
        if name not in in_files:
            cmd = f"{{ {cmd}; }} 2>/dev/null"
            lines.append(f"{mark} {name}; " + (f"if {GUARDS[name]}; then {cmd}; fi" if name in GUARDS else cmd))
    lines.append("wait")
    # the engine's sections, each after its mark, printed by one cat (printf is a builtin, cat is not)
    lines.append('if [ -n "$d" ]; then ' + " ".join(f"{mark} {name} >\"$d/m{i}\";" for name, i in engine) +
                 " cat " + " ".join(f'"$d/m{i}" "$d/{i}"' for _, i in engine) + " 2>/dev/null; fi")
    lines.append(f"{mark} end")
    return "\n".join(lines) + "\n"


@dataclass
class HostFacts:
    """What one host has now."""

    host: str
    os_id: str = "unknown"
    init: str = "sysv"
    engine: str | None = None  # server version, None when docker is missing or down
    engine_error: str = ""
    arch: str = ""  # the engine's architecture as Docker names it (amd64, arm64), "" when unknown
    daemon: dict[str, Any] = field(default_factory=dict)
    daemon_raw: str = ""
    swarm: SwarmFact = field(default_factory=SwarmFact)
    networks: list[NetworkFact] = field(default_factory=list)
    containers: list[ContainerFact] = field(default_factory=list)
    services: list[ServiceFact] = field(default_factory=list)
    nodes: list[NodeFact] = field(default_factory=list)
    images: dict[str, str] = field(default_factory=dict)
    nat_rules: list[str] = field(default_factory=list)
    filter_rules: list[str] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)
    ipvs: bool = False
    mtus: dict[str, int] = field(default_factory=dict)  # interface -> MTU
    addresses: dict[str, list[str]] = field(default_factory=dict)  # interface -> IPv4 addresses
    gossip_listener: str = ""  # what listens on 7946/tcp ("" when nothing does)
    tasks: dict[str, str] | None = None  # a manager's tasks: task ID -> container ID ("" before it has one)
    secrets: list[ObjectFact] = field(default_factory=list)  # a manager's swarm secrets
    configs: list[ObjectFact] = field(default_factory=list)  # a manager's swarm configs
    volumes: list[ObjectFact] = field(default_factory=list)
    packages: dict[str, str] = field(default_factory=dict)  # installed engine package -> its version
    held: list[str] = field(default_factory=list)  # packages apt-mark holds
    first: str = ""  # what the command run before the facts printed (see script())

    def interface_of(self, address: str) -> str | None:
        """The interface that holds an address (the host's underlay interface for its own address)."""
        return next((i for i, addrs in self.addresses.items() if address in addrs), None)

    @property
    def swarm_state(self) -> str:
        return self.swarm.state

    @property
    def stale_gossip(self) -> bool:
        """Outside any swarm, yet the engine still listens on 7946/tcp: the gossip of a swarm it left did not shut
        down (its leave broadcast timed out), so a new swarm's gossip cannot bind and this host gets no overlay
        peers. A restart of the engine frees the port."""
        return self.swarm_state == "inactive" and bool(self.gossip_listener) and \
            ("dockerd" in self.gossip_listener or "owner unknown" in self.gossip_listener)

    @property
    def node_id(self) -> str:
        return self.swarm.node_id

    @property
    def cluster_id(self) -> str:
        return self.swarm.cluster_id

    @property
    def is_manager(self) -> bool:
        return self.swarm.control_available

    @property
    def daemon_valid(self) -> bool:
        """False when daemon.json exists but is not a JSON object."""
        return not self.daemon_raw.strip() or bool(self.daemon)

    def network(self, name: str) -> NetworkFact | None:
        return next((n for n in self.networks if n.name == name), None)

    def container(self, name: str) -> ContainerFact | None:
        return next((c for c in self.containers if c.name == name), None)

    def service(self, name: str) -> ServiceFact | None:
        return next((s for s in self.services if s.name == name), None)


def _json(host: str, section: str, text: str, default: Any) -> Any:
    text = text.strip()
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError as exc:
        raise FactsError(host, section, f"not JSON: {exc}; output began {text[:60]!r}") from None


def concatenated(text: str) -> list[Any]:
    """JSON documents one after another (what one curl prints for several URLs); ValueError when one is not."""
    text, docs = text.strip(), []
    dec, pos = json.JSONDecoder(), 0
    while pos < len(text):
        obj, end = dec.raw_decode(text, pos)
        docs.append(obj)
        pos = len(text) - len(text[end:].lstrip())
    return docs


def _list(host: str, section: str, text: str) -> list[dict[str, Any]]:
    """A JSON list (the CLI's inspect) or objects one after another (one API answer per object)."""
    text = text.strip()
    if text.startswith("{"):
        try:
            val: Any = concatenated(text)
        except ValueError as exc:
            raise FactsError(host, section, f"not JSON: {exc}; output began {text[:60]!r}") from None
    else:
        val = _json(host, section, text, [])
    if not isinstance(val, list) or not all(isinstance(x, dict) for x in val):
        raise FactsError(host, section, f"expected a JSON list of objects, got {type(val).__name__}")
    return val


def container(r: Reader, d: dict[str, Any]) -> ContainerFact:
    """One `docker inspect` entry."""
    state, config = r.obj(d, "State"), r.obj(d, "Config")
    endpoints = {}
    for net, ep in r.obj(r.obj(d, "NetworkSettings"), "Networks").items():
        if not isinstance(ep, dict):
            raise r.fail(f"network '{net}' of a container is not an object")
        endpoints[net] = Endpoint(net, r.text(ep, "NetworkID"), r.text(ep, "IPAddress"),
                                  r.text(r.obj(ep, "IPAMConfig"), "IPv4Address"),
                                  [str(a) for a in r.seq(ep, "Aliases")])
    return ContainerFact(r.labels(config), r.text(d, "Id", True), r.text(d, "Name", True).lstrip("/"),
                         r.text(config, "Image"), r.flag(state, "Running"), r.text(state, "Status"),
                         r.number(d, "RestartCount"), r.text(r.obj(r.obj(d, "HostConfig"), "RestartPolicy"), "Name"),
                         endpoints, d)


def network(r: Reader, d: dict[str, Any]) -> NetworkFact:
    """One `docker network inspect` entry."""
    subnets = [r.text(c, "Subnet") for c in r.seq(r.obj(d, "IPAM"), "Config") if isinstance(c, dict)]
    mtu = r.obj(d, "Options").get("com.docker.network.driver.mtu")
    return NetworkFact(r.labels(d), r.text(d, "Id", True), r.text(d, "Name", True), r.text(d, "Driver"),
                       r.text(d, "Scope"), [s for s in subnets if s], r.flag(d, "Internal"), r.flag(d, "Attachable"),
                       int(mtu) if isinstance(mtu, str) and mtu.isdigit() else None, d)


def service(r: Reader, d: dict[str, Any]) -> ServiceFact:
    """One `docker service inspect` entry."""
    spec = r.obj(d, "Spec")
    task = r.obj(spec, "TaskTemplate")
    nets = r.seq(task, "Networks") or r.seq(spec, "Networks")
    replicated = r.obj(r.obj(spec, "Mode"), "Replicated")
    return ServiceFact(r.labels(spec), r.text(d, "ID", True), r.text(spec, "Name", True),
                       r.text(r.obj(task, "ContainerSpec"), "Image"),
                       r.number(replicated, "Replicas") if "Replicated" in r.obj(spec, "Mode") else None,
                       [r.text(n, "Target") for n in nets if isinstance(n, dict)], d)


def _objects(host: str, section: str, text: str) -> list[ObjectFact]:
    """Secrets, configs or volumes: their names and labels (the CLI's configs as `ID NAME LABELS` JSON words)."""
    if text.strip().startswith('"'):
        rows = [ln.split(" ", 2) for ln in text.strip().splitlines() if ln.count(" ") >= 2]
        text = "[" + ",".join(f'{{"ID":{i},"Spec":{{"Name":{n},"Labels":{lb}}}}}' for i, n, lb in rows) + "]"
    out = []
    for d in _list(host, section, text):
        r = Reader(host, section)
        spec = r.obj(d, "Spec") if "Spec" in d else d
        out.append(ObjectFact(r.labels(spec), r.text(d, "ID") or r.text(d, "Name"), r.text(spec, "Name", True)))
    return sorted(out, key=lambda o: o.name)


def node(r: Reader, d: dict[str, Any]) -> NodeFact:
    """One `docker node inspect` entry."""
    spec, status = r.obj(d, "Spec"), r.obj(d, "Status")
    return NodeFact(r.labels(spec), r.text(d, "ID", True), r.text(r.obj(d, "Description"), "Hostname"),
                    r.text(spec, "Role"), r.text(spec, "Availability"), r.text(status, "State"),
                    r.text(status, "Addr"))


def swarm(r: Reader, d: dict[str, Any]) -> SwarmFact:
    """`docker info` .Swarm."""
    cluster = r.obj(d, "Cluster")
    enc = r.obj(r.obj(cluster, "Spec"), "EncryptionConfig")
    return SwarmFact(r.text(d, "LocalNodeState") or "inactive", r.text(d, "NodeID"), r.text(d, "NodeAddr"),
                     r.text(cluster, "ID"), r.flag(d, "ControlAvailable"), r.text(d, "Error"),
                     r.flag(enc, "AutoLockManagers"),
                     [(r.text(m, "NodeID"), r.text(m, "Addr").rpartition(":")[0])
                      for m in r.seq(d, "RemoteManagers") if isinstance(m, dict)], cluster)


def sections(text: str) -> dict[str, str]:
    """Split the script's output at its section marks."""
    out: dict[str, list[str]] = {}
    name = ""
    for line in text.splitlines():
        if line.startswith(MARK):
            name = line[len(MARK):].strip()
            out[name] = []
        elif name:
            out[name].append(line + "\n")
    return {k: "".join(v) for k, v in out.items()}


def parse(host: str, text: str) -> HostFacts:
    """Turn the script's output into HostFacts (pure; tested from recorded output).

    Raises FactsError, naming the host and section, when docker printed something that is not what it should be.
    """
    sec = sections(text)
    f = HostFacts(host)
    f.first = sec.get("first", "")
    f.os_id = sec.get("os", "").strip() or "unknown"
    f.init = sec.get("init", "").strip() or "sysv"
    ver = sec.get("docker", "").strip()
    if ver.startswith("{"):  # the Engine API's /version
        v = _json(host, "engine version", ver, {})
        ver = f"{v.get('Version', '')} {v.get('Arch', '')}".strip()
    m = re.fullmatch(r"([^\s]+)(?: ([a-z0-9]+))?", ver)
    if m and ver != "MISSING" and not ver.lower().startswith(("cannot", "error", "template")):
        f.engine, f.arch = m[1], m[2] or ""
    else:
        f.engine_error = ver or "no output"
    f.daemon_raw = sec.get("daemon", "")
    try:  # the operator's file: a broken one is reported when dnet would write it, not here
        daemon = json.loads(f.daemon_raw) if f.daemon_raw.strip() else {}
    except ValueError:
        daemon = {}
    f.daemon = daemon if isinstance(daemon, dict) else {}
    sw = _json(host, "swarm state", sec.get("swarm", ""), {})
    if not isinstance(sw, dict):
        raise FactsError(host, "swarm state", f"expected a JSON object, got {type(sw).__name__}")
    sw = sw.get("Swarm", sw) if isinstance(sw.get("Swarm"), dict) else sw  # the API's /info holds .Swarm
    f.swarm = swarm(Reader(host, "swarm state"), sw)
    # sorted as the CLI's ls commands sort them (the API answers in its own order)
    f.networks = sorted((network(Reader(host, "networks"), d)
                         for d in _list(host, "networks", sec.get("networks", ""))), key=lambda n: n.name)
    f.containers = [container(Reader(host, "containers"), d)
                    for d in _list(host, "containers", sec.get("containers", ""))]
    f.services = sorted((service(Reader(host, "services"), d)
                         for d in _list(host, "services", sec.get("services", ""))), key=lambda s: s.name)
    f.nodes = sorted((node(Reader(host, "swarm nodes"), d)
                      for d in _list(host, "swarm nodes", sec.get("nodes", ""))), key=lambda n: (n.hostname, n.id))
    if f.is_manager and "tasks" in sec:  # a worker's answer is an error (or nothing): it knows no task list
        f.tasks = {}
        for d in _list(host, "tasks", sec["tasks"]):
            if isinstance(d.get("ID"), str):
                r = Reader(host, "tasks")
                f.tasks[d["ID"]] = r.text(r.obj(r.obj(d, "Status"), "ContainerStatus"), "ContainerID")
    if f.is_manager:
        f.secrets = _objects(host, "secrets", sec.get("secrets", ""))
        f.configs = _objects(host, "configs", sec.get("configs", ""))
    vols = sec.get("volumes", "").strip()
    if vols.startswith("{") and '"Volumes"' in vols[:12]:  # the API's /volumes wraps its list
        vols = json.dumps(_json(host, "volumes", vols, {}).get("Volumes") or [])
    f.volumes = _objects(host, "volumes", vols)
    for line in sec.get("images", "").splitlines():
        if " " in line.strip():
            ref, iid = line.strip().rsplit(" ", 1)
            f.images[ref] = iid
    if "rules" in sec:
        tables = rules(sec["rules"])
        f.nat_rules, f.filter_rules = tables.get("nat", []), tables.get("filter", [])
    else:  # recorded before one iptables-save read both
        f.nat_rules = [ln for ln in sec.get("nat", "").splitlines() if ln.strip()]
        f.filter_rules = [ln for ln in sec.get("filter", "").splitlines() if ln.strip()]
    f.routes = routes(sec.get("routes", ""))
    f.ipvs = sec.get("ipvs", "").strip() == "yes"
    for line in sec.get("packages", "").splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[3:] == ["ok", "installed"]:
            f.packages[parts[0]] = parts[1]
            if parts[2] == "hold":
                f.held.append(parts[0])
    f.mtus, f.addresses = links(sec.get("links", "")), addrs(sec.get("addrs", ""))
    f.gossip_listener = " ".join(sec.get("gossip", "").split())
    return f


def genuine_tasks(facts: dict[str, HostFacts]) -> Callable[[ContainerFact], bool]:
    """Whether a container is a real swarm task: its task ID is in a manager's task list, with this container's ID.
    Any docker user can label a plain container as a service's task; only when no manager was read is the label
    taken on trust."""
    known: dict[str, str] = {}
    lists = [f.tasks for f in facts.values() if f.tasks is not None]
    for tasks in lists:
        known.update(tasks)
    if not lists:
        return lambda c: c.is_task
    return lambda c: c.is_task and c.labels.get(TASK_ID_LABEL, "") in known and \
        known[c.labels[TASK_ID_LABEL]] in ("", c.id)


def links(text: str) -> dict[str, int]:
    """interface -> MTU, from "/sys/class/net/eth0 1500" lines (or, as recorded before, `ip -o link`:
    "2: eth0@if9: <...> mtu 1500 qdisc ...")."""
    out: dict[str, int] = {}
    for m in re.finditer(r"^/sys/class/net/(\S+) (\d+)$", text, re.M):
        out[m[1]] = int(m[2])
    for m in re.finditer(r"^\d+: ([^:@\s]+)(?:@\S+)?: .*? mtu (\d+)", text, re.M):
        out[m[1]] = int(m[2])
    return out


def rules(text: str) -> dict[str, list[str]]:
    """iptables-save's lines of dnet's chains -> table -> rules as `iptables -S` prints them (a chain's ":NAME - [0:0]"
    as "-N NAME")."""
    out: dict[str, list[str]] = {}
    table = ""
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith(":DNET-") and table:
            out.setdefault(table, []).append("-N " + line[1:].split()[0])
        elif line.strip() and table:
            out.setdefault(table, []).append(line)
    return out


def _ipv4(hexword: str, little: bool) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(int.from_bytes(bytes.fromhex(hexword), "little" if little else "big"))


def routes(text: str) -> list[str]:
    """The main table's IPv4 routes as `ip -4 -o route` starts them ("10.0.0.0/24 dev eth0", "default via GW dev
    eth0"), from /proc/net/route (hex in the host's byte order; the masks tell which) or as recorded before."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or not lines[0].startswith("Iface"):
        return lines
    rows = [ln.split() for ln in lines[1:] if len(ln.split()) >= 8]
    # a netmask is ones then zeros: read in the wrong byte order, a mask like ffffff00 is not
    little = all(_contiguous(_ipv4(r[7], True)) for r in rows)
    out = []
    for r in rows:
        iface, dest, gw, flags, mask = r[0], _ipv4(r[1], little), _ipv4(r[2], little), int(r[3], 16), r[7]
        if not flags & 1 or iface == "*":  # not up, or unreachable/blackhole
            continue
        net = ipaddress.IPv4Network(f"{dest}/{_ipv4(mask, little)}", strict=False)
        where = "default" if net.prefixlen == 0 else str(net)
        out.append(f"{where} via {gw} dev {iface}" if flags & 2 else f"{where} dev {iface}")
    return out


def _contiguous(mask: ipaddress.IPv4Address) -> bool:
    bits = int(mask)
    inverted = ~bits & 0xFFFFFFFF
    return inverted & (inverted + 1) == 0


def addrs(text: str) -> dict[str, list[str]]:
    """`ip -o -4 addr` -> interface -> addresses ("2: eth0    inet 192.168.77.11/24 brd ...")."""
    out: dict[str, list[str]] = {}
    for m in re.finditer(r"^\d+: (\S+)\s+inet ([0-9.]+)/", text, re.M):
        out.setdefault(m[1], []).append(m[2])
    return out


def gather(t: Transport, images: list[str], first: str = "") -> HostFacts:
    """Read every fact of one host in a single command (after running `first`: its output is f.first)."""
    r = t.run(script(images, first), check=False, timeout=120)
    if "end" not in r.stdout.split(MARK)[-1]:
        r.check()
        raise FactsError(t.name, "facts", "the facts script stopped before its end")
    return parse(t.name, r.stdout)
