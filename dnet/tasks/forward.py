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


def rules(r: ForwardRule) -> list[tuple[str, list[str]]]:
    """The iptables rules of one forward, as (table, arguments)."""
    p, c = r.protocol, ["-m", "comment", "--comment", f'"{r.comment}"']  # quoted as iptables-restore reads it
    dest, port, listen = f"{r.to_ip}:{r.to_port}", str(r.to_port), str(r.listen)
    return [("nat", ["-A", "DNET-FWD", "-p", p, "--dport", listen, *c, "-j", "DNAT", "--to-destination", dest]),
            ("nat", ["-A", "DNET-FWD-POST", "-p", p, "-d", r.to_ip, "--dport", port, *c, "-j", "MASQUERADE"]),
            ("filter", ["-A", "DNET-FWD-FILTER", "-p", p, "-d", r.to_ip, "--dport", port, *c, "-j", "ACCEPT"]),
            ("filter", ["-A", "DNET-FWD-FILTER", "-p", p, "-s", r.to_ip, "--sport", port, *c, "-j", "ACCEPT"])]


def restore_file(fwd: list[ForwardRule], keep: tuple[tuple[str, str], ...] = ()) -> str:
    """dnet's chains with exactly these forwards (and other dnet clusters' rules, `keep`, as they were), for
    `iptables-restore --noflush`: each table's chains are replaced in one commit, so a rule the kernel refuses
    leaves the old rules in place, never none."""
    out = []
    for table in ("nat", "filter"):
        out.append(f"*{table}")
        out += [f":{ch} - [0:0]" for t, ch in CHAINS if t == table]  # declared: created or emptied
        out += [line for t, line in keep if t == table]
        out += [" ".join(args) for r in fwd for t, args in rules(r) if t == table]
        out.append("COMMIT")
    return "\n".join(out) + "\n"


def _unhook() -> list[str]:
    return [f"while {_ipt(t, '-C', chain, *spec)} 2>/dev/null; do {_ipt(t, '-D', chain, *spec)}; done"
            for t, chain, spec in HOOKS]


@task(ForwardRewrite)
def rewrite(ctx: Context, c: ForwardRewrite) -> str:
    """Replace dnet's forward rules on a host with exactly the declared ones."""
    cmds = ["set -e", "iptables-restore -w --noflush"]
    cmds += [f"{_ipt(t, '-C', chain, *spec)} 2>/dev/null || {_ipt(t, '-I', chain, '1', *spec)}"
             for t, chain, spec in HOOKS]
    cmds.append("sysctl -qw net.ipv4.ip_forward=1")
    # the restore file goes on stdin to the first command; the hooks follow once the chains hold the rules
    script = cmds[0] + "\n" + cmds[1] + " <<'DNET_RULES'\n" + restore_file(list(c.rules), c.keep) + "DNET_RULES\n" + \
        "\n".join(cmds[2:])
    ctx.run(c.host, script)
    return f"{len(c.rules)} forwards: {c.detail}"


@task(ForwardRemove)
def remove(ctx: Context, c: ForwardRemove) -> str:
    """Remove dnet's chains and the jumps into them."""
    cmds = _unhook()
    cmds += [f"{_ipt(t, '-F', ch)} 2>/dev/null || true; {_ipt(t, '-X', ch)} 2>/dev/null || true" for t, ch in CHAINS]
    ctx.run(c.host, "\n".join(cmds))
    return "forwards removed"
