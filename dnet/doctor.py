"""`dnet doctor`: known causes of swarm networking trouble, found before (or after) apply, from the real hosts.

One batched read per host (kernel features, sysctls, iptables backend, clock, listening ports) plus one port
probe per pair of hosts, all in parallel; the address plan comes from the same overlap checks plan uses.

A check is one function registered with `@check(keys=(...))`: it gets the Exam (everything read, once) and returns
its findings; each key it may report has an entry in docs/troubleshooting.md (#doctor-KEY), which a test holds.
"""
from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from dnet import converge
from dnet.errors import DnetError
from dnet.inventory.resolve import address_of
from dnet.inventory.semantic import swarm_hosts
from dnet.runner import parallel
from dnet.session import Session
from dnet.transport.base import quote

# Present: loaded (/sys/module), built in (modules.builtin) or installed as a module; "?" when none can be told.
_MOD = ('m() { if [ -d /sys/module/$1 ]; then echo y; elif [ -d /lib/modules/$(uname -r) ]; then '
        'grep -qs "/$1.ko" /lib/modules/$(uname -r)/modules.builtin /lib/modules/$(uname -r)/modules.dep && '
        'echo y || echo n; else echo "?"; fi; }\n')
READ = _MOD + r"""echo "vxlan $(m vxlan)"
echo "bridge $(m bridge)"
echo "ipvs $( [ -e /proc/net/ip_vs ] && echo y || m ip_vs)"
echo "xfrm $( [ -e /proc/net/xfrm_stat ] && echo y || m xfrm_user)"
echo "esp $(m esp4)"
echo "netem $(m sch_netem)"
echo "ip_forward $(cat /proc/sys/net/ipv4/ip_forward 2>/dev/null || echo ?)"
echo "bridge_nf $(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo ?)"
echo "iptables $(iptables -V 2>/dev/null | sed -n 's/.*(\(.*\)).*/\1/p' | head -1)"
echo "clock $(date +%s.%N)"
echo "listen $( (ss -Hltnu 2>/dev/null || netstat -ltnu 2>/dev/null) | awk '{print $1 "/" $5}' | tr '\n' ' ')"
"""
SEVERITY = ("error", "warning", "info")
# What each kernel feature carries, for doctor's kernel table
FEATURES = {"vxlan": "overlays", "bridge": "bridge networks", "ipvs": "routing mesh, vip", "xfrm": "encrypted overlays",
            "esp": "encrypted overlays", "netem": "lab delay/loss"}


@dataclass
class Finding:
    key: str  # its entry in docs/troubleshooting.md: #doctor-KEY
    severity: str  # error | warning | info
    hosts: list[str]
    what: str
    evidence: list[str]
    fix: str

    def public(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class HostRead:
    values: dict[str, str] = field(default_factory=dict)
    offset: float = 0.0  # host clock minus ours, seconds


def _read(s: Session, h: str) -> HostRead:
    t0 = time.time()
    out = s.transports[h].run(READ, check=False, timeout=30).stdout
    t1 = time.time()
    r = HostRead({k: v.strip() for k, _, v in (line.partition(" ") for line in out.splitlines()) if k})
    try:
        r.offset = float(r.values.get("clock", "")) - (t0 + t1) / 2
    except ValueError:
        r.offset = 0.0
    return r


Pair = tuple[str, str, int, str]  # (source, target, port, protocol)


def _probe(s: Session, pairs: list[Pair], pmtu: dict[str, list[str]], want: int
           ) -> tuple[dict[Pair, str], dict[tuple[str, str], int]]:
    """One script per source host, every probe in it at once: its ports (open or blocked) and its path MTU to
    each target in `pmtu` (bisected DF pings up to `want` bytes).

    TCP: connected or refused is open, silence is blocked. UDP (asked only where nothing listens on the target):
    a port-unreachable answer (nc exits 1) is open, silence is blocked."""
    addrs = {h: address_of(s.specs[h]) for h in s.specs}
    by_addr = {a: h for h, a in addrs.items()}
    by_src: dict[str, list[str]] = {}
    for src, dst, port, proto in pairs:
        by_src.setdefault(src, []).append(
            f"(r=$(timeout 4 nc -z -v -w 2 {'-u ' if proto == 'udp' else ''}{quote(addrs[dst])} {port} 2>&1; "
            f"echo \" rc=$?\"); echo port {dst} {port} {proto} $r) &")
    for src, dsts in pmtu.items():
        by_src.setdefault(src, []).extend(f"(echo pmtu $(pmtu {quote(addrs[d])} {want})) &" for d in dsts)

    def one(src: str) -> tuple[dict[Pair, str], dict[tuple[str, str], int]]:
        out = s.transports[src].run(_PMTU + "\n".join(by_src[src]) + "\nwait\n", check=False, timeout=120).stdout
        ports: dict[Pair, str] = {}
        sizes: dict[tuple[str, str], int] = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "pmtu" and parts[1] in by_addr and parts[2].isdigit():
                sizes[(src, by_addr[parts[1]])] = int(parts[2])
            elif len(parts) >= 5 and parts[0] == "port":
                rc = parts[-1].removeprefix("rc=")
                if rc in ("127", "124"):  # no nc on the source host, or it hung: nothing can be told
                    continue
                if parts[3] == "udp":
                    state = "open" if rc == "1" else "blocked"
                else:
                    state = "open" if rc == "0" or "refused" in line.lower() else "blocked"
                ports[(src, parts[1], int(parts[2]), parts[3])] = state
        return ports, sizes

    ports: dict[Pair, str] = {}
    sizes: dict[tuple[str, str], int] = {}
    for r in parallel([h for h in by_src if h in s.transports], one):
        if r.value:
            ports.update(r.value[0])
            sizes.update(r.value[1])
    return ports, sizes


@dataclass
class Exam:
    """What every doctor check reads: the session, each host's kernel and sysctl read, the swarm's hosts, and the
    port and path-MTU probes (run once for all checks)."""

    s: Session
    reads: dict[str, HostRead]
    swarm: list[str]
    encrypted: bool  # the inventory has encrypted overlays
    mesh: bool  # the inventory uses the routing mesh (ingress ports or vip services)
    ports: dict[Pair, str]
    sizes: dict[tuple[str, str], int]
    need: int  # VXLAN's overhead
    want: int  # the largest overlay packet, 0 when no overlay needs a path check


@dataclass(frozen=True)
class DoctorCheck:
    name: str
    run: Callable[[Exam], list[Finding]]
    keys: tuple[str, ...]  # the findings it reports, each an entry in docs/troubleshooting.md: #doctor-KEY


CHECKS: dict[str, DoctorCheck] = {}


def check(*, keys: tuple[str, ...]) -> Callable[[Callable[[Exam], list[Finding]]], Callable[[Exam], list[Finding]]]:
    """Register a doctor check: `fn(exam) -> findings`, reporting only the keys it declares."""
    def register(fn: Callable[[Exam], list[Finding]]) -> Callable[[Exam], list[Finding]]:
        CHECKS[fn.__name__.strip("_")] = DoctorCheck(fn.__name__.strip("_"), fn, keys)
        return fn
    return register


def examine(s: Session, kernel: dict[str, dict[str, str]] | None = None) -> list[Finding]:
    """Every known cause found on the reachable hosts, errors first; kernel, when given, gets each host's kernel
    features ("yes", "no", or "?" when it cannot be told)."""
    inv = s.loaded.model
    reads = {r.host: r.value for r in parallel(list(s.transports), lambda h: _read(s, h)) if r.ok and r.value}
    if kernel is not None:
        words = {"y": "yes", "n": "no"}
        for h, r in sorted(reads.items()):
            kernel[h] = {k: words.get(r.values.get(k, "?"), "?") for k in FEATURES}
    swarm = [h for h in swarm_hosts(inv) if h in reads]
    encrypted = any(n.encrypted for n in inv.networks.values() if n.driver == "overlay")
    uses_mesh = any(p.mode == "ingress" for svc in inv.services.values() for p in svc.ports) or \
        any(svc.endpoint_mode == "vip" for svc in inv.services.values())
    pairs = _port_pairs(s, swarm, reads)
    need, want = _vxlan_size(s, swarm)
    pmtu = {h: [d for d in swarm if d != h] for h in swarm} if want else {}
    ports, sizes = _probe(s, pairs, pmtu, want)
    exam = Exam(s, reads, swarm, encrypted, uses_mesh, ports, sizes, need, want)
    found: list[Finding] = []
    for c in CHECKS.values():
        for f in c.run(exam):
            if f.key not in c.keys:  # the docs test reads the declared keys: an undeclared one has no entry
                raise DnetError(f"doctor check {c.name} reported '{f.key}', which it does not declare")
            found.append(f)
    for h, e in s.host_errors.items():
        found.append(Finding(
            "unreachable", "error", [h], "unreachable", [e], "fix SSH to this host first; nothing else was read"))
    return sorted(found, key=lambda f: (SEVERITY.index(f.severity), f.what))


@check(keys=("no-vxlan", "no-bridge", "no-xfrm", "no-ipvs", "ip-forward", "bridge-nf"))
def _kernel(x: Exam) -> list[Finding]:
    reads, swarm, encrypted, mesh = x.reads, x.swarm, x.encrypted, x.mesh
    found: list[Finding] = []
    for key, need, what, fix in (
            ("vxlan", bool(swarm), "no VXLAN in the kernel: overlay networks cannot carry traffic",
             "load the vxlan module (modprobe vxlan) or use a kernel that has it"),
            ("bridge", True, "no bridge support in the kernel: Docker's bridge networks cannot work",
             "load the bridge module (modprobe bridge)"),
            ("xfrm", encrypted, "no xfrm (IPsec) in the kernel: encrypted overlays cannot carry traffic",
             "load xfrm_user and esp4, or declare the overlays without encrypted: true")):
        missing = sorted(h for h, r in reads.items() if r.values.get(key) == "n" and (h in swarm or key == "bridge"))
        if missing and need:
            found.append(Finding(f"no-{key}", "error", missing, what, [f"{key}: absent"], fix))
    no_ipvs = sorted(h for h in swarm if reads[h].values.get("ipvs") != "y")
    if no_ipvs:
        found.append(Finding(
            "no-ipvs", "error" if mesh else "info", no_ipvs,
            "no IPVS (ip_vs) in the kernel: the routing mesh does not work, so ingress-mode published ports and "
            "endpoint_mode vip (service virtual IPs) fail; host-mode ports and endpoint_mode dnsrr work",
            ["/proc/net/ip_vs: absent (ip_vs not loaded" + (", and no module for it was found)"
                                                       if any(reads[h].values.get("ipvs") == "n" for h in no_ipvs)
                                                       else "; whether a module exists cannot be told here)")]
            + (["the inventory uses ingress ports or vip services"] if mesh else []),
            "publish with mode: host and use endpoint_mode: dnsrr, or load ip_vs (modprobe ip_vs)"))
    off = sorted(h for h, r in reads.items() if r.values.get("ip_forward") == "0")
    if off:
        found.append(Finding(
            "ip-forward", "error", off, "IP forwarding is off: containers reach nothing beyond their host",
                             ["net.ipv4.ip_forward = 0"], "sysctl -w net.ipv4.ip_forward=1 (and in /etc/sysctl.d/)"))
    nf = sorted(h for h, r in reads.items() if r.values.get("bridge_nf") == "0")
    if nf:
        found.append(Finding(
            "bridge-nf", "warning", nf, "bridged traffic bypasses iptables: Docker's isolation and published-port "
                             "rules do not see it", ["net.bridge.bridge-nf-call-iptables = 0"],
                             "sysctl -w net.bridge.bridge-nf-call-iptables=1 (needs br_netfilter)"))
    return found


@check(keys=("iptables-backends",))
def _iptables(x: Exam) -> list[Finding]:
    reads = x.reads
    found: list[Finding] = []
    kinds: dict[str, list[str]] = {}
    for h, r in reads.items():
        kinds.setdefault(r.values.get("iptables") or "unknown", []).append(h)
    if len(kinds) > 1:
        found.append(Finding("iptables-backends", "warning", sorted(h for hs in kinds.values() for h in hs),
                             "iptables backends differ between hosts",
                             [f"{k}: {', '.join(sorted(v))}" for k, v in sorted(kinds.items())],
                             "use one backend everywhere (update-alternatives --config iptables)"))
    return found


@check(keys=("gossip-stale",))
def _gossip(x: Exam) -> list[Finding]:
    s, swarm = x.s, x.swarm
    found: list[Finding] = []
    stale = [h for h in swarm if h in s.facts and s.facts[h].stale_gossip]
    if stale:
        found.append(Finding(
            "gossip-stale", "warning", stale, "outside any swarm, yet the engine still holds swarm's gossip port "
                                              "7946/tcp: joined again as it is, it would get no overlay peers",
            [f"{h}: {s.facts[h].gossip_listener}" for h in stale],
            "dnet apply restarts these engines before they init or join; by hand: restart docker, then join"))
    return found


@check(keys=("clock-skew",))
def _clock(x: Exam) -> list[Finding]:
    reads = x.reads
    found: list[Finding] = []
    skewed = {h: r.offset for h, r in reads.items() if abs(r.offset) > 1.0}
    if skewed:
        worst = max(abs(v) for v in skewed.values())
        found.append(Finding("clock-skew", "error" if worst > 10 else "warning", sorted(skewed),
                             "clocks disagree: swarm joins and TLS certificates fail on skew",
                             [f"{h}: {v:+.1f}s against this machine" for h, v in sorted(skewed.items())],
                             "run NTP (systemd-timesyncd or chrony) on every host"))
    return found


@check(keys=("engine-versions",))
def _versions(x: Exam) -> list[Finding]:
    s = x.s
    found: list[Finding] = []
    versions: dict[str, list[str]] = {}
    for h, f in s.facts.items():
        if f.engine:
            versions.setdefault(f.engine, []).append(h)
    if len(versions) > 1:
        found.append(Finding("engine-versions", "warning", sorted(s.facts), "engine versions differ across the cluster",
                             [f"{v}: {', '.join(sorted(hs))}" for v, hs in sorted(versions.items())],
                             "upgrade the engines to one version (one host at a time: dnet run "
                             "rolling-engine-restart after each upgrade)"))
    return found


@check(keys=("advertise-address",))
def _addresses(x: Exam) -> list[Finding]:
    s, swarm = x.s, x.swarm
    found: list[Finding] = []
    seen: dict[str, list[str]] = {}
    for h in swarm:
        spec = s.specs[h]
        adv = spec.advertise_addr or (s.facts[h].swarm.node_addr if s.facts[h].swarm.node_addr else address_of(spec))
        seen.setdefault(adv, []).append(h)
    for addr, hs in seen.items():
        if len(hs) > 1:
            found.append(Finding(
                "advertise-address", "error", sorted(hs), f"several hosts advertise the same address {addr}: overlays "
                                 "between them cannot work", [f"{h} -> {addr}" for h in hs],
                                 "give each host its own reachable advertise_addr (Vagrant's NAT 10.0.2.15 is the "
                                 "classic case: advertise the private network's address)"))
    return found


@check(keys=("engine-mtu", "overlay-mtu"))
def _mtu(x: Exam) -> list[Finding]:
    s = x.s
    found: list[Finding] = []
    inv = s.loaded.model
    for h, f in s.facts.items():
        iface = f.interface_of(address_of(s.specs[h]))
        under = f.mtus.get(iface or "", 0)
        engine = s.specs[h].engine.mtu
        overlay = [(n.mtu, _overhead(n.encrypted)) for n in inv.networks.values() if n.driver == "overlay" and n.mtu]
        if under and engine and engine > under:
            found.append(Finding(
                "engine-mtu", "error", [h], f"the engine MTU {engine} is larger than the underlay's {under}",
                                 [f"{iface}: mtu {under}", f"daemon.json mtu: {engine}"],
                                 f"set defaults.docker.mtu (or the host's) to {under} or less"))
        for m, need in overlay:
            if under and m > under - need:
                found.append(Finding(
                    "overlay-mtu", "warning", [h], f"an overlay MTU of {m} does not fit {iface}'s {under} minus "
                                     f"{need} bytes of VXLAN{' and ESP' if need == 76 else ''} headers",
                                     [f"{iface}: mtu {under}", f"overlay mtu: {m}"],
                                     f"set networks.NAME.mtu to {under - need} or less"))
    return found


# The largest packet that crosses from here to $1 without fragmenting: bisect with DF pings between a size that
# passes and one that does not. "?" when ICMP gets no answer at all or ping has no -M (busybox).
_PMTU = r"""pmtu() {
  ok() { ping -n -q -c 1 -W 1 -M do -s $(($2 - 28)) "$1" >/dev/null 2>&1; }
  if ok "$1" "$2"; then echo "$1 $2"; return; fi
  ok "$1" 576 || { echo "$1 ?"; return; }
  lo=576; hi=$2
  while [ $((hi - lo)) -gt 1 ]; do mid=$(((lo + hi) / 2)); if ok "$1" $mid; then lo=$mid; else hi=$mid; fi; done
  echo "$1 $lo"
}
"""


def _vxlan_size(s: Session, swarm: list[str]) -> tuple[int, int]:
    """(VXLAN overhead, packet size overlays send): the overlay MTU plus 50 bytes (76 with ESP); (0, 0) when no
    overlay spans two hosts."""
    overlays = [n for n in s.loaded.model.networks.values() if n.driver == "overlay"]
    if not overlays or len(swarm) < 2:
        return 0, 0
    need = 76 if any(n.encrypted for n in overlays) else 50
    # Docker's default overlay MTU leaves room for its headers: 1450, or 1424 when encrypted (seen in VM labs)
    return need, max((n.mtu or 1500 - _overhead(n.encrypted)) + _overhead(n.encrypted) for n in overlays)


def _overhead(encrypted: bool) -> int:
    """Bytes an overlay adds to each packet: VXLAN's 50, and 26 more for ESP."""
    return 76 if encrypted else 50


@check(keys=("path-mtu",))
def _path_mtu(x: Exam) -> list[Finding]:
    """The real path MTU between swarm hosts (DF pings, so a black hole that eats large packets is found too)
    against what VXLAN needs."""
    s, sizes, need, want = x.s, x.sizes, x.need, x.want
    found: list[Finding] = []
    addrs = {h: address_of(sp) for h, sp in s.specs.items()}
    for (src, dst), size in sorted(sizes.items()):
        if size >= want:
            continue
        found.append(Finding(
            "path-mtu", "error", [src, dst], f"packets over {size} bytes from {src} to {dst} are dropped, but "
                                             f"overlays send {want}-byte VXLAN{' and ESP' if need == 76 else ''} "
                                             "packets: small requests work, large transfers hang",
            [f"ping -M do -s {size - 28} {addrs[dst]} from {src}: answered",
             f"ping -M do -s {size - 27} {addrs[dst]} from {src}: no answer"],
            f"set every overlay's mtu to {size - need} or less (networks.NAME.mtu), and defaults.docker.mtu to "
            f"{size} or less, or fix the path's MTU"))
    return found


@check(keys=("subnet-overlap",))
def _plan(x: Exam) -> list[Finding]:
    """The address plan: the same overlap checks plan refuses on."""
    s = x.s
    found: list[Finding] = []
    for e in converge.make_plan(s).errors:
        if "overlaps" in e:
            h = e.split(":", 1)[0]
            found.append(Finding(
                "subnet-overlap", "error", [h], "a declared subnet overlaps the host's own networks", [e],
                                 "pick a subnet that no route or docker network on the host uses"))
    return found


_DOCKER_DEVS = ("docker", "br-", "veth", "vx-", "ov-")


@check(keys=("pool-overlap",))
def _pools(x: Exam) -> list[Finding]:
    """Swarm's address pool and the ingress network against the hosts' own routes: unlike local bridges, swarm
    hands out overlay subnets without looking at the hosts, so a pool over a host network hides that network."""
    s, swarm = x.s, x.swarm
    found: list[Finding] = []
    sw = s.loaded.model.swarm
    ranges = [(f"swarm.default_addr_pool {p}", p) for p in (sw.default_addr_pool if sw else [])] or \
        [("Docker's default swarm pool 10.0.0.0/8", "10.0.0.0/8"), ("the default ingress network 10.0.0.0/24",
                                                                    "10.0.0.0/24")]
    for h in swarm:
        f = s.facts.get(h)
        if not f:
            continue
        ingress = [(f"the ingress network {sub}", sub) for n in f.networks if n.name == "ingress" for sub in n.subnets]
        docker = {ipaddress.ip_network(sub, strict=False) for n in f.networks for sub in n.subnets if ":" not in sub}
        for line in f.routes:
            words = line.split()
            dev = words[words.index("dev") + 1] if "dev" in words[:-1] else ""
            try:
                net = ipaddress.ip_network(words[0], strict=False)
            except ValueError:
                continue  # "default" and the like
            if dev.startswith(_DOCKER_DEVS) or net in docker:
                continue
            for what, cidr in ranges + ingress:
                if net.overlaps(ipaddress.ip_network(cidr, strict=False)):
                    found.append(Finding(
                        "pool-overlap", "warning", [h], f"{what} overlaps the host's route {words[0]} (dev {dev}): "
                                         "an overlay given a subnet from it cannot reach those addresses",
                                         [f"ip route on {h}: {line.strip()}"],
                                         "declare swarm.default_addr_pool outside every host network (before the "
                                         "swarm is created: it cannot change later)"))
                    break
    return found


@check(keys=("port-taken",))
def _taken_ports(x: Exam) -> list[Finding]:
    """Declared host ports of containers and forwards that something else already listens on."""
    s, reads = x.s, x.reads
    found: list[Finding] = []
    inv = s.loaded.model
    wanted: list[tuple[str, str, str, str]] = []  # host, proto, port, owner
    for name, ctr in inv.containers.items():
        wanted += [(ctr.host, p.protocol, str(p.published), name) for p in ctr.ports]
    wanted += [(f.host, f.protocol, str(f.listen), "") for f in inv.forwards]
    for h, proto, port, owner in wanted:
        if h not in reads or h not in s.facts:
            continue
        if owner and any(c.name == owner and c.labels.get("dnet.managed") == "true" for c in s.facts[h].containers):
            continue  # dnet's own container holds it
        listening = reads[h].values.get("listen", "").split()
        taken = [x for x in listening if x.startswith(proto) and x.rsplit(":", 1)[-1] == port]
        if taken:
            found.append(Finding(
                "port-taken", "error", [h], f"port {proto}/{port} is already taken on {h} by something dnet does "
                                 "not manage", taken, "free the port or declare another one"))
    return found


def _port_pairs(s: Session, swarm: list[str], reads: dict[str, HostRead]) -> list[Pair]:
    """What swarm needs between its hosts: 2377/tcp to managers, 7946/tcp+udp and VXLAN/udp between all; UDP only
    where nothing listens yet (before the swarm forms)."""
    inv = s.loaded.model
    managers = {h for h in swarm if "manager" in inv.hosts[h].roles}
    vxlan = _vxlan_port(s)

    def udp_silent(dst: str, port: int) -> bool:
        listening = reads[dst].values.get("listen", "").split() if dst in reads else ["?"]
        return "?" not in listening and not any(x.startswith("udp") and x.endswith(f":{port}") for x in listening)

    two = [(a, b) for a in swarm for b in swarm if a != b]
    pairs = [(a, b, p, "tcp") for a, b in two for p in ([2377] if b in managers else []) + [7946]]
    return pairs + [(a, b, p, "udp") for a, b in two for p in (7946, vxlan) if udp_silent(b, p)]


def _vxlan_port(s: Session) -> int:
    sw = s.loaded.model.swarm
    return sw.data_path_port if sw and sw.data_path_port else 4789


@check(keys=("swarm-port-blocked",))
def _swarm_ports(x: Exam) -> list[Finding]:
    s, ports = x.s, x.ports
    found: list[Finding] = []
    vxlan = _vxlan_port(s)
    for (src, dst, port, proto), state in sorted(ports.items()):
        if state == "blocked":
            how = "nc -z" if proto == "tcp" else "nc -u -z (no port-unreachable answer came back)"
            found.append(Finding(
                "swarm-port-blocked", "error", [src, dst], f"{port}/{proto} from {src} to {dst} gets no answer "
                                 "(dropped on the way)", [f"{how} {dst} {port} from {src}: silence"],
                                 f"open {port}/{proto} on {dst} (swarm needs 2377/tcp to managers, 7946/tcp+udp and "
                                 f"{vxlan}/udp between all swarm hosts)"))
    return found
