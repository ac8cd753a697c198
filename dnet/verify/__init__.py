"""Prove the network: derive checks from the inventory, probe them in parallel, explain failures."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from dnet.facts.evidence import HostEvidence
from dnet.facts.evidence import gather as gather_evidence
from dnet.gossip import Gap, gaps
from dnet.inventory.resolve import address_of
from dnet.inventory.schema import URL_RE
from dnet.runner import parallel
from dnet.session import Session
from dnet.transport.base import quote
from dnet.verify import explain, probe
from dnet.verify.derive import derive, instances
from dnet.verify.findings import Ctx, Finding, find, implicated
from dnet.verify.model import Check, Where

Log = Callable[[str], None]


def egress_addresses(s: Session) -> dict[str, str]:
    """Resolve each egress host once, on a reachable host with its own resolver (not the containers')."""
    names = sorted({URL_RE.match(u)["host"] for u in s.loaded.model.egress})  # type: ignore[index]
    out: dict[str, str] = {}
    if not names or not s.transports:
        return out
    t = next(iter(s.transports.values()))
    script = "; ".join(f"echo {quote(n)} $(getent ahostsv4 {quote(n)} | head -1)" for n in names)  # one round trip
    for line in t.run(script, check=False).stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            out[parts[0]] = parts[1]
    return out


@dataclass
class Report:
    """One verify run: every check, the findings that explain the failures, hints, and the time spent."""

    checks: list[Check]
    findings: list[Finding]
    hints: list[str]
    seconds: float


def evidence(s: Session, failed: list[Check]) -> dict[str, HostEvidence]:
    """Read evidence from every host the failures implicate (one batched command each, in parallel)."""
    hosts = [h for h in implicated(failed, s.loaded.model) if h in s.transports]
    names = sorted({URL_RE.match(u)["host"] for u in s.loaded.model.egress})  # type: ignore[index]
    name = names[0] if names else "localhost"

    def one(h: str) -> HostEvidence:
        servers = s.facts[h].daemon.get("dns") or []
        return gather_evidence(s.transports[h], [str(x) for x in servers] if names else [], name)

    return {r.host: r.value for r in parallel(hosts, one) if r.ok and r.value}


def gossip_gaps(s: Session, failed: list[Check]) -> list[Gap]:
    """When an overlay check failed: what each engine's overlay gossip does not know yet."""
    if not any(c.tags.get("net") and "pair" in c.tags for c in failed):
        return []
    return gaps(s, s.leader())  # the swarm's leader reads the running tasks


def within(checks: list[Check], limit: list[str]) -> list[Check]:
    """With --limit: checks that run on the limited hosts, and the operator's checks towards them.

    Service task counts need every host's view, so they are left out.
    """
    def keep(c: Check) -> bool:
        if c.where.kind == "operator":
            return c.dst.split(":")[0] in limit
        return c.where.kind != "local" and c.where.host in limit

    return [c for c in checks if keep(c)]


def from_hosts(checks: list[Check], addrs: dict[str, str]) -> None:
    """--no-operator: checks this machine would run (published ports, forwards) run from another inventory host's
    own network namespace instead (the first host that is not the target), for operators whose network reaches the
    hosts only over SSH."""
    hosts = sorted(addrs)
    by_addr = {a: h for h, a in addrs.items()}
    for c in checks:
        if c.where.kind != "operator" or not hosts:
            continue
        target = by_addr.get(str(c.action[1]), "")
        via = next((h for h in hosts if h != target), hosts[0])
        if c.action[0] == "same":  # a forward: its listening port from another host (no side-by-side answer)
            c.action = ["tcp", c.action[1], c.action[2]]
            c.what = c.what + " (port only)"
        c.where, c.src = Where("host", via), via
        c.tags["via"] = "host"  # would run from the operator's machine


def verify(s: Session, log: Log, scopes: list[int] | None = None, operator: bool = True) -> Report:
    """Derive, probe, read evidence where something failed, and explain (only the given scopes, 1-5, if any).
    operator=False runs the checks this machine would run from the hosts instead."""
    start = time.monotonic()
    if s.loaded.model.stacks:  # the stacks' services and networks, as they run, are checked as declared ones
        from dnet.brownfield.discover import merge

        merged, _, notes = merge(s.loaded.model, s.facts, s.specs, set(s.loaded.model.stacks))
        s.loaded = s.loaded._replace(model=merged)
        for n in notes:
            log(f"stacks: {n}")
    inv = s.loaded.model
    checks = derive(inv, s.specs, s.facts, egress_addresses(s))
    if s.limit is not None:
        checks = within(checks, s.limit)
    if scopes:
        checks = [c for c in checks if c.scope in scopes]
    addrs = {h: address_of(spec) for h, spec in s.specs.items()}  # one lookup per host, for both uses
    if not operator:
        from_hosts(checks, {h: a for h, a in addrs.items() if h in s.transports})
    log(f"{len(checks)} checks derived; probing")
    probe.run(checks, s.transports, log)
    failed = [c for c in checks if not c.ok]
    ev = evidence(s, failed) if failed else {}
    if ev:
        log(f"evidence read from {', '.join(sorted(ev))}")
    ctx = Ctx(inv, s.facts, ev, addrs, {i.name: i for i in instances(inv, s.facts)},
              inv.swarm.data_path_port if inv.swarm and inv.swarm.data_path_port else 4789, gossip_gaps(s, failed))
    found = find(checks, ctx)
    hints = explain.hints(checks, s.facts, addrs)
    return Report(checks, found, hints, time.monotonic() - start)
