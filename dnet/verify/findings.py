"""Group failed checks into findings: one per likely cause, each with hosts, evidence read from them, and the fix.

Evidence comes from the facts and from one extra batched read per implicated host (dnet.facts.evidence).
Each failed check is claimed by the first finding that explains it; what no rule explains is reported as such,
with the causes that were ruled out.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dnet.facts import HostFacts
from dnet.facts.evidence import FILTER_CHAINS, HostEvidence
from dnet.gossip import Gap
from dnet.inventory.schema import Inventory
from dnet.verify.explain import mtu_hint
from dnet.verify.model import Check, Instance


@dataclass
class Finding:
    """One likely cause of failed checks."""

    cause: str
    hosts: list[str]
    evidence: list[str]
    fix: str
    checks: list[str] = field(default_factory=list)  # ids of the failed checks it explains
    ruled_out: list[str] = field(default_factory=list)

    def public(self, by_id: dict[str, Check]) -> dict[str, Any]:
        return {"cause": self.cause, "hosts": self.hosts, "evidence": self.evidence, "fix": self.fix,
                "ruled_out": self.ruled_out,
                "checks": [f"{by_id[i].src} -> {by_id[i].dst}: {by_id[i].what}" for i in self.checks]}


@dataclass
class Ctx:
    inv: Inventory
    facts: dict[str, HostFacts]
    evidence: dict[str, HostEvidence]
    addrs: dict[str, str]
    instances: dict[str, Instance]
    data_port: int
    gossip: list[Gap] = field(default_factory=list)  # read only when an overlay check failed

    def host_of(self, c: Check) -> str:
        """The host a check ran on (its source's host)."""
        return c.where.host

    def target_host(self, c: Check) -> str:
        """The host a published-port, forward or swarm check goes to."""
        if c.tags.get("swarm") or c.tags.get("underlay"):
            return c.dst
        return c.dst.split(":")[0] if ":" in c.dst and not c.dst.startswith("http") else ""


def implicated(failed: list[Check], inv: Inventory) -> list[str]:
    """Hosts worth reading evidence from: where failing checks ran, and the hosts they went to."""
    out: set[str] = set()
    for c in failed:
        if c.where.host in inv.hosts:
            out.add(c.where.host)
        out.update(h for h in c.tags.get("pair", "").split(">") if h in inv.hosts)
        head = c.dst.split(":")[0]
        if head in inv.hosts:
            out.add(head)
    return sorted(out)


def find(checks: list[Check], ctx: Ctx) -> list[Finding]:
    """Findings for every failed check, most specific first."""
    left = {c.id: c for c in checks if not c.ok}
    out: list[Finding] = []

    def claim(f: Finding, cs: list[Check]) -> None:
        cs = list({c.id: c for c in cs if c.id in left}.values())  # each check once
        if not cs:
            return
        f.checks = [c.id for c in cs]
        for c in cs:
            del left[c.id]
            c.tags["finding"] = f.cause
        out.append(f)

    for rule in RULES:
        rule(ctx, list(left.values()), claim)
    if left:
        rest = list(left.values())
        hosts = sorted({ctx.host_of(c) for c in rest if ctx.host_of(c)})
        claim(Finding(f"{len(rest)} failed checks without a cause dnet could confirm", hosts,
                      [f"{c.src} -> {c.dst}: {c.what}: {c.result} ({c.detail[:100]})" for c in rest[:8]],
                      "look at the checks' details; `dnet verify -v` shows every probe command",
                      ruled_out=_ruled_out(ctx, hosts)), rest)
    return out


def _ruled_out(ctx: Ctx, hosts: list[str]) -> list[str]:
    out = []
    for h in hosts:
        ev = ctx.evidence.get(h)
        if not ev:
            continue
        if ev.ip_forward:
            out.append(f"{h}: ip_forward is on")
        if not ev.drops:
            out.append(f"{h}: no DROP or REJECT rule in {', '.join(FILTER_CHAINS)}")
    return out


Claim = Callable[[Finding, list[Check]], None]


def _ip_forward(ctx: Ctx, failed: list[Check], claim: Claim) -> None:
    for h, ev in sorted(ctx.evidence.items()):
        if ev.ip_forward is not False:
            continue
        cs = [c for c in failed if (h in (ctx.target_host(c), c.tags.get("target"))
                                    and (c.tags.get("published") or c.tags.get("forward")))
              or (c.tags.get("egress") and ctx.host_of(c) == h)]
        claim(Finding(f"IP forwarding is off on {h}: the kernel routes nothing between its containers and the "
                      "network", [h], [f"{h}: net.ipv4.ip_forward = 0"],
                      f"on {h}: sysctl -w net.ipv4.ip_forward=1, and set it in /etc/sysctl.d so that it stays "
                      "(Docker turns it on when it starts; something turned it off)"), cs)


def _drops(ctx: Ctx, failed: list[Check], claim: Claim) -> None:
    for h, ev in sorted(ctx.evidence.items()):
        for rule in ev.drops:
            if not rule.protocol and rule.port is None:
                continue  # a drop-all in these chains is Docker's own plumbing (internal networks), not a port rule
            cs = []
            for c in failed:
                if c.result not in ("timeout", "refused" if "REJECT" in rule.text else "timeout"):
                    continue  # a DROP makes packets vanish, a REJECT refuses them
                pair = c.tags.get("pair", "").split(">")
                overlay_rule = rule.matches("udp", ctx.data_port) or rule.matches("tcp", 7946) or \
                    rule.matches("udp", 7946)
                if c.tags.get("vxlan") or (c.tags.get("net") and h in pair and c.result != "mtu"):
                    hit = h in pair and overlay_rule
                elif c.scope == 5 and overlay_rule:  # a declared check whose path crosses the host's overlay
                    target = ctx.instances.get(c.dst.split(":")[0])
                    hit = ctx.host_of(c) == h or (target is not None and target.host == h)
                elif c.tags.get("swarm"):
                    port = 7946 if c.tags["swarm"] == "gossip" else 2377
                    hit = ctx.target_host(c) == h and rule.matches("tcp", port)
                elif c.tags.get("published") or c.tags.get("forward"):
                    published = int(c.dst.rsplit(":", 1)[1]) if ":" in c.dst else None
                    hit = ctx.target_host(c) == h and rule.matches("tcp", published) and rule.port is not None
                else:
                    hit = False
                if hit:
                    cs.append(c)
            what = f"{rule.protocol or 'all'}/{rule.port}" if rule.port else (rule.protocol or "all traffic")
            table = "" if rule.table == "filter" else f"{rule.table} table, "
            claim(Finding(f"a firewall rule on {h} drops {what} ({table}{rule.chain} chain)", [h],
                          [f"{h}: {rule.command()}"],
                          f"on {h}: remove it ({rule.delete()}) or open {what} between the hosts"), cs)


def _mesh(ctx: Ctx, failed: list[Check], claim: Claim) -> None:
    """Ingress-published ports that fail on swarm nodes running no task of the service: the routing mesh there
    forwards to a task on another node over the ingress overlay (VXLAN), and that path is broken."""
    by_port: dict[tuple[str, str], list[Check]] = {}
    for c in failed:
        if c.tags.get("mode") == "ingress" and c.tags.get("service") and ":" in c.dst:
            by_port.setdefault((c.tags["service"], c.dst.rsplit(":", 1)[1]), []).append(c)
    for (svc, port), cs in sorted(by_port.items()):
        tasks = sorted({i.host for i in ctx.instances.values() if i.workload == svc and i.kind == "task"
                        and i.running})
        without = sorted({ctx.target_host(c) for c in cs} - set(tasks))
        if not tasks or not without:
            continue  # no task at all is the replicas finding's; failing where tasks run is not the mesh alone
        cs = [c for c in cs if ctx.target_host(c) in without]
        no_ipvs = [h for h in without if h in ctx.facts and not ctx.facts[h].ipvs]
        if no_ipvs:
            claim(Finding(f"no IPVS (ip_vs) in the kernel of {', '.join(no_ipvs)}: the routing mesh cannot work "
                          f"there, so service {svc}'s port {port} answers only where a task runs", no_ipvs,
                          [f"{h}: /proc/net/ip_vs is missing" for h in no_ipvs],
                          "load ip_vs (modprobe ip_vs) or use a kernel with it; or publish with mode: host and "
                          "endpoint_mode: dnsrr"), cs)
            continue
        drops = [f"{h}: {r.command()}" for h in [*without, *tasks]
                 for r in (ctx.evidence[h].drops if h in ctx.evidence else [])
                 if r.port is not None and r.matches("udp", ctx.data_port)]
        samples = [f"{c.src} -> {c.dst}: {c.result} ({c.detail[:60]})" for c in cs][:4]
        claim(Finding(f"the routing mesh on {', '.join(without)} does not reach service {svc}'s tasks on "
                      f"{', '.join(tasks)}: port {port} fails on the nodes that run no task", [*without, *tasks],
                      [f"{svc} tasks run on {', '.join(tasks)}", *drops, *samples],
                      f"a node without a task forwards the port to a task over the ingress overlay: open "
                      f"udp/{ctx.data_port} (VXLAN) and 7946 between {', '.join(without)} and {', '.join(tasks)}; "
                      f"`dnet trace operator {without[0]}:{port}` shows where it stops; or publish with mode: host "
                      "(only where tasks run)"), cs)


def _mtu(ctx: Ctx, failed: list[Check], claim: Claim) -> None:
    cs = [c for c in failed if c.result == "mtu"]
    if not cs:
        return
    text = mtu_hint(cs, failed, ctx.facts, ctx.addrs)
    cause, _, rest = text.partition(". Underlay: ")
    evidence, _, fix = rest.partition(". ")
    hosts = sorted({h for c in cs for h in c.tags.get("pair", ctx.host_of(c)).split(">")})
    samples = sorted({f"{c.src} -> {c.dst}: {c.detail}" for c in cs})[:4]
    claim(Finding(cause, hosts, [f"underlay: {evidence}", *samples], fix.rstrip(".")), cs)


def _not_running(ctx: Ctx, failed: list[Check], claim: Claim) -> None:
    for name, c in sorted(ctx.inv.containers.items()):
        f = ctx.facts.get(c.host)
        if f is None:
            continue
        have = f.container(name)
        if have and have.running:
            continue
        state = f"{have.status}, restarted {have.restart_count} times" if have else "missing"
        cs = [x for x in failed if x.src == name or x.dst == name or x.dst.startswith(f"{name}:")
              or x.what.startswith(f"{name} port ") or x.dst in _forwards_to(ctx, c.host, [p.published
                                                                                         for p in c.ports])]
        claim(Finding(f"container {name} on {c.host} is not running ({state})", [c.host],
                      [f"{c.host}: docker inspect {name}: {state}"],
                      f"see `docker logs {name}` on {c.host}; `dnet apply` starts it again"), cs)


def _forwards_to(ctx: Ctx, host: str, ports: list[int]) -> set[str]:
    """The `host:listen` ends of the forwards that lead to one of these ports on host."""
    return {f"{f.host}:{f.listen}" for f in ctx.inv.forwards if f.to_host == host and f.to_port in ports}


def _replicas(ctx: Ctx, failed: list[Check], claim: Claim) -> None:
    for c in failed:
        if c.action[0] == "count":
            svc = c.src
            cs = [x for x in failed if x.dst == svc or x.dst.startswith(f"{svc}.") or x.dst.startswith(f"{svc}:")
                  or x.src == svc or x.src.startswith(f"{svc}.") or x.what.startswith(f"{svc} port ")]
            claim(Finding(f"service {svc} runs {c.action[1]} of {c.action[2]} tasks", [],
                          [f"docker service ls: {svc} {c.action[1]}/{c.action[2]}"],
                          f"run `docker service ps {svc} --no-trunc` on a manager to see why tasks do not start"),
                  [c, *cs])


def _gossip(ctx: Ctx, failed: list[Check], claim: Claim) -> None:
    """Per overlay: the hosts whose engines do not know all of its nodes and running tasks."""
    by_net: dict[str, list[Gap]] = {}
    for g in ctx.gossip:
        by_net.setdefault(g.network, []).append(g)
    for net, gs in sorted(by_net.items()):
        lagging = {g.host for g in gs}
        involved = lagging | {h for g in gs for h in g.hosts}
        cs = [c for c in failed if _crosses(ctx, c, net, lagging, involved)]
        port = [c for c in failed if c.tags.get("swarm") == "gossip"
                and {ctx.host_of(c), ctx.target_host(c)} <= involved]
        what = "; ".join(f"{g.host} does not know of {', '.join(g.missing)}" for g in gs)
        evidence = [f"{g.host}: docker network inspect -v {net} lists no {x}" for g in gs for x in g.missing][:8]
        if port:
            pairs = sorted({f"{ctx.host_of(c)} -> {ctx.target_host(c)}" for c in port})
            common = set.intersection(*({ctx.host_of(c), ctx.target_host(c)} for c in port))
            where = f"; each goes to or from {min(common)}: look at its firewall, the raw and mangle tables " \
                "too" if len(common) == 1 else ""
            fix = (f"open 7946/tcp and 7946/udp between the swarm hosts (the gossip port checks {', '.join(pairs)} "
                   f"fail: {port[0].result}{where}), then run verify again")
            evidence += [f"{c.src} -> {c.dst}: {c.what}: {c.result}" for c in port][:4]
        else:
            fix = ("the engines' gossip (7946) usually tells every node within a minute of tasks starting: run "
                   "verify again; if it stays, check 7946/tcp+udp between the hosts, then restart docker on "
                   f"{', '.join(sorted(lagging))}")
        claim(Finding(f"the engines' gossip has not spread overlay {net}: {what}; their DNS and VXLAN forwarding "
                      "leave these out, so traffic to and from them fails", sorted(involved), evidence, fix),
              cs + port)


def _crosses(ctx: Ctx, c: Check, net: str, lagging: set[str], involved: set[str]) -> bool:
    """A failed check whose path crosses overlay `net` to or from a host whose gossip lags."""
    if c.tags.get("net") == net and c.result != "mtu":
        return bool(lagging & set(c.tags.get("pair", "").split(">")))
    target = ctx.instances.get(c.dst.split(":")[0])  # a declared check between instances on the overlay
    ends = {ctx.host_of(c), target.host if target else ""}
    return c.scope == 5 and target is not None and net in target.ips and len(ends) == 2 and ends <= involved and \
        bool(ends & lagging)


def _dns(ctx: Ctx, failed: list[Check], claim: Claim) -> None:
    for h, ev in sorted(ctx.evidence.items()):
        dead = [s for s, ok in ev.dns.items() if not ok]
        if not dead:
            continue
        cs = [c for c in failed if ctx.host_of(c) == h and c.tags.get("egress") in ("dns", "http")]
        servers = ctx.facts[h].daemon.get("dns") if h in ctx.facts else None
        alive = [s for s, ok in ev.dns.items() if ok]
        claim(Finding(f"the engine's DNS server{'s' if len(dead) > 1 else ''} {', '.join(dead)} on {h} "
                      "do not answer: containers' names resolve through Docker's embedded resolver (127.0.0.11), "
                      "which forwards to these", [h],
                      [f"{h}: daemon.json dns = {servers}", *[f"{h}: {s} does not answer a query from the host"
                                                               for s in dead],
                       *[f"{h}: {s} answers" for s in alive]],
                      f"point dns in /etc/docker/daemon.json (defaults.docker.dns) at a server that answers from "
                      f"{h}, then `dnet apply`",
                      ruled_out=[f"{h}: ip_forward is on"] if ev.ip_forward else []), cs)


def _masquerade(ctx: Ctx, failed: list[Check], claim: Claim) -> None:
    by_host: dict[str, list[Check]] = {}
    for c in failed:
        if c.tags.get("egress") in ("dns", "http", "ip", "mtu"):
            by_host.setdefault(ctx.host_of(c), []).append(c)
    for h, cs in sorted(by_host.items()):
        ev, f = ctx.evidence.get(h), ctx.facts.get(h)
        if not ev or not f:
            continue
        missing: dict[str, list[Check]] = {}
        for c in cs:
            inst = ctx.instances.get(c.src)
            ctr = next((x for x in f.containers if inst and x.id == inst.cid), None)
            if not ctr:
                continue
            for net in ctr.endpoints:
                nf = f.network(net)
                nf = f.network("docker_gwbridge") if nf and nf.driver == "overlay" else nf
                for subnet in (nf.subnets if nf and not nf.internal else []):
                    if not ev.masqueraded(subnet):
                        missing.setdefault(subnet, []).append(c)
        for subnet, mc in sorted(missing.items()):
            claim(Finding(f"no NAT (MASQUERADE) for {subnet} on {h}: its containers' packets leave with private "
                          "source addresses and get no answer", [h],
                          [f"{h}: iptables -t nat -S POSTROUTING has no `-s {subnet} ... -j MASQUERADE`",
                           f"{h}: MASQUERADE exists for {', '.join(ev.masquerade) or 'no subnet'}"],
                          f"restart the engine on {h} (it writes its NAT rules at start), or add the rule back",
                          ruled_out=[f"{h}: ip_forward is on"] if ev.ip_forward else []), mc)


def _leaks(ctx: Ctx, failed: list[Check], claim: Claim) -> None:
    for c in failed:
        if c.tags.get("egress") != "internal":
            continue
        h = ctx.host_of(c)
        inst = ctx.instances.get(c.src)
        f = ctx.facts.get(h)
        ctr = next((x for x in f.containers if inst and x.id == inst.cid), None) if f else None
        nets = sorted(ctr.endpoints) if ctr else []
        declared = set(ctx.inv.containers[inst.workload].networks if inst and inst.kind == "container" else
                       ctx.inv.services[inst.workload].networks if inst else [])
        extra = [n for n in nets if n not in declared]
        claim(Finding(f"{c.src} on {h} reaches the internet although its declared networks are internal", [h],
                      [f"{h}: {c.src} is attached to {', '.join(nets)}"
                       + (f"; not declared: {', '.join(extra)}" if extra else "")],
                      f"disconnect it (docker network disconnect {extra[0]} {c.src}) or run `dnet apply`" if extra
                      else "check the network's internal flag and the host's routes"), [c])


RULES: list[Callable[[Ctx, list[Check], Claim], None]] = [
    _ip_forward, _drops, _mesh, _mtu, _not_running, _replicas, _gossip, _dns, _masquerade, _leaks]
