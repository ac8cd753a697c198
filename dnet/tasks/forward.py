"""Forward tasks: kernel NAT (DNAT + MASQUERADE) in dnet's own iptables chains."""
from __future__ import annotations

from dnet.plan.desired import ForwardRule
from dnet.plan.model import ForwardRemove, ForwardRewrite
from dnet.tasks.base import Context, task
from dnet.transport.base import quote

HOOKS = [("nat", "PREROUTING", ["-m", "addrtype", "--dst-type", "LOCAL", "-j", "DNET-FWD"]),
         ("nat", "OUTPUT", ["-m", "addrtype", "--dst-type", "LOCAL", "-j", "DNET-FWD"]),
         ("nat", "POSTROUTING", ["-j", "DNET-FWD-POST"]),
         ("filter", "FORWARD", ["-j", "DNET-FWD-FILTER"])]
CHAINS = [("nat", "DNET-FWD"), ("nat", "DNET-FWD-POST"), ("filter", "DNET-FWD-FILTER")]


def _ipt(table: str, *args: str) -> str:
    return quote("iptables", "-w", "-t", table, *args)


def rules(r: ForwardRule) -> list[str]:
    """The iptables commands for one forward."""
    p, c = r.protocol, ["-m", "comment", "--comment", r.comment]
    dest, port, listen = f"{r.to_ip}:{r.to_port}", str(r.to_port), str(r.listen)
    return [_ipt("nat", "-A", "DNET-FWD", "-p", p, "--dport", listen, *c, "-j", "DNAT", "--to-destination", dest),
            _ipt("nat", "-A", "DNET-FWD-POST", "-p", p, "-d", r.to_ip, "--dport", port, *c, "-j", "MASQUERADE"),
            _ipt("filter", "-A", "DNET-FWD-FILTER", "-p", p, "-d", r.to_ip, "--dport", port, *c, "-j", "ACCEPT"),
            _ipt("filter", "-A", "DNET-FWD-FILTER", "-p", p, "-s", r.to_ip, "--sport", port, *c, "-j", "ACCEPT")]


def _unhook() -> list[str]:
    return [f"while {_ipt(t, '-C', chain, *spec)} 2>/dev/null; do {_ipt(t, '-D', chain, *spec)}; done"
            for t, chain, spec in HOOKS]


@task(ForwardRewrite)
def rewrite(ctx: Context, c: ForwardRewrite) -> str:
    """Replace dnet's forward rules on a host with exactly the declared ones."""
    cmds = ["set -e"]
    cmds += [f"{_ipt(t, '-N', ch)} 2>/dev/null || true; {_ipt(t, '-F', ch)}" for t, ch in CHAINS]
    cmds += _unhook()
    cmds += [_ipt(t, "-I", chain, "1", *spec) for t, chain, spec in HOOKS]
    for r in c.rules:
        cmds += rules(r)
    cmds.append("sysctl -qw net.ipv4.ip_forward=1")
    ctx.run(c.host, "\n".join(cmds))
    return f"{len(c.rules)} forwards: {c.detail}"


@task(ForwardRemove)
def remove(ctx: Context, c: ForwardRemove) -> str:
    """Remove dnet's chains and the jumps into them."""
    cmds = _unhook()
    cmds += [f"{_ipt(t, '-F', ch)} 2>/dev/null || true; {_ipt(t, '-X', ch)} 2>/dev/null || true" for t, ch in CHAINS]
    ctx.run(c.host, "\n".join(cmds))
    return "forwards removed"
