"""Built-in node actions: availability, promote/demote, leave, node-remove, join-token rotation."""
from __future__ import annotations

from functools import partial

from dnet.inventory.resolve import address_of
from dnet.poll import PollTimeout, poll
from dnet.runbook.context import RunContext, RunError
from dnet.transport.base import quote

Outcome = tuple[str, str, str]  # host ("" for swarm-wide work), status, message


def node_id(rc: RunContext, host: str, manager: str) -> str | None:
    """The swarm node ID of a host: seen during this run, else the manager's node list (ID, hostname, address)."""
    if host in rc.node_ids:
        return rc.node_ids[host]
    own = rc.facts.get(host)
    if own and own.node_id:
        return own.node_id
    addr = address_of(rc.session.specs[host]) if host in rc.session.specs else ""
    for n in rc.facts[manager].nodes:
        if n.hostname == host or (addr and n.addr == addr):
            return n.id
    return None


def _nodes(rc: RunContext, targets: list[str]) -> tuple[str, list[tuple[str, str]]]:
    """A manager to act from (not a target when possible), and each target with its node ID."""
    mgr = rc.manager(avoid=targets)
    found = []
    for h in targets:
        nid = node_id(rc, h, mgr)
        if not nid:
            raise RunError(f"{h} is not a node of the swarm")
        found.append((h, nid))
    return mgr, found


def availability(rc: RunContext, targets: list[str], value: str) -> list[Outcome]:
    mgr, found = _nodes(rc, targets)
    out: list[Outcome] = []
    for h, nid in found:
        rc.run(mgr, f"docker node update --availability {value} {quote(nid)} >/dev/null")
        out.append((h, "ok", f"availability {value} (set on {mgr})"))
    return out


def role(rc: RunContext, targets: list[str], verb: str) -> list[Outcome]:
    mgr, found = _nodes(rc, targets)
    out: list[Outcome] = []
    for h, nid in found:
        now = next((n.role for n in rc.facts[mgr].nodes if n.id == nid), "")
        if now == {"demote": "worker", "promote": "manager"}[verb]:
            out.append((h, "ok", f"already a {now}"))
            continue
        if verb == "demote":
            managers = [n for n in rc.facts[mgr].nodes if n.role == "manager"]
            if [n.id for n in managers] == [nid]:
                raise RunError(f"{h} is the swarm's only manager; promote another node first")
        done = rc.run(mgr, f"docker node {verb} {quote(nid)} >/dev/null", check=False)
        if not done.ok and verb == "demote" and "raft memberlist" in done.stderr:
            out.append((h, "ok", "no raft member any more (a forced new cluster dropped it); its node is removed "
                                 "next"))
            continue
        if not done.ok:
            raise RunError(f"docker node {verb} {h} on {mgr}: {done.stderr.strip()[-300:]}")
        out.append((h, "ok", f"{verb}d (on {mgr})"))
    return out


def leave(rc: RunContext, targets: list[str]) -> list[Outcome]:
    out: list[Outcome] = []
    for h in targets:
        state = rc.read(h, "docker info --format '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}'"
                        ).stdout.split()
        if not state or state[0] == "inactive":
            out.append((h, "ok", "not in a swarm"))
            continue
        if len(state) > 1 and state[1] == "true":
            raise RunError(f"{h} is a manager: demote it first (action demote), so the swarm keeps its quorum")
        if h in rc.facts and rc.facts[h].node_id:
            rc.node_ids[h] = rc.facts[h].node_id  # node-remove needs it after the host forgot it
        rc.run(h, "docker swarm leave >/dev/null")
        out.append((h, "ok", "left the swarm"))
    return out


def node_remove(rc: RunContext, targets: list[str]) -> list[Outcome]:
    mgr = rc.manager(avoid=targets)
    out: list[Outcome] = []
    for h in targets:
        nid = node_id(rc, h, mgr)
        listed = rc.read(mgr, "docker node ls -q").stdout.split()
        if not nid or not any(nid.startswith(x) or x.startswith(nid) for x in listed):
            out.append((h, "ok", "not a node of the swarm"))
            continue
        state = f"docker node inspect {quote(nid)} --format '{{{{.Status.State}}}}'"
        if not rc.dry_run:
            try:
                poll(partial(_is_down, rc, mgr, state), timeout=60, interval=0.5, what=f"{h}'s node to be down")
            except PollTimeout as exc:
                raise RunError(f"{exc}: make it leave first (action leave), or stop it") from None
        rc.run(mgr, f"docker node rm {quote(nid)} >/dev/null")
        rc.node_ids.pop(h, None)
        out.append((h, "ok", f"removed from the swarm (on {mgr})"))
    return out


def _is_down(rc: RunContext, mgr: str, command: str) -> bool:
    return rc.read(mgr, command, check=False).stdout.strip() == "down"


def rotate_tokens(rc: RunContext, which: str) -> list[Outcome]:
    mgr = rc.manager()
    roles = ["worker", "manager"] if which == "both" else [which]
    for r in roles:
        before = "" if rc.dry_run else rc.read(mgr, f"docker swarm join-token -q {r}").stdout.strip()
        rc.secrets += (before,)
        rc.run(mgr, f"docker swarm join-token --rotate -q {r} >/dev/null")
        if rc.dry_run:
            continue
        after = rc.read(mgr, f"docker swarm join-token -q {r}").stdout.strip()
        rc.secrets += (after,)
        if not after or after == before:
            raise RunError(f"the {r} join token did not change")
    return [("", "ok", f"{' and '.join(roles)} join tokens rotated on {mgr} (the old ones no longer admit nodes)")]


def force_new_cluster(rc: RunContext, targets: list[str]) -> list[Outcome]:
    if len(targets) != 1:
        raise RunError(f"force-new-cluster acts on exactly one surviving manager (got {', '.join(targets) or 'none'})")
    host = targets[0]
    f = rc.facts.get(host)
    if f is None or f.swarm_state != "active" or not f.is_manager:
        raise RunError(f"{host} is no swarm manager (swarm state {f.swarm_state if f else 'unknown'}): only a "
                       "surviving manager keeps the swarm's state")
    if rc.dry_run:
        return [(host, "ok", "would run docker swarm init --force-new-cluster (after asking)")]
    if rc.ask is not None:
        typed = rc.ask(f"force a new cluster on {host}? Every other manager is dropped from the swarm. Type {host} "
                       "to go on")
        if str(typed).strip() != host:
            raise RunError(f"force-new-cluster not confirmed (typed {str(typed).strip()!r}, not {host!r})")
    elif not rc.yes:
        raise RunError("force-new-cluster needs confirmation: run at a terminal, or pass --yes")
    spec, sw = rc.session.specs[host], rc.inventory.swarm
    addr = spec.advertise_addr or (sw.advertise_interface if sw and sw.advertise_interface else address_of(spec))
    rc.run(host, f"docker swarm init --force-new-cluster --advertise-addr {quote(addr)} >/dev/null")
    poll(partial(_leads, rc, host), timeout=60, interval=1, what=f"{host} to lead the new cluster")
    rc.refresh()
    return [(host, "ok", "forced a new cluster: it is the only manager now; demote and remove the lost managers, "
                         "then promote new ones")]


def _leads(rc: RunContext, host: str) -> bool:
    got = rc.read(host, "docker node ls --filter role=manager --format '{{.Self}} {{.ManagerStatus}}'", check=False)
    return got.ok and "true Leader" in got.stdout
