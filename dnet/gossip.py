"""What each engine's overlay gossip knows: the nodes and tasks on every inventory overlay, read from each host's
Engine API, and what some host does not know yet (traffic between it and what it misses fails)."""
from __future__ import annotations

import contextlib
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dnet.facts import concatenated, engine_get, tasks_path
from dnet.inventory.semantic import swarm_hosts
from dnet.poll import PollTimeout, poll
from dnet.runner import parallel
from dnet.session import Session
from dnet.transport import Transport
from dnet.transport.base import quote

View = tuple[str, ...]  # ("node", address) or ("task", service, task address)
Views = dict[str, set[View]]  # network name -> what is known of it
Log = Callable[[str], None]


def overlay_views(t: Transport, names: list[str], services: list[str], running: list[str] | None = None
                  ) -> tuple[Views, Views]:
    """Per overlay: what this host's engine knows of it: the nodes it exchanges traffic with (itself included)
    and the tasks of `services` on it (what its DNS answers and its VXLAN forwarding use). A network with no
    endpoint here is left out (the engine keeps no such view of it).

    With `running` (on a manager), the same round trip also reads which tasks of those services run now, per
    network, named as in the views."""
    cli = "; ".join([*(f"o=$(docker network inspect -v --format '{{{{json .}}}}' {quote(n)} 2>/dev/null); "
                       'echo "${o:-null}"' for n in names),  # exactly one document per network
                     *(f"t=$(docker service ps -q --no-trunc --filter desired-state=running {quote(x)} 2>/dev/null); "
                       "o=; [ -n \"$t\" ] && o=$(docker inspect --type task $t 2>/dev/null); "
                       'echo "${o:-[]}"' for x in running or [])])  # and one task list per service
    paths = [f"/networks/{urllib.parse.quote(n)}?verbose=true" for n in names]
    out = t.run(engine_get(paths + [tasks_path(x, True) for x in running or []], cli), check=False).stdout
    try:
        docs = concatenated(out)
    except ValueError:
        return {}, {}
    views: Views = {}
    for n, doc in zip(names, docs, strict=False):
        peers = doc.get("Peers") if isinstance(doc, dict) else None
        if not isinstance(peers, list) or not peers:
            continue
        view: set[View] = {("node", str(p.get("IP"))) for p in peers if isinstance(p, dict)}
        for svc, info in (doc.get("Services") or {}).items():
            if svc in services and isinstance(info, dict):
                tasks = [x for x in info.get("Tasks") or [] if isinstance(x, dict)]
                view |= {("task", svc, str(x.get("EndpointIP"))) for x in tasks}
        views[n] = view
    return views, _running(running or [], docs[len(names):])


def _running(services: list[str], docs: list[Any]) -> Views:
    """Per network: the running tasks in the Engine API's task lists (one per service)."""
    found: Views = {}
    for svc, doc in zip(services, docs, strict=False):
        for task in doc if isinstance(doc, list) else []:
            if not isinstance(task, dict) or (task.get("Status") or {}).get("State") != "running":
                continue
            for att in task.get("NetworksAttachments") or []:
                net = ((att.get("Network") or {}).get("Spec") or {}).get("Name", "")
                for addr in att.get("Addresses") or []:
                    found.setdefault(net, set()).add(("task", svc, str(addr).split("/")[0]))
    return found


@dataclass
class Gap:
    """One host's overlay view that lacks nodes or running tasks others have."""

    network: str
    host: str
    missing: list[str]  # host names (for nodes) and "SERVICE's task ADDRESS"
    hosts: list[str]  # the inventory hosts among the nodes it misses

    def __str__(self) -> str:
        return f"overlay {self.network}: {self.host} does not know of {', '.join(self.missing)}"


def gaps(s: Session, leader: str | None) -> list[Gap]:
    """Read every swarm host's views of the inventory's overlays (and the running tasks from the leader), in
    parallel, one round trip each; return what some host does not know."""
    inv = s.loaded.model
    names = sorted(n for n, net in inv.networks.items() if net.driver == "overlay")
    hosts = [h for h in swarm_hosts(inv) if h in s.transports]
    if not names or not hosts:
        return []
    services = sorted(inv.services)
    who = {ip: h for h, f in s.facts.items() for ips in f.addresses.values() for ip in ips}
    read = parallel(hosts, lambda h: overlay_views(s.transports[h], names, services,
                                                   services if h == leader else None))
    seen = {r.host: r.value[0] for r in read if r.ok and r.value is not None}
    tasks = next((r.value[1] for r in read if r.host == leader and r.ok and r.value is not None), {})
    out: list[Gap] = []
    for n in names:
        views = {h: v[n] for h, v in seen.items() if n in v}
        # every host with endpoints on it (its own entry in its own view: a node that still lists a peer which
        # has left asks nothing of the others), and every task that runs (a replaced task's entry: harmless)
        wanted = {x for h, v in views.items() for x in v if x[0] == "node" and who.get(x[1]) == h} | \
            tasks.get(n, set())
        for h, v in sorted(views.items()):
            lack = sorted(wanted - v)
            if lack:
                said = sorted(who.get(x[1], x[1]) if x[0] == "node" else f"{x[1]}'s task {x[2]}" for x in lack)
                named = sorted({who[x[1]] for x in lack if x[0] == "node" and x[1] in who})
                out.append(Gap(n, h, said, named))
    return out


def wait(s: Session, leader: str | None, timeout: float = 60, log: Log | None = None) -> list[str]:
    """Wait until every host with an endpoint on one of the inventory's overlays knows every other such host and
    every task of the inventory's services there; return what is still missing after `timeout` (nothing when
    every host knows everything).

    Tasks can run before the overlay's gossip has told every node about every other node and task (seen on 8
    nodes: one node without another's task for 45 s, until the engines' periodic resync); until then DNS on it
    does not answer with that task and traffic between the two fails.
    """
    missing: list[Gap] = []
    start, told = time.monotonic(), [False]

    def known() -> bool:
        missing[:] = gaps(s, leader)
        if missing and log and not told[0] and time.monotonic() - start > 5:  # a long wait says what it waits for
            told[0] = True
            log(f"waiting for the engines' gossip: {missing[0]}" + (f" (and {len(missing) - 1} more)"
                                                                     if len(missing) > 1 else ""))
        return not missing

    with contextlib.suppress(PollTimeout):
        poll(known, timeout=timeout, interval=0.5, max_interval=2, what="every overlay's nodes and tasks")
    return [f"{m} after {timeout:.0f}s: the engines' gossip (7946) has not told it yet; traffic between them "
            "fails until it does (run verify to see which paths)" for m in missing]
