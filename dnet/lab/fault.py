"""Network faults inside lab nodes: partitions and port drops (iptables raw table, before Docker's NAT, so
published ports and overlays are hit too), delay and loss (netem, where the kernel has it), a smaller MTU, and
heal.

Each fault is a set of rules in dnet's own chain DNET-FAULT, run on the lab nodes over SSH; nothing outside the
lab is touched. A fault is also a context manager that heals itself on exit.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from dnet.errors import DnetError
from dnet.lab.state import LabState, Node, host_spec

CHAIN = "DNET-FAULT"
HOOK = (f"iptables -t raw -N {CHAIN} 2>/dev/null; "
        f"for c in PREROUTING OUTPUT; do iptables -t raw -C $c -j {CHAIN} 2>/dev/null || "
        f"iptables -t raw -I $c 1 -j {CHAIN}; done")
_SAVED = "/run/dnet-fault-mtu"  # the MTU before the first mtu fault, for heal
_RESTORE = f"if [ -f {_SAVED} ]; then ip link set eth0 mtu $(cat {_SAVED}) && rm -f {_SAVED}; fi"
Runner = Callable[[str, str], str]  # (node, command) -> output; raises on failure


@dataclass
class Fault:
    """One injected fault: what it did, and how to undo exactly that."""

    what: str
    undo: list[tuple[str, str]] = field(default_factory=list)  # (node, command)
    runner: Runner | None = None

    def heal(self) -> None:
        if self.runner:
            for node, cmd in self.undo:
                self.runner(node, cmd)
            self.undo.clear()

    def __enter__(self) -> Fault:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.heal()


class Faults:
    """Fault injection for one lab: `partition`, `drop`, `delay`, `loss`, `mtu`, `heal`."""

    def __init__(self, state: LabState, runner: Runner) -> None:
        self.state, self.runner = state, runner

    def _node(self, name: str) -> Node:
        for n in self.state.nodes:
            if n.name == name:
                return n
        raise DnetError(f"no node '{name}' in lab '{self.state.name}' (nodes: "
                        f"{', '.join(n.name for n in self.state.nodes)}); faults act inside lab nodes only")

    def _rules(self, node: str, rules: list[str], what: str) -> Fault:
        fault = Fault(what, runner=self.runner)
        self.runner(node, HOOK + "; " + "; ".join(f"iptables -t raw -A {CHAIN} {r}" for r in rules))
        fault.undo += [(node, f"iptables -t raw -D {CHAIN} {r} 2>/dev/null || true") for r in rules]
        return fault

    def partition(self, a: str, b: str) -> Fault:
        """Drop every packet between two nodes (both ways, overlays and published ports included)."""
        na, nb = self._node(a), self._node(b)
        if na.name == nb.name:
            raise DnetError("a partition needs two different nodes")
        one = self._rules(a, [f"-s {nb.address} -j DROP", f"-d {nb.address} -j DROP"], "")
        try:
            two = self._rules(b, [f"-s {na.address} -j DROP", f"-d {na.address} -j DROP"], "")
        except BaseException:  # all or nothing: a half partition (one way only) is not what was asked for
            one.heal()
            raise
        return Fault(f"partition {a} <-> {b}", one.undo + two.undo, self.runner)

    def drop(self, node: str, port: str) -> Fault:
        """Drop packets to PROTO/PORT on a node (e.g. tcp/8080, udp/4789), before Docker's NAT."""
        m = re.fullmatch(r"(tcp|udp)/(\d{1,5})", port)
        if not m or not 0 < int(m[2]) < 65536:
            raise DnetError(f"drop {port}: write PROTO/PORT, e.g. tcp/8080 or udp/4789")
        self._node(node)
        rule = f"-p {m[1]} --dport {m[2]} -m addrtype --dst-type LOCAL -j DROP"
        return Fault(f"drop {port} on {node}", self._rules(node, [rule], "").undo, self.runner)

    def _netem(self, node: str, args: str, what: str) -> Fault:
        self._node(node)
        try:
            self.runner(node, f"tc qdisc replace dev eth0 root netem {args}")
        except DnetError as exc:
            if "unknown" in str(exc).lower() or "no such file" in str(exc).lower():
                raise DnetError(f"{what}: this kernel has no netem (sch_netem), so delay and loss cannot be "
                                "injected here; partition and drop work") from None
            raise
        return Fault(f"{what} on {node}", [(node, "tc qdisc del dev eth0 root 2>/dev/null || true")], self.runner)

    def delay(self, node: str, ms: int) -> Fault:
        return self._netem(node, f"delay {int(ms)}ms", f"delay {ms}ms")

    def loss(self, node: str, percent: float) -> Fault:
        return self._netem(node, f"loss {float(percent)}%", f"loss {percent}%")

    def mtu(self, node: str, size: int) -> Fault:
        """Lower the MTU of a node's lab interface: packets larger than SIZE sent to it are dropped silently (the
        black hole of a VPN or cloud link), and the node itself cannot send them."""
        self._node(node)
        if not 576 <= size <= 9216:
            raise DnetError(f"mtu {size}: give a size from 576 to 9216")
        self.runner(node, f"[ -f {_SAVED} ] || cat /sys/class/net/eth0/mtu > {_SAVED}; ip link set eth0 mtu {size}")
        return Fault(f"mtu {size} on {node}", [(node, _RESTORE)], self.runner)

    def heal(self, node: str | None = None) -> list[str]:
        """Remove every fault from one node, or from every node of the lab."""
        names = [self._node(node).name] if node else [n.name for n in self.state.nodes]
        for n in names:
            self.runner(n, f"iptables -t raw -F {CHAIN} 2>/dev/null || true; "
                           f"tc qdisc del dev eth0 root 2>/dev/null || true; {_RESTORE}")
        return names


def for_lab(name: str) -> Faults:
    """Faults for a running lab, acting over SSH on its nodes."""
    from dnet.transport.ssh import SSHTransport

    state = LabState.load(name)

    def run(node: str, command: str) -> str:
        n = next(x for x in state.nodes if x.name == node)
        t = SSHTransport(host_spec(state, n))
        try:
            return t.run(command).stdout
        finally:
            t.close()

    return Faults(state, run)
