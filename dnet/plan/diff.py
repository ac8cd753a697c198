"""Compare the inventory with every host's facts and list the changes, in apply order."""
from __future__ import annotations

import re
import shlex

from dnet.facts import HostFacts
from dnet.plan import desired as d
from dnet.plan import networks, ownership, stacks, swarm, workloads
from dnet.plan.model import (
    DaemonUpdate,
    EngineInstall,
    EnginePackage,
    EngineStart,
    ForwardRemove,
    ForwardRewrite,
    Plan,
)
from dnet.plan.world import World


def diff(w: World) -> Plan:
    """Return the plan that makes the hosts match the inventory."""
    plan = Plan()
    _engine(w, plan)
    swarm.diff(w, plan)
    networks.diff(w, plan)
    workloads.diff(w, plan)
    stacks.diff(w, plan)
    _forwards(w, plan)
    ownership.diff(w, plan)
    return plan


def _engine(w: World, plan: Plan) -> None:
    for h, spec in w.specs.items():
        if h not in w.facts:
            continue
        f = w.facts[h]
        if f.engine is None:
            if f.engine_error == "MISSING":
                if f.os_id not in ("debian", "ubuntu"):
                    plan.errors.append(f"{h}: Docker is not installed and dnet installs it only on Debian/Ubuntu "
                                       f"(this host is '{f.os_id}'); install Docker there by hand")
                    continue
                plan.add(EngineInstall(host=h, package=spec.engine.package or "docker.io",
                                       version=spec.engine.version or ""))
            else:
                plan.add(EngineStart(host=h, error=f.engine_error))
        else:
            _package(plan, h, spec.engine.package, spec.engine.version, f)
        want = d.daemon_settings(spec)
        have = {k: f.daemon.get(k) for k in want}
        if want != have:
            running = [c for c in f.containers if c.running]
            stops = tuple(sorted(f"{c.name}" + ("" if c.managed else " (not dnet's)") for c in running
                                 if not c.is_task))
            moves = tuple(sorted(".".join(c.task_name.split(".")[:2]) for c in running if c.is_task))
            plan.add(DaemonUpdate(host=h, settings=want, current=have, stops=stops, moves=moves))


def version_matches(installed: str, prefix: str) -> bool:
    """'20.10.24+dfsg1-1' (or '5:24.0.7-1~debian') is version 20.10 / 24.0, and not 20.1."""
    return re.match(re.escape(prefix) + r"(?![0-9])", re.sub(r"^[0-9]+:", "", installed)) is not None


def _package(plan: Plan, h: str, package: str | None, version: str | None, f: HostFacts) -> None:
    if not version and not package:
        return
    pkg = package or "docker.io"
    have = f.packages.get(pkg, "")
    others = sorted(p for p in f.packages if p != pkg)
    if not have and others:
        plan.errors.append(f"{h}: the engine is {others[0]} {f.packages[others[0]]}, not {pkg}: dnet does not swap "
                           f"engine packages; remove docker.package or change the package by hand")
    elif not have:
        plan.errors.append(f"{h}: the running engine ({f.engine}) was not installed from a Debian package, so "
                           "docker.package and docker.version cannot manage it")
    elif version and not version_matches(have, version):
        plan.add(EnginePackage(host=h, package=pkg, version=version, current=have))
    elif version and pkg not in f.held:
        plan.add(EnginePackage(host=h, package=pkg, version=version, current=have, hold_only=True))


def _forwards(w: World, plan: Plan) -> None:
    for h in w.facts:
        rules = d.forward_rules(w.inv, w.specs, h)
        want = sorted(r.comment for r in rules)
        f = w.facts[h]
        have, keep = forwards_on(w, f)
        hooked = any("-j DNET-FWD" in ln and ln.startswith("-A PREROUTING") for ln in f.nat_rules)
        if want == have and (hooked or not want):
            continue
        if want or keep:
            plan.add(ForwardRewrite(host=h, rules=tuple(rules), current=tuple(have), keep=keep))
        else:
            plan.add(ForwardRemove(host=h))


def forwards_on(w: World, f: HostFacts) -> tuple[list[str], tuple[tuple[str, str], ...]]:
    """This cluster's forwards on a host (their comments), and other dnet clusters' rules, to be kept as they are."""
    have, keep = [], []
    for table, lines in (("nat", f.nat_rules), ("filter", f.filter_rules)):
        for ln in lines:
            c = _comment(ln)
            if not ln.startswith("-A DNET-") or not c:
                continue
            owner = c.rpartition("@")[2] if "@" in c else ""  # none: written by a dnet before clusters, so ours
            if owner not in ("", w.inv.cluster):
                keep.append((table, ln))
            elif ln.startswith("-A DNET-FWD "):
                have.append(c)  # an unlabelled one differs from what we want, so the next apply labels it
    return sorted(have), tuple(keep)


def _comment(rule: str) -> str:
    try:
        parts = shlex.split(rule)
    except ValueError:
        return ""
    return parts[parts.index("--comment") + 1] if "--comment" in parts else ""
