"""Cross-reference checks that a schema alone cannot express."""
from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dnet.errors import Problem
from dnet.inventory.placement import eligible
from dnet.inventory.schema import TARGET_RE, URL_RE, Inventory
from dnet.inventory.stacks import service_names
from dnet.inventory.workload import CONSTRAINT

Where = Callable[[tuple[Any, ...]], tuple[int, int]]


def check(inv: Inventory, where: Where, filename: str) -> list[Problem]:
    """Return every semantic problem (errors and warnings) in a schema-valid inventory."""
    out: list[Problem] = []

    def err(path: tuple[Any, ...], msg: str, severity: str = "error") -> None:
        out.append(Problem(*where(path), msg, filename, severity))

    stack_names, stack_errors = service_names(inv.stacks, Path(filename).parent)
    for name, msg in stack_errors:
        err(("stacks", name, "file"), msg)
    _references(inv, err, stack_names)
    _addresses(inv, err)
    _subnets(inv, err)
    _managers(inv, err)
    _ports(inv, err)
    _placement(inv, err)
    _image_sources(inv, err)
    for name, svc in inv.services.items():
        for i, p in enumerate(svc.ports):
            if svc.endpoint_mode == "dnsrr" and p.mode == "ingress":
                err(("services", name, "ports", i, "mode") if _has_mode(p) else ("services", name, "ports", i),
                    f"service '{name}' uses endpoint_mode dnsrr, which Docker refuses with an ingress publish; "
                    "set mode: host on this port or use endpoint_mode: vip")
    return out


def _placement(inv: Inventory, err: Callable[..., None]) -> None:
    """A constraint no node can meet leaves a service with no task: say so at its line."""
    labels = [inv.hosts[h].labels for h in swarm_hosts(inv)]
    for name, svc in inv.services.items():
        for i, c in enumerate(svc.placement.constraints if svc.placement else []):
            m = CONSTRAINT.fullmatch(c)
            if not m:
                continue
            key, op, value = m[1], m[2], m[3]
            path = ("services", name, "placement", "constraints", i)
            if key.startswith("node.labels."):
                label = key.removeprefix("node.labels.")
                if not any(label in lb for lb in labels):
                    err(path, f"service '{name}': no host has the label '{label}', so no node meets '{c}'; "
                        "add it to a host's labels", "warning")
                elif op == "==" and not any(lb.get(label) == value for lb in labels):
                    err(path, f"service '{name}': no host has {label}={value}, so no node meets '{c}'", "warning")
            elif key == "node.hostname" and op == "==" and value not in inv.hosts:
                err(path, f"service '{name}': '{value}' is not a host of the inventory, so no node may meet '{c}'",
                    "warning")


def image_sources(inv: Inventory) -> dict[str, str]:
    """How each workload image reaches the hosts: the first workload's own image_source, else the default."""
    out: dict[str, str] = {}
    workloads = [(s.image, s.image_source) for s in inv.services.values()]
    workloads += [(c.image, c.image_source) for c in inv.containers.values()]
    for image, source in workloads:
        if source:
            out.setdefault(image, source)
    for image, _ in workloads:
        out.setdefault(image, inv.defaults.image_source)
    return out


def _image_sources(inv: Inventory, err: Callable[..., None]) -> None:
    """One image gets to a host one way: two workloads may not ask for it differently."""
    first: dict[str, tuple[str, str]] = {}
    for kind, items in (("services", inv.services), ("containers", inv.containers)):
        for name, w in items.items():
            if not w.image_source:
                continue
            seen = first.setdefault(w.image, (f"{kind[:-1]} '{name}'", w.image_source))
            if seen[1] != w.image_source:
                err((kind, name, "image_source"), f"{kind[:-1]} '{name}' wants {w.image} by {w.image_source}, "
                    f"{seen[0]} by {seen[1]}; one image reaches a host one way: make them agree")


def _has_mode(p: Any) -> bool:
    return "mode" in p.model_fields_set


def members(inv: Inventory, names: list[str]) -> list[str]:
    """Expand host and group names into host names, in order, without repeats."""
    seen: list[str] = []
    for n in names:
        for h in inv.groups.get(n, [n]):
            if h not in seen:
                seen.append(h)
    return seen


def bridge_hosts(inv: Inventory, net: str) -> list[str]:
    """Hosts a bridge network is created on (all hosts when none are listed)."""
    spec = inv.networks[net]
    return members(inv, list(spec.hosts)) if spec.hosts else list(inv.hosts)


def swarm_hosts(inv: Inventory) -> list[str]:
    """Hosts that take part in the swarm (those with a role)."""
    return [n for n, h in inv.hosts.items() if h.roles]


def _nearest(name: str, choices: list[str]) -> str:
    import difflib

    near = difflib.get_close_matches(name, choices, n=1)
    return f"; did you mean '{near[0]}'?" if near else ""


def _references(inv: Inventory, err: Callable[..., None], stack_services: list[str]) -> None:
    hosts = list(inv.hosts)
    for g, names in inv.groups.items():
        if g in inv.hosts:
            err(("groups", g), f"group '{g}' has the same name as a host; rename one")
        for i, h in enumerate(names):
            if h not in inv.hosts:
                err(("groups", g, i), f"group '{g}' lists unknown host '{h}'{_nearest(h, hosts)}")
    targets = hosts + list(inv.groups)
    for n, net in inv.networks.items():
        for i, h in enumerate(net.hosts):
            if h not in inv.hosts and h not in inv.groups:
                err(("networks", n, "hosts", i),
                    f"network '{n}' lists unknown host or group '{h}'{_nearest(h, targets)}")
    nets = list(inv.networks)
    for s, svc in inv.services.items():
        for i, n in enumerate(svc.networks):
            if n not in inv.networks:
                err(("services", s, "networks", i), f"service '{s}' uses unknown network '{n}'{_nearest(n, nets)}")
            elif inv.networks[n].driver != "overlay":
                err(("services", s, "networks", i),
                    f"service '{s}' can only join overlay networks; '{n}' is a {inv.networks[n].driver}")
    for c, ctr in inv.containers.items():
        if c in inv.services:
            err(("containers", c), f"container '{c}' has the same name as a service; their DNS names would clash")
        if ctr.host not in inv.hosts:
            err(("containers", c, "host"),
                f"container '{c}' is on unknown host '{ctr.host}'{_nearest(ctr.host, hosts)}")
        for i, n in enumerate(ctr.networks):
            spec = inv.networks.get(n)
            if spec is None:
                err(("containers", c, "networks", i), f"container '{c}' uses unknown network '{n}'{_nearest(n, nets)}")
            elif spec.driver == "overlay" and not spec.attachable:
                err(("containers", c, "networks", i),
                    f"container '{c}' cannot join overlay '{n}': it is not attachable; "
                    f"set attachable: true on network '{n}'")
            elif spec.driver == "bridge" and ctr.host in inv.hosts and ctr.host not in bridge_hosts(inv, n):
                err(("containers", c, "networks", i), f"bridge network '{n}' is not created on host '{ctr.host}'; "
                    f"add it to the network's hosts")
    for i, f in enumerate(inv.forwards):
        if f.host not in inv.hosts:
            err(("forwards", i, "host"), f"forward listens on unknown host '{f.host}'{_nearest(f.host, hosts)}")
        if f.to_host not in inv.hosts and not _is_ip(f.to_host):
            err(("forwards", i, "to"), f"forward goes to unknown host '{f.to_host}'{_nearest(f.to_host, hosts)}")
    names = hosts + list(inv.services) + list(inv.containers) + stack_services
    for i, ck in enumerate(inv.checks):
        if ck.from_ not in names:
            err(("checks", i, "from"), f"check starts from unknown '{ck.from_}' (a container, service or host)"
                f"{_nearest(ck.from_, names)}")
        m = TARGET_RE.match(ck.to)
        if m and not URL_RE.match(ck.to) and "." not in m["name"] and m["name"] not in names:
            err(("checks", i, "to"), f"check goes to unknown '{m['name']}'{_nearest(m['name'], names)}")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def _addresses(inv: Inventory, err: Callable[..., None]) -> None:
    seen: dict[tuple[str, int], str] = {}
    for n, h in inv.hosts.items():
        if not h.address:
            continue
        key = (h.address, h.port or inv.defaults.port or 22)
        if key in seen:
            err(("hosts", n, "address"),
                f"host '{n}' has the same address and port ({key[0]}:{key[1]}) as host '{seen[key]}'")
        else:
            seen[key] = n


def _subnets(inv: Inventory, err: Callable[..., None]) -> None:
    spans: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, tuple[Any, ...], str]] = []
    for i, p in enumerate(inv.defaults.docker.default_address_pools):
        spans.append((ipaddress.ip_network(p.base), ("defaults", "docker", "default_address_pools", i, "base"),
                      "the engine's default address pool"))
    for n, h in inv.hosts.items():
        for i, p in enumerate(h.docker.default_address_pools if h.docker else []):
            spans.append((ipaddress.ip_network(p.base), ("hosts", n, "docker", "default_address_pools", i, "base"),
                          f"host '{n}''s engine address pool"))
    if inv.swarm:
        for i, pool in enumerate(inv.swarm.default_addr_pool):
            spans.append((ipaddress.ip_network(pool), ("swarm", "default_addr_pool", i),
                          "the swarm's default address pool"))
    for n, net in inv.networks.items():
        if net.subnet:
            spans.append((ipaddress.ip_network(net.subnet), ("networks", n, "subnet"), f"network '{n}'"))
    for j, (b, path, what) in enumerate(spans):
        for a, _, other in spans[:j]:
            engine_pools = "engine" in what and "engine" in other  # per-host local pools may repeat
            if a.version == b.version and a.overlaps(b) and not engine_pools:
                err(path, f"{b} of {what} overlaps {a} of {other}; pick a subnet outside it")
                break


def _managers(inv: Inventory, err: Callable[..., None]) -> None:
    managers = [n for n, h in inv.hosts.items() if "manager" in h.roles]
    if not managers:
        for n, net in inv.networks.items():
            if net.driver == "overlay":
                err(("networks", n, "driver"), f"overlay network '{n}' needs a swarm, but no host has role manager")
        for s in inv.services:
            err(("services", s), f"service '{s}' needs a swarm, but no host has role manager")
        if inv.swarm:
            err(("swarm",), "swarm settings are given, but no host has role manager")
        for n, h in inv.hosts.items():
            if "worker" in h.roles:
                err(("hosts", n, "roles"), f"host '{n}' is a worker, but no host has role manager")
    elif len(managers) % 2 == 0:
        err(("hosts", managers[-1], "roles"),
            f"{len(managers)} managers: an even number tolerates no more failures than "
            f"{len(managers) - 1} and loses raft quorum sooner; use an odd number", "warning")


def _ports(inv: Inventory, err: Callable[..., None]) -> None:
    taken: dict[tuple[str, int, str], str] = {}

    def claim(host: str, port: int, proto: str, what: str, path: tuple[Any, ...]) -> None:
        key = (host, port, proto)
        if key in taken:
            err(path, f"{what} claims {port}/{proto} on host '{host}', already taken by {taken[key]}")
        else:
            taken[key] = what

    for c, ctr in inv.containers.items():
        for i, p in enumerate(ctr.ports):
            claim(ctr.host, p.published, p.protocol, f"container '{c}'", ("containers", c, "ports", i))
    for s, svc in inv.services.items():
        for i, sp in enumerate(svc.ports):
            for h in swarm_hosts(inv):
                claim(h, sp.published, sp.protocol, f"service '{s}' ({sp.mode} mode)", ("services", s, "ports", i))
            fit = eligible(inv, svc)
            if sp.mode == "host" and svc.mode == "replicated" and svc.replicas > len(fit):
                where = "nodes" if len(fit) == len(swarm_hosts(inv)) else "nodes its placement allows"
                err(("services", s, "replicas"), f"service '{s}' publishes {sp.published}/{sp.protocol} in host mode, "
                    f"so at most one task fits per node, but asks for {svc.replicas} replicas on "
                    f"{len(fit)} {where}", "warning")
            if sp.mode == "host" and svc.update and svc.update.order == "start-first":
                err(("services", s, "update", "order"), f"service '{s}' publishes {sp.published}/{sp.protocol} in "
                    "host mode: with order start-first a new task cannot bind it beside the old one on the same "
                    "node; use stop-first", "warning")
    for i, f in enumerate(inv.forwards):
        claim(f.host, f.listen, f.protocol, f"forward #{i + 1}", ("forwards", i, "listen"))
