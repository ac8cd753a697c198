"""`dnet trace`: the path a packet takes between two declared endpoints, read from the real hosts.

Container to container: the route in the source's namespace, the bridge or overlay namespace it enters, for an
overlay across hosts the VNI and the VXLAN peer (from the overlay namespace's neighbour and FDB entries), and
the destination's socket. Operator (or a host) to a host port: the NAT rules the packet meets (DNAT of a
published port or a forward), followed to where they lead.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from dnet.errors import DnetError
from dnet.facts.model import ContainerFact
from dnet.inventory.resolve import address_of
from dnet.session import Session
from dnet.transport.base import quote
from dnet.verify.derive import instances
from dnet.verify.model import Instance


@dataclass
class Hop:
    where: str
    what: str
    evidence: str = ""
    ok: bool = True

    def public(self) -> dict[str, Any]:
        return asdict(self)


class Tracer:
    def __init__(self, s: Session) -> None:
        self.s = s
        self.insts = [i for i in instances(s.loaded.model, s.facts) if i.running]
        self.addrs = {h: address_of(spec) for h, spec in s.specs.items()}

    def sh(self, host: str, command: str) -> str:
        if host not in self.s.transports:
            raise DnetError(f"{host} is unreachable: {self.s.host_errors.get(host, 'not connected')}")
        return self.s.transports[host].run(command, check=False, timeout=30).stdout.strip()

    def find(self, name: str, away_from: str = "") -> Instance | None:
        exact = [i for i in self.insts if i.name == name]
        if exact:
            return exact[0]
        tasks = sorted((i for i in self.insts if i.workload == name), key=lambda i: (i.host == away_from, i.name))
        return tasks[0] if tasks else None

    def netns(self, host: str, inst: Instance) -> str:
        """nsenter arguments for an instance's network namespace (by its PID)."""
        pid = self.sh(host, f"docker inspect -f '{{{{.State.Pid}}}}' {quote(inst.cid)}")
        return f"nsenter -t {quote(pid)} -n"

    def network_id(self, host: str, net: str) -> str:
        return next((n.id for n in self.s.facts[host].networks if n.name == net), "")

    def host_of(self, addr: str) -> str:
        return next((h for h, a in self.addrs.items() if a == addr), addr)


def trace(s: Session, src: str, dst: str) -> list[Hop]:
    t = Tracer(s)
    name, _, port = dst.partition(":")
    if src == "operator" or src in s.specs:
        if name not in s.specs:
            raise DnetError(f"{dst}: from a host or the operator, trace to HOST:PORT (hosts: {', '.join(s.specs)})")
        if not port.isdigit():
            raise DnetError(f"{dst}: give the port, e.g. {name}:8080")
        return _to_host_port(t, src, name, int(port), depth=0)
    a = t.find(src)
    if a is None:
        raise DnetError(f"{src}: no running container, task or service of that name (or a host name, or operator)")
    b = t.find(name, away_from=a.host)
    if b is None:
        raise DnetError(f"{name}: no running container, task or service of that name")
    return _between(t, a, b, int(port) if port.isdigit() else None)


def _between(t: Tracer, a: Instance, b: Instance, port: int | None) -> list[Hop]:
    kinds = {n: net.driver for n, net in t.s.loaded.model.networks.items()}
    shared = sorted(set(a.ips) & set(b.ips), key=lambda n: (kinds.get(n) != ("overlay" if a.host != b.host
                                                                              else "bridge"), n))
    if not shared:
        return [Hop(a.name, f"{a.name} and {b.name} share no network ({', '.join(a.ips)} / {', '.join(b.ips)}): "
                            "no route between them", ok=False)]
    net, ip = shared[0], b.ips[shared[0]]
    ns = t.netns(a.host, a)
    route = t.sh(a.host, f"{ns} ip route get {quote(ip)} 2>&1 | head -1")
    hops = [Hop(f"{a.name} on {a.host}", f"to {b.name} at {ip} on {net} ({kinds.get(net, '?')})", route,
                "dev " in route)]
    neigh = t.sh(a.host, f"{ns} ping -c1 -W1 {quote(ip)} >/dev/null 2>&1; {ns} ip neigh show {quote(ip)}")
    hops.append(Hop(f"{a.name} on {a.host}", "ARP: the destination's MAC address", neigh or "no neighbour entry",
                    "lladdr" in neigh))
    nid = t.network_id(a.host, net)
    if kinds.get(net) == "overlay":
        hops += _overlay(t, a, b, ip, nid)
    else:
        bridge = "docker0" if net == "bridge" else f"br-{nid[:12]}"
        hops.append(Hop(a.host, f"through the veth into bridge {bridge} and on to {b.name}'s veth",
                        t.sh(a.host, f"ip -o link show {quote(bridge)} | cut -d' ' -f2-9")))
    if port:
        listen = t.sh(b.host, f"{t.netns(b.host, b)} ss -Hltn '( sport = :{port} )'")
        what = (f"something listens on {port}/tcp" if listen
                else f"nothing listens on {port}/tcp: the packet is refused here")
        hops.append(Hop(f"{b.name} on {b.host}", what, listen or "no socket", bool(listen)))
    else:
        hops.append(Hop(f"{b.name} on {b.host}", f"delivered to {b.name} ({ip})"))
    return hops


def _vxlan(t: Tracer, host: str, nid: str, ip: str) -> tuple[str, str, str, str, str]:
    """In an overlay's namespace on host: its VNI and UDP port, and the neighbour, FDB entry and VTEP for ip."""
    ons = "nsenter " + quote(f"--net=/var/run/docker/netns/1-{nid[:10]}")  # the ID is what a host said
    link = t.sh(host, f"{ons} ip -d -o link show type vxlan 2>&1 | head -1")
    vni = re.search(r"vxlan id (\d+)", link)
    port = re.search(r"dstport (\d+)", link)
    neigh = t.sh(host, f"{ons} ip neigh show {quote(ip)}")
    mac = re.search(r"lladdr (\S+)", neigh)
    fdb = t.sh(host, f"{ons} bridge fdb show dev vxlan0 | grep -i {quote(mac[1])}") if mac else ""
    peer = re.search(r"dst (\S+)", fdb)
    return vni[1] if vni else "", port[1] if port else "", neigh, fdb, peer[1] if peer else ""


def _overlay(t: Tracer, a: Instance, b: Instance, ip: str, nid: str) -> list[Hop]:
    vni, port, neigh, fdb, peer = _vxlan(t, a.host, nid, ip)
    hops = [Hop(a.host, f"through the veth into the overlay namespace 1-{nid[:10]} (bridge br0)",
                f"vxlan0: VNI {vni or '?'}, UDP {port or '?'}", bool(vni))]
    if a.host == b.host:
        hops.append(Hop(a.host, f"{b.name} is on this host: bridged on br0, no VXLAN"))
        return hops
    if not peer:
        hops.append(Hop(a.host, f"no VXLAN peer known for {ip}: the overlay's gossip (7946) has not told this host "
                                f"where {b.name} is", f"{neigh or 'no neighbour entry'}; fdb: {fdb or 'none'}", False))
        return hops
    peer_host = t.host_of(peer)
    hops.append(Hop(a.host, f"VXLAN: encapsulated with VNI {vni or '?'} to {peer} ({peer_host}), UDP {port or 4789}",
                    f"{neigh}; fdb: {fdb}", peer_host == b.host))
    hops.append(Hop(peer_host, f"decapsulated in {peer_host}'s overlay namespace 1-{nid[:10]}, bridged to {b.name}"))
    return hops


def _ipvs(text: str, mark: int) -> tuple[str, list[str]]:
    """From /proc/net/ip_vs: the scheduler of the firewall-mark service and its real servers' IPs."""
    sched, reals, inside = "", [], False
    for line in text.splitlines():
        parts = line.split()
        if parts[:1] == ["FWM"] and len(parts) >= 3:
            inside = int(parts[1], 16) == mark
            sched = parts[2] if inside else sched
        elif inside and parts[:1] == ["->"] and ":" in parts[1] and len(parts[1].split(":")[0]) == 8:
            hexip = parts[1].split(":")[0]
            reals.append(".".join(str(int(hexip[i:i + 2], 16)) for i in range(0, 8, 2)))
        elif parts[:1] in (["TCP"], ["UDP"], ["FWM"]):
            inside = False
    return sched, reals


def _ingress(t: Tracer, host: str, port: int) -> list[Hop]:
    """Through the routing mesh: the ingress sandbox's firewall mark, IPVS, and the ingress overlay to a task."""
    sbox = "nsenter " + quote("--net=/var/run/docker/netns/ingress_sbox")
    rule = t.sh(host, f"{sbox} iptables -w -t mangle -S PREROUTING 2>/dev/null | grep -E -- '--dport {port}( |$)' "
                      "| head -1")
    mark = re.search(r"--set-x?mark (0x[0-9a-fA-F]+)", rule)
    if not mark:
        return [Hop(host, f"the ingress sandbox marks nothing for port {port}: no service publishes it in ingress "
                          f"mode on {host}", rule or "no MARK rule in the sandbox's mangle table", False)]
    hops = [Hop(host, f"into the ingress sandbox (routing mesh): port {port} gets firewall mark {int(mark[1], 16)}",
                rule)]
    table = t.sh(host, f"{sbox} cat /proc/net/ip_vs 2>&1")
    if "IP Virtual Server" not in table:
        hops.append(Hop(host, "no IPVS in this kernel: the routing mesh stops here", table[:200], False))
        return hops
    sched, reals = _ipvs(table, int(mark[1], 16))
    tasks = {e.ip: (c.task_name or c.name, h) for h, f in t.s.facts.items() for c in f.containers
             for n, e in c.endpoints.items() if n == "ingress" and e.ip}
    names = [f"{'.'.join(tasks[ip][0].split('.')[:2])} on {tasks[ip][1]}" if ip in tasks else ip for ip in reals]
    hops.append(Hop(host, f"IPVS ({sched or '?'}) balances mark {int(mark[1], 16)} over: "
                          f"{', '.join(names) or 'no task'}", f"{len(reals)} real servers", bool(reals)))
    if not reals:
        return hops
    ip = reals[0]
    task, task_host = tasks.get(ip, (ip, ""))
    task = ".".join(task.split(".")[:2])
    if task_host == host:
        hops.append(Hop(host, f"to {task} ({ip}) on this host over the ingress network, no VXLAN"))
    else:
        nid = t.sh(host, "docker network inspect ingress -f '{{.Id}}' 2>/dev/null")
        vni, udp, neigh, fdb, peer = _vxlan(t, host, nid, ip)
        if not peer:
            hops.append(Hop(host, f"no VXLAN peer known for {ip} ({task}) on the ingress overlay",
                            f"{neigh or 'no neighbour entry'}; fdb: {fdb or 'none'}", False))
            return hops
        hops.append(Hop(host, f"ingress overlay: VXLAN with VNI {vni or '?'} to {peer} ({t.host_of(peer)}), "
                              f"UDP {udp or 4789}", f"{neigh}; fdb: {fdb}", not task_host or
                        t.host_of(peer) == task_host))
    hops.append(Hop(f"{task} on {task_host or '?'}", f"delivered to {task} at {ip}:{port} (the task's namespace "
                                                    "maps it to the target port)"))
    return hops


def _gwbridge(t: Tracer, host: str, ip: str) -> tuple[ContainerFact, str] | str | None:
    """The container behind an address on docker_gwbridge (where host-mode ports of swarm tasks arrive), or
    "ingress" for the routing mesh's sandbox."""
    out = t.sh(host, "docker network inspect docker_gwbridge -f "
                     "'{{range $k, $v := .Containers}}{{$k}} {{$v.IPv4Address}}{{println}}{{end}}' 2>/dev/null")
    for line in out.splitlines():
        cid, _, addr = line.partition(" ")
        if addr.split("/")[0] == ip:
            if cid == "ingress-sbox":
                return "ingress"
            return next(((c, "docker_gwbridge") for c in t.s.facts[host].containers if c.id == cid), None)
    return None


def _to_host_port(t: Tracer, src: str, host: str, port: int, depth: int) -> list[Hop]:
    addr = t.addrs[host]
    hops = [Hop(src, f"to {host} ({addr}) port {port}/tcp")]
    rules = t.sh(host, f"iptables -w -t nat -S 2>/dev/null | grep -E -- '--dport {port}( |$)' | grep DNAT")
    if rules:
        first = rules.splitlines()[0]
        hops.append(Hop(host, "nat PREROUTING: DNAT", first))
        to = re.search(r"--to-destination (\S+)", first)
        if to:
            ip, _, p = to[1].partition(":")
            owner = next((i for i in t.insts if ip in i.ips.values()), None)
            ctr = next(((c, e.network) for c in t.s.facts[host].containers for e in c.endpoints.values()
                        if e.ip == ip), None) or _gwbridge(t, host, ip)
            if ctr == "ingress":
                hops += _ingress(t, host, port)
            elif owner:
                hops.append(Hop(host, f"to {owner.name} ({ip}:{p or port}) on {owner.host}"))
            elif isinstance(ctr, tuple):  # a host-mode port of a swarm task arrives over docker_gwbridge
                who = ".".join((ctr[0].task_name or ctr[0].name).split(".")[:2])
                hops.append(Hop(host, f"to {who} ({ip}:{p or port}) over {ctr[1]} on {host}"))
            elif ip in t.addrs.values() and depth < 3:
                masq = t.sh(host, f"iptables -w -t nat -S 2>/dev/null | grep MASQUERADE | grep -- '-d {ip}' | head -1")
                hops.append(Hop(host, f"forwarded on to {t.host_of(ip)} (source rewritten)", masq))
                hops += _to_host_port(t, host, t.host_of(ip), int(p or port), depth + 1)[1:]
            else:
                hops.append(Hop(host, f"to {ip}:{p or port}, which no declared workload or host holds", ok=False))
        return hops
    listen = t.sh(host, f"ss -Hltnp '( sport = :{port} )' 2>/dev/null")
    hops.append(Hop(host, f"no DNAT for {port}: " + ("a process on the host itself listens" if listen
                                                       else "nothing handles it here, the packet is refused"),
                    listen or "no socket", bool(listen)))
    return hops
