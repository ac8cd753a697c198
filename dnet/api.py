"""dnet's Python API: the same code paths as the CLI, returning typed results. Kept stable.

    from dnet import api
    inv = api.load("inventory.yml")
    print(api.plan(inv).changes)
    result = api.apply(inv)
    assert api.verify(inv)          # a failing result lists the failed checks and their hints

Labs: `api.lab_up("t1", nodes=3)` returns a `Lab` with its inventory path; `api.lab_down("t1")` removes it.
"""
from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dnet import converge
from dnet.errors import DnetError
from dnet.execute import Executed, Refuse, execute
from dnet.inventory import Loaded
from dnet.inventory import load as _load
from dnet.inventory.limit import select
from dnet.lock import Lock, hosts_locked
from dnet.session import Session, open_session

__all__ = ["ApplyResult", "Change", "Lab", "PlanResult", "VerifyResult", "apply", "destroy", "lab_down", "lab_up",
           "load", "plan", "verify"]

Inventory = Loaded | str | os.PathLike[str]
Log = Callable[[str], None]


@dataclass(frozen=True)
class Change:
    """One change of a plan, or its outcome after apply (status ok, failed or skipped; pending in a plan)."""

    host: str
    kind: str
    name: str
    action: str
    detail: str = ""
    status: str = "pending"
    message: str = ""


@dataclass
class PlanResult:
    changes: list[Change]
    errors: list[str]
    warnings: list[str]
    unreachable: dict[str, str]


@dataclass
class ApplyResult:
    changes: list[Change]
    errors: list[str]
    unreachable: dict[str, str]
    services: dict[str, str] = field(default_factory=dict)  # service -> "running/desired"
    warnings: list[str] = field(default_factory=list)  # an overlay whose nodes do not all know each other yet

    @property
    def ok(self) -> bool:
        return not self.errors and not self.unreachable and all(c.status == "ok" for c in self.changes)

    def __bool__(self) -> bool:
        return self.ok


@dataclass
class VerifyResult:
    """Every check with the same fields as `verify --json` (scope, from, to, ok, result, detail, hint, ...)."""

    checks: list[dict[str, Any]]
    findings: list[dict[str, Any]]
    hints: list[str]
    unreachable: dict[str, str]
    seconds: float

    @property
    def passed(self) -> list[dict[str, Any]]:
        return [c for c in self.checks if c["ok"]]

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [c for c in self.checks if not c["ok"]]

    def __bool__(self) -> bool:
        return not self.failed and not self.unreachable

    def check(self, src: str, dst: str, what: str = "") -> dict[str, Any]:
        """The one check from src to dst (`what`: a part of its check text, when there are several). KeyError,
        listing what there is, when none or several match."""
        found = [c for c in self.checks if c["from"] == src and c["to"] == dst and what in c["check"]]
        if len(found) != 1:
            near = sorted({f"{c['from']} -> {c['to']} ({c['check']})" for c in self.checks
                           if c["from"] == src or c["to"] == dst})
            raise KeyError(f"{len(found)} checks from {src} to {dst}" + (f" matching {what!r}" if what else "")
                           + (f"; there are: {'; '.join(near[:12])}" if near else ""))
        return found[0]

    def __repr__(self) -> str:
        if self:
            return f"<verify: all {len(self.checks)} checks hold>"
        lines = [f"verify: {len(self.failed)} of {len(self.checks)} checks failed"]
        lines += [f"  {c['from']} -> {c['to']} ({c['check']}): {c['result']}"
                  + (f"; hint: {c['hint']}" if c.get("hint") else "") for c in self.failed[:30]]
        lines += [f"  finding: {f['cause']}; fix: {f['fix']}" for f in self.findings]
        lines += [f"  unreachable: {h}: {e}" for h, e in self.unreachable.items()]
        return "\n".join(lines)


def load(path: str | os.PathLike[str]) -> Loaded:
    """Read and validate an inventory (raises InventoryError listing every problem at FILE:LINE:COL)."""
    return _load(Path(path))


def _loaded(inv: Inventory) -> Loaded:
    return inv if isinstance(inv, Loaded) else load(inv)


def _session(inv: Inventory, limit: str | list[str] | None, log: Log, accept: bool, lock: Lock | None = None
             ) -> Session:
    loaded = _loaded(inv)
    hosts = None
    if limit is not None:
        hosts = select(loaded.model, limit if isinstance(limit, str) else ",".join(limit))
    return open_session(loaded, accept, log, limit=hosts, lock=lock)


def _quiet(_: str) -> None:
    pass


def _change(c: Any) -> Change:
    return Change(c.host, c.kind, c.name, str(c.action), c.detail)


def plan(inv: Inventory, limit: str | list[str] | None = None, *, prune_nodes: bool = False,
         accept_new_host_keys: bool = False, log: Log = _quiet, target: list[str] | None = None) -> PlanResult:
    """What apply would change (touches nothing); with `target` (KIND.NAME values), only those resources' changes
    and what they need."""
    from dnet.plan.target import parse

    with _session(inv, limit, log, accept_new_host_keys) as s:
        p = converge.make_plan(s, prune_nodes, parse(target or [], s.loaded.model))
        return PlanResult([Change(c.host, c.kind, c.name, str(c.action), c.detail) for c in p.ordered()],
                          p.errors, p.warnings, dict(s.host_errors))


Guard = Callable[[Change], str | None]  # a reason to refuse one planned change, or None


def apply(inv: Inventory, limit: str | list[str] | None = None, *, serial: int = 1, prune_nodes: bool = False,
          accept_new_host_keys: bool = False, log: Log = _quiet, guard: Guard | None = None,
          target: list[str] | None = None) -> ApplyResult:
    """Make the hosts match the inventory (no confirmation); wait until services run every replica.

    With `guard`, nothing is applied when it refuses any planned change (its reasons are the errors); with
    `target` (KIND.NAME values), only those resources' changes and what they need."""
    from dnet.plan.target import parse

    lock = Lock("dnet.api.apply")
    with _session(inv, limit, log, accept_new_host_keys, lock) as s, hosts_locked(s.transports, lock, log):
        plan = converge.make_plan(s, prune_nodes, parse(target or [], s.loaded.model))
        return _result(execute(s, plan, log, serial=serial, refuse=_refuse(guard)))


def destroy(inv: Inventory, *, leave_swarm: bool = False, volumes: bool = False, accept_new_host_keys: bool = False,
            log: Log = _quiet, only: Callable[[Change], bool] | None = None) -> ApplyResult:
    """Remove everything dnet made on the hosts (label dnet.managed=true) for this inventory's cluster and nothing
    else (named volumes only with `volumes`); with `only`, just the changes it selects (e.g. what one test session
    made)."""
    lock = Lock("dnet.api.destroy")
    with _session(inv, None, log, accept_new_host_keys, lock) as s, hosts_locked(s.transports, lock, log):
        plan = converge.destroy_plan(s, leave_swarm, volumes)
        if only is not None:
            plan.changes = [c for c in plan.changes if only(_change(c))]
        return _result(execute(s, plan, log, destroying=True))


def _refuse(guard: Guard | None) -> Refuse | None:
    return None if guard is None else lambda c: guard(_change(c))


def _result(r: Executed) -> ApplyResult:
    """The API's form of an execution: the same fields and texts as `apply --json`."""
    changes = [Change(o.change.host, o.change.kind, o.change.name, str(o.change.action), o.change.detail, o.status,
                      o.message) for o in r.outcomes]
    return ApplyResult(changes, r.errors, r.unreachable, r.services, r.warnings)


def verify(inv: Inventory, scopes: list[int] | None = None, limit: str | list[str] | None = None, *,
           accept_new_host_keys: bool = False, log: Log = _quiet, from_operator: bool = True) -> VerifyResult:
    """Probe every path the inventory implies (only `scopes`, 1-5, when given; published ports and forwards from
    another host instead of this machine when not from_operator)."""
    from dnet.verify import report
    from dnet.verify import verify as run

    with _session(inv, limit, log, accept_new_host_keys) as s:
        r = run(s, log, scopes, operator=from_operator)
        data = report.as_json(r.checks, r.hints, r.seconds, r.findings)
        return VerifyResult(data["checks"], data["findings"], r.hints, dict(s.host_errors), r.seconds)


@dataclass(frozen=True)
class Lab:
    """A running lab: its name, the inventory it wrote, and its hosts' addresses."""

    name: str
    inventory: Path
    addresses: dict[str, str]

    @property
    def hosts(self) -> list[str]:
        return list(self.addresses)


def free_subnet() -> str:
    """A /24 in 192.168.100-199 that no Docker network and no route here uses."""
    from dnet.lab import dind
    from dnet.lab.libvirt import MGMT

    c = dind.client()
    used = [ipaddress.ip_network(cfg["Subnet"], strict=False) for n in c.networks.list()
            for cfg in (n.attrs.get("IPAM") or {}).get("Config") or [] if cfg.get("Subnet")]
    used.append(MGMT)  # vagrant-libvirt's management network, up or not
    routes = Path("/proc/net/route").read_text().splitlines()[1:] if Path("/proc/net/route").exists() else []
    for line in routes:
        parts = line.split()
        dest, mask = (int(parts[1], 16), int(parts[7], 16)) if len(parts) > 7 else (0, 0)
        if mask:
            net = ipaddress.ip_network((ipaddress.IPv4Address(dest.to_bytes(4, "little")),
                                        bin(mask).count("1")), strict=False)
            used.append(net)
    for third in range(100, 200):
        cand = ipaddress.ip_network(f"192.168.{third}.0/24")
        if not any(cand.overlaps(u) for u in used):
            return str(cand)
    raise DnetError("no free /24 in 192.168.100.0-192.168.199.255 for a lab; pass subnet=")


def lab_up(name: str, nodes: int = 3, provider: str = "docker", example: bool | Path = False, bare: bool = False,
           subnet: str | None = None, output: str | os.PathLike[str] | None = None, log: Log = _quiet,
           accel: str = "auto") -> Lab:
    """Start a lab (Docker-in-Docker nodes, Vagrant machines with provider="vagrant", or VMs under QEMU with
    provider="qemu" or made by Vagrant on libvirt with provider="libvirt", accel "auto", "kvm" or "tcg") and write
    its inventory.

    With example=True the inventory is the example's networks and workloads on the lab's hosts (example=PATH: that
    inventory's). The subnet
    defaults to a free 192.168.x.0/24.
    """
    from dnet.lab import output as lab_output
    from dnet.lab import provider as providers
    from dnet.lab.state import check_name

    check_name(name)
    chosen = providers.get(provider)
    state = chosen.up(name, nodes, subnet or free_subnet(), bare, log, accel)
    path = Path(output) if output else state.dir / "inventory.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    pick = example if isinstance(example, Path) else lab_output.EXAMPLE if example else None
    path.write_text(lab_output.inventory(state, pick))
    state.inventory = str(path.resolve())
    state.save()
    return Lab(name, path, {n.name: n.address for n in state.nodes})


def lab_down(name: str, log: Log = _quiet) -> None:
    """Remove a lab: exactly what it made."""
    from dnet.lab import provider as providers
    from dnet.lab.state import check_name

    check_name(name)
    state = providers.load(name)
    providers.of(state).down(name, state, log)
