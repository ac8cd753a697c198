"""Docker-in-Docker labs: K nodes with sshd and their own dockerd, plus an upstream 'internet' host."""
from __future__ import annotations

import contextlib
import ipaddress
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dnet import MANAGED_LABEL
from dnet.errors import DnetError

try:
    import docker
    from docker.errors import APIError, DockerException, NotFound
except ImportError as _missing:  # labs need the SDK; plan, apply and verify do not
    raise DnetError("labs need the docker Python SDK, which is not installed: pip install 'dnet-swarm[lab]' (or pip "
                    "install docker)") from _missing
from dnet.images import ensure_probe
from dnet.lab import tls
from dnet.lab.image import build_node_image, node_image_tag
from dnet.lab.state import LabState, Node, host_spec
from dnet.poll import poll
from dnet.runner import parallel
from dnet.transport.ssh import SSHTransport

LAB_LABEL = "dnet.lab"
FALLBACK_CAPS = ["SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE", "NET_RAW", "MKNOD", "SYS_CHROOT", "AUDIT_WRITE", "SETFCAP",
                 "DAC_READ_SEARCH", "IPC_LOCK"]
Log = Callable[[str], None]


def client() -> docker.DockerClient:
    """A client for the operator's engine, or a clear error when none answers."""
    if not shutil.which("docker"):
        raise DnetError("labs need the docker command on this machine (apt-get install docker.io, or Docker's "
                        "docker-ce-cli), and an engine that answers")
    try:
        c = docker.from_env(timeout=120)
        c.ping()
        return c
    except DockerException as exc:
        raise DnetError(f"no Docker engine answers here ({exc}); start one, e.g. bash scripts/setup.sh") from None


def labels(name: str, role: str) -> dict[str, str]:
    return {LAB_LABEL: name, f"{LAB_LABEL}.role": role, MANAGED_LABEL: "true"}


def _check_free(c: docker.DockerClient, name: str, subnet: ipaddress.IPv4Network | ipaddress.IPv6Network) -> None:
    if c.containers.list(all=True, filters={"label": f"{LAB_LABEL}={name}"}) or \
            c.networks.list(filters={"label": f"{LAB_LABEL}={name}"}):
        raise LabExists(f"a lab named '{name}' exists already; remove it with dnet lab down --name {name} "
                        f"or pick another --name")
    for net in c.networks.list():
        for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
            sub = cfg.get("Subnet")
            if sub and ":" not in sub and ipaddress.ip_network(sub, strict=False).overlaps(subnet):
                raise LabExists(f"lab subnet {subnet} clashes with {sub} of docker network '{net.name}'; "
                                f"pass another --subnet")
    routes = subprocess.run(["ip", "-4", "-o", "route"], capture_output=True, text=True).stdout.splitlines()
    for line in routes:
        dest = line.split()[0] if line.split() else "default"
        if dest != "default" and ipaddress.ip_network(dest, strict=False).overlaps(subnet):
            raise LabExists(f"lab subnet {subnet} clashes with the route '{line.strip()}' on this machine; "
                            f"pass another --subnet")


def _forwarders() -> str:
    """dnsmasq --server flags for this machine's non-loopback resolvers."""
    try:
        text = Path("/etc/resolv.conf").read_text(encoding="utf-8")
    except OSError:
        return ""
    servers = [ln.split()[1] for ln in text.splitlines() if ln.startswith("nameserver") and len(ln.split()) > 1]
    return " ".join(f"--server={s}" for s in servers if not s.startswith("127.") and s != "::1")


class LabExists(DnetError):
    """The lab name or its subnet is taken (nothing was created)."""


class _Starter:
    """Creates node containers, trying --privileged first and falling back to explicit caps."""

    def __init__(self, c: docker.DockerClient, lab: str, network: str, log: Log) -> None:
        self.c, self.lab, self.network, self.log = c, lab, network, log
        self.privileged: bool | None = None

    def start(self, name: str, image: str, ip: str, env: dict[str, str], role: str, engine: bool) -> str:
        cname = f"dnet-lab-{self.lab}-{name}"
        binds: dict[str, dict[str, str]] = {}
        if engine:
            vol = self.c.volumes.create(f"{cname}-docker", labels=labels(self.lab, "volume"))
            binds[vol.name] = {"bind": "/var/lib/docker", "mode": "rw"}
        for privileged in ([self.privileged] if self.privileged is not None else [True, False]):
            if not engine:  # the upstream host needs no special rights
                privileged = False
            hc = self._host_config(privileged, engine, binds, env.get("DNET_DNS"))
            netcfg = self.c.api.create_networking_config(
                {self.network: self.c.api.create_endpoint_config(ipv4_address=ip)})
            cid = self.c.api.create_container(image, name=cname, hostname=name, environment=env,
                                              labels=labels(self.lab, role), host_config=hc,
                                              networking_config=netcfg)["Id"]
            cid = str(cid)
            try:
                self.c.api.start(cid)
            except APIError as exc:
                self.c.api.remove_container(cid, force=True)
                if privileged and ("caps" in str(exc) or "not permitted" in str(exc)):
                    self.log("--privileged is refused by this engine; using the explicit capability set")
                    continue
                raise DnetError(f"cannot start lab node {name}: {exc.explanation or exc}") from None
            if engine:
                self.privileged = privileged
            return cid
        raise DnetError(f"cannot start lab node {name}")

    def _host_config(self, privileged: bool, engine: bool, binds: dict[str, Any], dns: str | None) -> Any:
        kw: dict[str, Any] = {"init": True, "binds": binds, "dns": [dns] if dns else None}
        if engine and privileged:
            kw["privileged"] = True
        elif engine:
            kw.update(cap_add=FALLBACK_CAPS, cgroupns="host",
                      security_opt=["apparmor=unconfined", "seccomp=unconfined"])
            kw["binds"] = {**binds, "/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}}
        hc = self.c.api.create_host_config(**kw)
        if engine and not privileged:  # the API form of --security-opt systempaths=unconfined
            hc["MaskedPaths"], hc["ReadonlyPaths"] = [], []
        return hc


def up(name: str, nodes: int, subnet: str, bare: bool, log: Log, image: str | None = None) -> LabState:
    """Create the lab and wait until every node answers on SSH; on failure remove what was made.

    image: a node image derived from dnet's (the benchmarks add packages); default the current node image.
    """
    c = client()
    net = lab_subnet(subnet, nodes, 200)
    _check_free(c, name, net)
    return or_remove(name, log, lambda: _up(c, name, nodes, net, bare, log, image), down)


def lab_subnet(subnet: str, nodes: int, most: int) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """The --subnet, checked to hold `nodes` nodes (at most `most`) after the addresses a lab keeps."""
    try:
        net = ipaddress.ip_network(subnet)
    except ValueError as exc:
        raise DnetError(f"--subnet {subnet}: {exc}") from None
    if not 1 <= nodes <= min(most, net.num_addresses - 12):
        raise DnetError(f"--nodes must be between 1 and {min(most, net.num_addresses - 12)} for {subnet}")
    return net


def or_remove(name: str, log: Log, make: Callable[[], LabState], remove: Callable[[str, Log], object]) -> LabState:
    """Make a lab; when that fails in any way, remove what it made and say why in dnet's words."""
    try:
        return make()
    except (DnetError, DockerException, OSError, KeyboardInterrupt) as exc:
        log(f"lab '{name}' failed to come up; removing what it made")
        remove(name, log)
        if isinstance(exc, DockerException):
            raise DnetError(f"lab '{name}': the engine refused: {exc}") from None
        if isinstance(exc, OSError):
            raise DnetError(f"lab '{name}': {exc}") from None
        raise


def _up(c: docker.DockerClient, name: str, nodes: int, net: ipaddress.IPv4Network | ipaddress.IPv6Network,
        bare: bool, log: Log, image: str | None = None) -> LabState:
    subnet = str(net)
    t = build_node_image(bare=bare, log=log)
    log(f"node image {node_image_tag(bare)}: " + (f"built in {t:.1f}s" if t else "cached"))
    image = image or node_image_tag(bare)
    state = LabState.layout(name, "docker", net, nodes)
    assert state.upstream
    pub = state.make_key()
    state.save()
    netname = make_network(c, name, net)
    starter = _Starter(c, name, netname, log)
    ca = start_upstream(starter, state, pub, image)
    for n in state.nodes:
        n.container = starter.start(n.name, image, n.address,
                                    {"DNET_AUTHORIZED_KEY": pub, "DNET_DNS": state.upstream.address, "DNET_LAB_CA": ca},
                                    "node", True)  # bare nodes get an engine later: same rights
    state.save()
    log(f"started {nodes} nodes and the upstream host on {subnet}; waiting for sshd and dockerd")
    _trust_host_keys(c, state)
    wait_all(state, bare, log)
    return state


def make_network(c: docker.DockerClient, name: str, net: ipaddress.IPv4Network | ipaddress.IPv6Network,
                 bridge: str | None = None) -> str:
    """The lab's bridge network (gateway .1 on this machine); bridge: the Linux bridge's name, for VMs' taps."""
    netname = f"dnet-lab-{name}"
    gateway = str(next(net.hosts()))
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=str(net), gateway=gateway)])
    options = {"com.docker.network.bridge.name": bridge} if bridge else None
    try:
        c.networks.create(netname, driver="bridge", ipam=ipam, labels=labels(name, "network"), options=options)
    except APIError as exc:
        raise DnetError(f"cannot create the lab network {netname} ({net}): {exc.explanation or exc}") from None
    return netname


def start_upstream(starter: _Starter, state: LabState, pub: str, image: str) -> str:
    """Start the upstream 'internet' host (http, https, DNS for the lab's names); return the lab CA's PEM."""
    assert state.upstream
    records = " ".join(f"--host-record={n.name},{n.name}.lab,{n.address}" for n in state.nodes)
    up_ip = state.upstream.address
    ca, cert, key = tls.make(state.dir, state.name, ["upstream.lab", "upstream", up_ip])  # nodes trust the CA
    state.upstream.container = starter.start(
        "upstream", image, up_ip,
        {"DNET_ROLE": "upstream", "DNET_UPSTREAM_IP": up_ip, "DNET_AUTHORIZED_KEY": pub, "DNET_DNS_RECORDS": records,
         "DNET_DNS_FORWARD": _forwarders(), "DNET_TLS_CERT": cert, "DNET_TLS_KEY": key}, "upstream", False)
    return ca


def _trust_host_keys(c: docker.DockerClient, state: LabState, nodes: list[Node] | None = None,
                     timeout: float = 30) -> None:
    """Record each node's host key, read out of band from the container we created."""
    lines = []
    for n in nodes if nodes is not None else [*state.nodes, *([state.upstream] if state.upstream else [])]:
        ctr = c.containers.get(n.container)

        def read_key(ctr: Any = ctr) -> bytes | None:
            code, out = ctr.exec_run(["cat", "/etc/ssh/ssh_host_ed25519_key.pub"])
            return bytes(out) if code == 0 else None

        out = poll(read_key, timeout=timeout, what=f"{n.name}'s sshd host key")
        kind, key = out.decode().split()[:2]
        lines.append(f"{n.address} {kind} {key}")
    state.known_hosts.write_text("\n".join(lines) + "\n")


def wait_all(state: LabState, bare: bool, log: Log, timeout: float = 90) -> None:
    """Wait for every node in parallel; raise one error naming every node that did not come up."""
    results = parallel(state.nodes, lambda n: wait_ready(state, n, not bare, log, timeout), name=lambda n: n.name)
    failed = [r for r in results if not r.ok]
    if failed:
        raise DnetError("; ".join(f"{r.host}: {r.error}" for r in failed) +
                        f" (inspect with dnet lab status --name {state.name})")


def wait_ready(state: LabState, n: Node, engine: bool, log: Log, timeout: float = 90) -> str:
    start = time.monotonic()
    errors: list[str] = []

    def ssh() -> SSHTransport | None:
        try:
            return SSHTransport(host_spec(state, n), connect_timeout=5)
        except DnetError as exc:
            errors.append(str(exc))
            return None

    t = poll(ssh, timeout=timeout, what="SSH", last=lambda: errors[-1] if errors else "nothing")
    try:
        if not engine:
            log(f"{n.name}: ssh ok ({time.monotonic() - start:.1f}s), no engine (bare)")
            return "bare"
        seen: list[str] = []

        def engine_up() -> str | None:
            r = t.run("docker info --format '{{.ServerVersion}}'", check=False, timeout=20)
            seen.append((r.stdout + r.stderr).strip()[-300:])
            return r.stdout.strip() if r.ok and r.stdout.strip() else None

        left = max(5.0, timeout - (time.monotonic() - start))
        version = poll(engine_up, timeout=left, what="dockerd", last=lambda: seen[-1] if seen else "")
        how = ensure_probe(t)
        log(f"{n.name}: ssh ok, engine {version} ready, probe image {how} ({time.monotonic() - start:.1f}s)")
        return version
    finally:
        t.close()


def down(name: str, log: Log) -> int:
    """Remove exactly what the lab made (containers, volumes, network) and its state; return the count."""
    c = client()
    flt = {"label": f"{LAB_LABEL}={name}"}
    removed = 0
    for ctr in c.containers.list(all=True, filters=flt):
        ctr.remove(force=True, v=True)
        removed += 1
    for vol in c.volumes.list(filters=flt):
        try:
            vol.remove(force=True)
            removed += 1
        except NotFound:
            pass
    for net in c.networks.list(filters=flt):
        net.remove()
        removed += 1
    with contextlib.suppress(DnetError):
        LabState.load(name).remove()
    log(f"lab '{name}': removed {removed} containers, volumes and networks")
    return removed


def status(name: str) -> list[dict[str, str]]:
    """One row per lab container: node, address, state."""
    c = client()
    rows = []
    try:
        state = LabState.load(name)
        known = {n.name: n.address for n in [*state.nodes, *([state.upstream] if state.upstream else [])]}
    except DnetError:
        known = {}
    for ctr in c.containers.list(all=True, filters={"label": f"{LAB_LABEL}={name}"}):
        nets = ctr.attrs["NetworkSettings"]["Networks"]
        ip = known.get(ctr.attrs["Config"]["Hostname"]) or next((v.get("IPAddress", "") for v in nets.values()), "")
        rows.append({"lab": name, "node": ctr.attrs["Config"]["Hostname"], "address": ip, "state": ctr.status,
                     "container": ctr.name, "role": ctr.labels.get(f"{LAB_LABEL}.role", "")})
    return sorted(rows, key=lambda r: (r["role"] != "upstream", r["node"]))


class DockerProvider:
    """Docker-in-Docker nodes on this machine's engine."""

    name = "docker"

    def up(self, name: str, nodes: int, subnet: str, bare: bool, log: Log, accel: str = "auto") -> LabState:
        from dnet.lab.provider import no_accel

        no_accel(self.name, accel)
        return up(name, nodes, subnet, bare, log)

    def down(self, name: str, state: LabState | None, log: Log) -> None:
        down(name, log)

    def status(self, name: str, state: LabState | None) -> list[dict[str, str]]:
        return status(name)


PROVIDER = DockerProvider()
