"""Derive every path that should work (and every one that must not) from the inventory and the facts."""
from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence

from dnet.facts import ContainerFact, HostFacts, genuine_tasks
from dnet.inventory.placement import expected_tasks
from dnet.inventory.resolve import HostSpec, address_of
from dnet.inventory.schema import TARGET_RE, URL_RE, Inventory
from dnet.inventory.semantic import swarm_hosts
from dnet.verify.model import Check, Instance, Scope, Where


def _declared_ports(inv: Inventory) -> dict[str, set[int]]:
    ports: dict[str, set[int]] = {}
    for n, c in inv.containers.items():
        ports.setdefault(n, set()).update(p.target for p in c.ports)
    for n, s in inv.services.items():
        ports.setdefault(n, set()).update(p.target for p in s.ports)
    for ck in inv.checks:
        m = TARGET_RE.match(ck.to)
        if m and not URL_RE.match(ck.to):
            ports.setdefault(m["name"], set()).add(int(m["port"]))
    return ports


def _ips(ctr: ContainerFact) -> dict[str, str]:
    return {n: ep.ip for n, ep in ctr.endpoints.items() if ep.ip and n != "ingress"}


def instances(inv: Inventory, facts: dict[str, HostFacts]) -> list[Instance]:
    """Declared containers and the running tasks of declared services."""
    ports = _declared_ports(inv)
    out: list[Instance] = []
    for name, c in inv.containers.items():
        d = facts[c.host].container(name) if c.host in facts else None
        running = d is not None and d.running
        out.append(Instance(name, name, "container", c.host, d.id if d and running else "",
                            _ips(d) if d and running else {}, sorted(ports.get(name, set()))))
    genuine = genuine_tasks(facts)
    for svc in inv.services:
        found = False
        for h, f in sorted(facts.items()):
            for t in f.containers:
                if t.service != svc or not t.running or not genuine(t):
                    continue
                short = ".".join((t.task_name or svc).split(".")[:2])
                out.append(Instance(short, svc, "task", h, t.id, _ips(t), sorted(ports.get(svc, set()))))
                found = True
        if not found:
            out.append(Instance(svc, svc, "task", "?", "", {}, sorted(ports.get(svc, set()))))
    return out


class Builder:
    """Accumulates checks with sequential ids."""

    def __init__(self) -> None:
        self.checks: list[Check] = []

    def add(self, scope: int, src: str, dst: str, what: str, action: Sequence[str | int], where: Where,
            expect: bool = True, **tags: str) -> None:
        self.checks.append(Check(f"c{len(self.checks) + 1}", Scope(scope), src, dst, what, [str(a) for a in action],
                                 expect, where, {k: v for k, v in tags.items() if v}))  # an empty tag is no tag


def _from(i: Instance) -> Where:
    return Where("ctr", i.host, i.cid) if i.running else Where("missing", i.host, i.name)


def _probe_target(b: Builder, scope: int, a: Instance, dst: str, ip: str, ports: list[int], expect: bool,
                  **tags: str) -> None:
    if ports:
        b.add(scope, a.name, dst, f"tcp {ip}:{ports[0]}", ["tcp", ip, ports[0]], _from(a), expect, **tags)
    else:
        b.add(scope, a.name, dst, f"ping {ip}", ["ping", ip], _from(a), expect, **tags)


def derive(inv: Inventory, specs: dict[str, HostSpec], facts: dict[str, HostFacts],
           egress_ips: dict[str, str]) -> list[Check]:
    """Every check for this inventory, scope by scope."""
    b = Builder()
    insts = instances(inv, facts)
    by_name = {i.name: i for i in insts}
    kinds = {n: net.driver for n, net in inv.networks.items()}
    addr = {h: address_of(s) for h, s in specs.items()}
    # 1. inside a container: every declared instance runs, and its declared ports answer on loopback
    for name, svc in inv.services.items():
        n = sum(1 for i in insts if i.workload == name and i.running)
        tasks = expected_tasks(inv, name)
        what = f"{tasks} tasks running" + (" (global: one per eligible node)" if svc.mode == "global" else "")
        b.add(1, name, name, what, ["count", n, tasks], Where("local"))
    for i in insts:
        for p in i.ports:
            b.add(1, i.name, i.name, f"tcp 127.0.0.1:{p}", ["tcp", "127.0.0.1", p], _from(i))
    # 2. same host: shared networks reach by name, IP, ARP; no shared network means isolation
    for a, c in itertools.permutations([i for i in insts if i.running], 2):
        if a.host != c.host or a.workload == c.workload:
            continue
        shared = sorted(set(a.ips) & set(c.ips) & set(kinds))
        if shared:
            net = next((n for n in shared if kinds[n] == "bridge"), shared[0])
            ip = c.ips[net]
            want = ",".join(c.ips[n] for n in shared)
            vip = c.kind == "task" and inv.services[c.workload].endpoint_mode == "vip"  # the name is the VIP
            b.add(2, a.name, c.name, f"dns {c.workload}", ["dns", c.workload, "" if vip else want], _from(a), net=net)
            _probe_target(b, 2, a, c.name, ip, c.ports, True, net=net)
            if kinds[net] == "bridge":
                b.add(2, a.name, c.name, f"arp {ip}", ["arp", ip], _from(a), net=net)
        else:  # bridge addresses only: the host routes them locally; an overlay one would leave by the default route
            for net, ip in sorted(c.ips.items()):
                if kinds.get(net) == "bridge":
                    _probe_target(b, 2, a, c.name, ip, c.ports, False, net=net, isolation="true")
    _across(b, inv, insts, kinds, addr, facts)
    _out(b, inv, insts, egress_ips)
    _declared(b, inv, insts, by_name, addr)
    return b.checks


def _across(b: Builder, inv: Inventory, insts: list[Instance], kinds: Mapping[str, str], addr: dict[str, str],
            facts: dict[str, HostFacts]) -> None:
    running = [i for i in insts if i.running]
    for net in [n for n, k in kinds.items() if k == "overlay"]:
        members = [i for i in running if net in i.ips]
        hosts = sorted({i.host for i in members})
        for h1, h2 in itertools.permutations(hosts, 2):
            a = next(i for i in members if i.host == h1)
            c = next((i for i in members if i.host == h2 and i.ports), next(i for i in members if i.host == h2))
            ip = c.ips[net]
            pair = f"{h1}>{h2}"
            want = ",".join(c.ips[n] for n in sorted(set(a.ips) & set(c.ips)))  # the resolver answers for one network
            if c.kind == "task":
                b.add(3, a.name, c.name, f"dns tasks.{c.workload}", ["dns", f"tasks.{c.workload}", want],
                      _from(a), net=net, pair=pair)
            vip = c.kind == "task" and inv.services[c.workload].endpoint_mode == "vip"
            b.add(3, a.name, c.name, f"dns {c.workload}", ["dns", c.workload, "" if vip else want], _from(a),
                  net=net, pair=pair)
            _probe_target(b, 3, a, c.name, ip, c.ports, True, vxlan="true", net=net, pair=pair)
            enc = "true" if inv.networks[net].encrypted else ""
            b.add(3, a.name, c.name, f"mtu {ip} (full-size, no fragmenting)", ["mtu", ip], _from(a), mtu="true",
                  net=net, pair=pair, encrypted=enc)
    others = list(addr)
    for name, ctr in inv.containers.items():
        for p in ctr.ports:
            _published(b, others, addr, ctr.host, p.published, f"{name} port {p.published}/{p.protocol}")
    for name, svc in inv.services.items():
        for sp in svc.ports:
            on = sorted({i.host for i in running if i.workload == name}) if sp.mode == "host" else swarm_hosts(inv)
            for h in on:
                _published(b, others, addr, h, sp.published, f"{name} port {sp.published} ({sp.mode})", mode=sp.mode,
                           service=name)
    for f in inv.forwards:
        _published(b, others, addr, f.host, f.listen, f"forward {f.host}:{f.listen}", forward="true",
                   target=f.to_host)
        to_ip = addr.get(f.to_host, f.to_host)
        b.add(3, "operator", f"{f.host}:{f.listen}", f"forward reaches {f.to}",
              ["same", addr[f.host], f.listen, to_ip, f.to_port], Where("operator"), forward="true", target=f.to_host)
    _underlay_mtu(b, inv, addr, facts)
    swarm_members = swarm_hosts(inv)
    managers = [h for h in swarm_members if "manager" in inv.hosts[h].roles]
    for h1, h2 in itertools.permutations(swarm_members, 2):
        if h1 not in facts:
            continue
        b.add(3, h1, h2, "swarm gossip 7946/tcp", ["tcp", addr[h2], 7946], Where("host", h1), swarm="gossip")
        if h2 in managers:
            b.add(3, h1, h2, "swarm control 2377/tcp", ["tcp", addr[h2], 2377], Where("host", h1), swarm="control")


def _underlay_mtu(b: Builder, inv: Inventory, addr: dict[str, str], facts: dict[str, HostFacts]) -> None:
    """Full-size packets between every pair of hosts that published ports, forwards or VXLAN cross."""
    targets = set(swarm_hosts(inv)) | {c.host for c in inv.containers.values() if c.ports} | \
        {f.host for f in inv.forwards} | {f.to_host for f in inv.forwards if f.to_host in inv.hosts}
    hosts = sorted(h for h in targets if h in addr)
    for h1, h2 in itertools.permutations(hosts, 2):
        if h1 in facts:
            b.add(3, h1, h2, f"mtu {addr[h2]} (full-size, no fragmenting)", ["mtu", addr[h2]], Where("host", h1),
                  mtu="true", underlay="true", pair=f"{h1}>{h2}")


def _published(b: Builder, hosts: list[str], addr: dict[str, str], on: str, port: int, what: str,
               **tags: str) -> None:
    for h in hosts:
        if h != on:
            b.add(3, h, f"{on}:{port}", what, ["tcp", addr[on], port], Where("host", h), True, published="true", **tags)
    b.add(3, "operator", f"{on}:{port}", what, ["tcp", addr[on], port], Where("operator"), True, published="true",
          **tags)


def _out(b: Builder, inv: Inventory, insts: list[Instance], egress_ips: dict[str, str]) -> None:
    for i in insts:  # judged by the declared networks: an undeclared way out must show up as a failure
        declared = (inv.containers[i.workload].networks if i.kind == "container" else inv.services[i.workload].networks)
        way_out = not declared or any(not inv.networks[n].internal for n in declared)
        for url in inv.egress:
            host = URL_RE.match(url)["host"]  # type: ignore[index]
            if way_out:
                b.add(4, i.name, url, f"dns {host}", ["dns", host, ""], _from(i), egress="dns")
                b.add(4, i.name, url, f"http {url}", ["http", url], _from(i), egress="http")
                if host in egress_ips:
                    ip = egress_ips[host]
                    if url.startswith("https://"):  # by IP, the certificate is still checked for the URL's name
                        b.add(4, i.name, url, f"http {url} via {ip} (by IP)", ["http", url, ip], _from(i), egress="ip")
                    else:
                        by_ip = re.sub(r"//[^/:]+", f"//{ip}", url, count=1)
                        b.add(4, i.name, url, f"http {by_ip} (by IP)", ["http", by_ip], _from(i), egress="ip")
                    b.add(4, i.name, url, f"mtu {egress_ips[host]} (full-size, no fragmenting)",
                          ["mtu", egress_ips[host]], _from(i), egress="mtu", mtu="true")
            else:
                b.add(4, i.name, url, f"http {url} (internal only)", ["http", url], _from(i), False, egress="internal")


def _declared(b: Builder, inv: Inventory, insts: list[Instance], by_name: dict[str, Instance],
              addr: dict[str, str]) -> None:
    for ck in inv.checks:
        expect = ck.expect == "reachable"
        if ck.from_ in inv.hosts:
            sources: list[tuple[str, Where]] = [(ck.from_, Where("host", ck.from_))]
        else:
            sources = [(i.name, _from(i)) for i in insts if i.workload == ck.from_]
        for src, where in sources:
            if URL_RE.match(ck.to):
                b.add(5, src, ck.to, f"http {ck.to}", ["http", ck.to], where, expect)
            else:
                m = TARGET_RE.match(ck.to)
                assert m
                name = addr.get(m["name"], m["name"]) if where.kind == "host" else m["name"]
                b.add(5, src, ck.to, f"tcp {ck.to}", ["tcp", name, m["port"]], where, expect)
