"""Compare the inventory with every host's facts and list the changes, in apply order."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from dnet import MANAGED_LABEL
from dnet.facts import HostFacts
from dnet.inventory.resolve import HostSpec
from dnet.inventory.schema import Inventory
from dnet.inventory.semantic import bridge_hosts, swarm_hosts
from dnet.plan import desired as d
from dnet.plan.model import Change, Plan


@dataclass
class World:
    """Everything diff needs: the inventory, resolved hosts, facts and the operator's image IDs."""

    inv: Inventory
    specs: dict[str, HostSpec]
    facts: dict[str, HostFacts]
    local_images: dict[str, str | None]

    def leader(self) -> str | None:
        """The manager that runs cluster-wide commands (first manager already active, else first manager)."""
        managers = [h for h in swarm_hosts(self.inv) if "manager" in self.inv.hosts[h].roles]
        for h in managers:
            f = self.facts.get(h)
            if f and f.swarm_state == "active" and f.is_manager:
                return h
        return managers[0] if managers else None


def _managed(obj: dict[str, Any], labels_path: tuple[str, ...] = ("Labels",)) -> dict[str, str]:
    cur: Any = obj
    for p in labels_path:
        cur = (cur or {}).get(p) or {}
    return cur if isinstance(cur, dict) else {}


def diff(w: World) -> Plan:
    """Return the plan that makes the hosts match the inventory."""
    plan = Plan()
    _engine(w, plan)
    _swarm(w, plan)
    _networks(w, plan)
    _workloads(w, plan)
    _forwards(w, plan)
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
                plan.add(Change(h, "engine", "engine", "docker", "install", "apt-get install docker.io"))
            else:
                plan.add(Change(h, "engine", "engine", "docker", "start", f"engine not answering: {f.engine_error[:120]}"))
        want = d.daemon_settings(spec)
        have = {k: f.daemon.get(k) for k in want}
        if want != have:
            keys = ", ".join(f"{k}: {have[k]!r} -> {want[k]!r}" for k in want if want[k] != have[k])
            plan.add(Change(h, "engine", "daemon", "/etc/docker/daemon.json", "update",
                            f"{keys}; restarts the engine", {"settings": want}))


def _swarm(w: World, plan: Plan) -> None:
    members = swarm_hosts(w.inv)
    leader = w.leader()
    if not leader:
        return
    lf = w.facts[leader]
    cluster = lf.cluster_id if lf.swarm_state == "active" and lf.is_manager else ""
    if not cluster:
        if lf.swarm_state != "inactive":
            plan.errors.append(f"{leader}: swarm state is '{lf.swarm_state}' ({lf.swarm.get('Error') or 'no detail'}); "
                               "fix or leave that swarm by hand (docker swarm leave --force)")
            return
        sw = w.inv.swarm
        pools = ", ".join(sw.default_addr_pool) if sw and sw.default_addr_pool else "default pools"
        plan.add(Change(leader, "swarm", "swarm", "swarm", "init", f"first manager; overlay pools {pools}"))
    known_nodes = {n.get("ID"): n for n in lf.nodes} if cluster else {}
    for h in members:
        if h not in w.facts:  # unreachable: reported by the caller
            continue
        f = w.facts[h]
        role = "manager" if "manager" in w.inv.hosts[h].roles else "worker"
        if h == leader and not cluster:
            pass
        elif f.swarm_state == "inactive":
            plan.add(Change(h, "swarm", "swarm", "swarm", "join", f"as {role}", {"role": role}))
        elif f.swarm_state != "active":
            plan.errors.append(f"{h}: swarm state is '{f.swarm_state}'; fix it by hand (docker swarm leave --force)")
            continue
        elif not cluster or (f.is_manager and f.cluster_id != cluster) or (not f.is_manager and f.node_id not in known_nodes):
            other = f.cluster_id or "unknown to this swarm's managers"
            plan.errors.append(f"{h}: already in another swarm (cluster {other[:12]}); dnet will not move it. "
                               f"Leave that swarm on {h} (docker swarm leave) or drop {h} from the inventory")
            continue
        node = known_nodes.get(f.node_id, {})
        _node(w, plan, h, role, node, leader)


def _node(w: World, plan: Plan, h: str, role: str, node: dict[str, Any], leader: str) -> None:
    spec = node.get("Spec") or {}
    if node and spec.get("Role") != role:
        plan.add(Change(leader, "node", "node", h, "promote" if role == "manager" else "demote",
                        f"{spec.get('Role')} -> {role}", {"target": h}))
    have = spec.get("Labels") or {}
    owned = [k for k in have.get(d.NODE_LABELS, "").split(",") if k]
    want = dict(w.inv.hosts[h].labels)
    add = {k: v for k, v in want.items() if have.get(k) != v}
    rm = [k for k in owned if k not in want and k in have]
    new_owned = ",".join(sorted(want))
    if add or rm or have.get(d.NODE_LABELS, "") != new_owned:
        detail = " ".join([f"+{k}={v}" for k, v in add.items()] + [f"-{k}" for k in rm]) or "record owned labels"
        plan.add(Change(leader, "node", "node", h, "label", detail, {"target": h, "add": add, "rm": rm,
                                                                     "owned": new_owned}))


def _attached(w: World, net_ids: set[str], net_name: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Containers (with aliases and addresses) and services attached to a network, across hosts."""
    ctrs, svcs = [], []
    for h, f in w.facts.items():
        for c in f.containers:
            nets = (c.get("NetworkSettings") or {}).get("Networks") or {}
            ep = nets.get(net_name)
            labels = _managed(c, ("Config", "Labels"))
            if ep is None or "com.docker.swarm.task.id" in labels:
                continue
            ipam = ep.get("IPAMConfig") or {}
            ctrs.append({"host": h, "name": c["Name"].lstrip("/"), "aliases": [a for a in ep.get("Aliases") or []
                                                                                 if a != c["Id"][:12]],
                         "ip": ipam.get("IPv4Address") or "", "managed": labels.get(MANAGED_LABEL) == "true"})
        for s in f.services:
            targets = {n.get("Target") for n in ((s.get("Spec") or {}).get("TaskTemplate") or {}).get("Networks") or []}
            if targets & (net_ids | {net_name}):
                svcs.append(s["Spec"]["Name"])
    return ctrs, sorted(set(svcs))


def _networks(w: World, plan: Plan) -> None:
    leader = w.leader()
    wanted: dict[str, set[str]] = {}
    for name, net in w.inv.networks.items():
        where = ([leader] if leader else []) if net.driver == "overlay" else bridge_hosts(w.inv, name)
        spans = swarm_hosts(w.inv) if net.driver == "overlay" else where
        _overlaps(w, plan, name, net.subnet, spans)
        want = d.spec_hash(d.network_spec(net))
        for h in where:
            wanted.setdefault(h, set()).add(name)
            if h not in w.facts:
                continue
            have = w.facts[h].network(name)
            data = {"spec": d.network_spec(net)}
            if have is None:
                plan.add(Change(h, "network", "network", name, "create", _describe(net), data))
            elif _managed(have).get(MANAGED_LABEL) != "true":
                plan.errors.append(f"{h}: network '{name}' exists but was not created by dnet; rename it in the "
                                   "inventory or remove it by hand")
            elif _managed(have).get(d.SPEC_LABEL) != want:
                ctrs, svcs = _attached(w, {have.get("Id", "")}, name)
                ours = [x for x in svcs if x in w.inv.services]  # removed here, created again from the inventory
                who = ", ".join([f"container {c['name']}@{c['host']}" for c in ctrs] + [f"service {s}" for s in svcs])
                plan.add(Change(h, "network", "network", name, "recreate",
                                f"{_describe(net)}; disconnects and reconnects: {who or 'nothing'}",
                                {**data, "containers": ctrs, "services": [x for x in svcs if x not in ours],
                                 "services_rm": ours}))
    for h, f in w.facts.items():
        for n in f.networks:
            labels = _managed(n)
            if labels.get(MANAGED_LABEL) != "true" or n.get("Name") in wanted.get(h, set()):
                continue
            if n.get("Scope") == "swarm" and h != leader:
                continue
            plan.add(Change(h, "prune", "network", n["Name"], "remove", "no longer in the inventory"))


def _describe(net: Any) -> str:
    flags = [f for f in ("attachable", "internal", "encrypted") if getattr(net, f)]
    return f"{net.driver} {net.subnet or 'auto'}" + (f" ({', '.join(flags)})" if flags else "")


def _overlaps(w: World, plan: Plan, name: str, subnet: str | None, hosts: list[str]) -> None:
    if not subnet:
        return
    mine = ipaddress.ip_network(subnet)
    for h in hosts:
        if h not in w.facts:
            continue
        f = w.facts[h]
        docker_nets = set()
        for n in f.networks:
            for cfg in (n.get("IPAM") or {}).get("Config") or []:
                sub = cfg.get("Subnet")
                if not sub or ":" in sub:
                    continue
                other = ipaddress.ip_network(sub, strict=False)
                docker_nets.add(other)
                if n.get("Name") != name and other.overlaps(mine):
                    plan.errors.append(f"{h}: network '{name}' ({subnet}) overlaps existing docker network "
                                       f"'{n.get('Name')}' ({sub}); pick another subnet")
        for line in f.routes:
            dest = line.split()[0]
            if dest == "default":
                continue
            try:
                net = ipaddress.ip_network(dest, strict=False)
            except ValueError:
                continue
            if net not in docker_nets and net.overlaps(mine):
                plan.errors.append(f"{h}: network '{name}' ({subnet}) overlaps the route '{line.strip()}'; "
                                   "pick another subnet")


def _image_ids(w: World, h: str, image: str) -> tuple[str | None, Change | None]:
    """The image ID the host will run, and the change that gets it there (if any)."""
    local = w.local_images.get(image)
    have = w.facts[h].images.get(image)
    if have and (local is None or have == local):
        return have, None
    if local:
        return local, Change(h, "image", "image", image, "stream", f"from this machine ({local[7:19]})",
                             {"image": image})
    return None, Change(h, "image", "image", image, "pull", "from its registry", {"image": image})


def _workloads(w: World, plan: Plan) -> None:
    leader = w.leader()
    need: dict[str, set[str]] = {}
    for c in w.inv.containers.values():
        need.setdefault(c.host, set()).add(c.image)
    for s in w.inv.services.values():
        for h in swarm_hosts(w.inv):
            need.setdefault(h, set()).add(s.image)
    ids: dict[tuple[str, str], str | None] = {}
    for h, images in need.items():
        if h not in w.facts:
            continue
        for image in sorted(images):
            ids[(h, image)], change = _image_ids(w, h, image)
            if change:
                plan.add(change)
    for h, f in w.facts.items():
        declared = {n for n, c in w.inv.containers.items() if c.host == h}
        for c in f.containers:
            labels = _managed(c, ("Config", "Labels"))
            cname = c["Name"].lstrip("/")
            if labels.get(MANAGED_LABEL) == "true" and labels.get(d.KIND_LABEL) == "container" and cname not in declared:
                plan.add(Change(h, "prune", "container", cname, "remove", "no longer in the inventory"))
    for name, c in w.inv.containers.items():
        if c.host not in w.facts:
            continue
        spec = d.container_spec(name, c, ids.get((c.host, c.image)))
        have = w.facts[c.host].container(name)
        data = {"spec": spec, "labels": d.labels("container", spec)}
        if have is None:
            plan.add(Change(c.host, "workload", "container", name, "create", _ctr_detail(c), data))
        elif _managed(have, ("Config", "Labels")).get(MANAGED_LABEL) != "true":
            plan.errors.append(f"{c.host}: a container named '{name}' exists but was not created by dnet; "
                               "rename it in the inventory or remove it by hand")
        elif _managed(have, ("Config", "Labels")).get(d.SPEC_LABEL) != d.spec_hash(spec):
            plan.add(Change(c.host, "workload", "container", name, "recreate", _ctr_detail(c), data))
        elif (drift := _net_drift(set(((have.get("NetworkSettings") or {}).get("Networks") or {})),
                                  set(c.networks) or {"bridge"})):
            plan.add(Change(c.host, "workload", "container", name, "recreate", drift, data))
        elif not (have.get("State") or {}).get("Running"):
            plan.add(Change(c.host, "workload", "container", name, "start", "stopped"))
    if not leader:
        return
    lf = w.facts[leader]
    for s in lf.services:
        labels = _managed(s, ("Spec", "Labels"))
        if labels.get(MANAGED_LABEL) == "true" and s["Spec"]["Name"] not in w.inv.services:
            plan.add(Change(leader, "prune", "service", s["Spec"]["Name"], "remove", "no longer in the inventory"))
    rebuilt = {x for c in plan.changes if c.kind == "network" for x in c.data.get("services_rm", [])}
    for name, s in w.inv.services.items():
        spec = d.service_spec(name, s, ids.get((leader, s.image)))
        have = lf.service(name)
        data = {"spec": spec, "labels": d.labels("service", spec)}
        detail = f"{s.image} x{s.replicas} on {', '.join(s.networks) or 'no network'}"
        if name in rebuilt:
            plan.add(Change(leader, "workload", "service", name, "recreate", f"{detail} (after its network)", data))
        elif have is None:
            plan.add(Change(leader, "workload", "service", name, "create", detail, data))
        elif _managed(have, ("Spec", "Labels")).get(MANAGED_LABEL) != "true":
            plan.errors.append(f"service '{name}' exists but was not created by dnet; rename it or remove it by hand")
        elif _managed(have, ("Spec", "Labels")).get(d.SPEC_LABEL) != d.spec_hash(spec):
            plan.add(Change(leader, "workload", "service", name, "recreate", detail, data))
        elif drift := _net_drift(_service_nets(lf, have), set(s.networks)):
            plan.add(Change(leader, "workload", "service", name, "recreate", drift, data))
        if (s.endpoint_mode == "vip" or any(p.mode == "ingress" for p in s.ports)) and \
                not any(w.facts[h].ipvs for h in swarm_hosts(w.inv) if h in w.facts):
            plan.warnings.append(f"service '{name}' needs IPVS (endpoint_mode vip or ingress publish) but no swarm host "
                                 "has ip_vs loaded: use endpoint_mode dnsrr with mode: host ports")


def _net_drift(have: set[str], want: set[str]) -> str:
    """Describe a difference between attached and declared networks ('' when none)."""
    if have == want:
        return ""
    return f"networks drifted: attached to {', '.join(sorted(have)) or 'none'}, declared {', '.join(sorted(want))}"


def _service_nets(lf: HostFacts, svc: dict[str, Any]) -> set[str]:
    names = {n.get("Id"): n.get("Name") for n in lf.networks}
    targets = [n.get("Target") for n in ((svc.get("Spec") or {}).get("TaskTemplate") or {}).get("Networks") or []]
    return {names.get(t) or t or "?" for t in targets}


def _ctr_detail(c: Any) -> str:
    return f"{c.image} on {', '.join(c.networks) or 'default bridge'}" + \
        (f", ports {', '.join(map(str, c.ports))}" if c.ports else "")


def _forwards(w: World, plan: Plan) -> None:
    for h in w.facts:
        rules = d.forward_rules(w.inv, w.specs, h)
        want = sorted(r["comment"] for r in rules)
        f = w.facts[h]
        have = sorted(_comment(ln) for ln in f.nat_rules if ln.startswith("-A DNET-FWD ") and _comment(ln))
        hooked = any("-j DNET-FWD" in ln and ln.startswith("-A PREROUTING") for ln in f.nat_rules)
        if want == have and (hooked or not want):
            continue
        detail = "; ".join(f"{r['listen']}/{r['protocol']} -> {r['to_ip']}:{r['to_port']}" for r in rules) or "remove all"
        plan.add(Change(h, "forward", "forward", f"{len(rules)} forwards", "rewrite" if want else "remove", detail,
                        {"rules": rules}))


def _comment(rule: str) -> str:
    import shlex

    try:
        parts = shlex.split(rule)
    except ValueError:
        return ""
    return parts[parts.index("--comment") + 1] if "--comment" in parts else ""
