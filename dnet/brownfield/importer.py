"""`dnet import`: write the inventory of a cluster that runs, from every host's facts.

HOSTS.yml (hosts, and defaults for SSH) is edited in place (ruamel.yaml round trip), so its comments and key
order survive; what the model cannot express is listed at the end as comments, never dropped silently.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import SingleQuotedScalarString

from dnet.brownfield import compose, read
from dnet.errors import DnetError
from dnet.facts import HostFacts, genuine_tasks
from dnet.inventory.resolve import HostSpec, address_of
from dnet.plan.desired import NODE_LABELS
from dnet.yamlrt import flow, roundtrip

MODELLED_DAEMON = {"mtu": "mtu", "dns": "dns", "default-address-pools": "default_address_pools"}
REFUSED_DAEMON = ("hosts", "data-root")
FWD = re.compile(r'dnet:fwd:(\d+)/(tcp|udp)->([0-9.]+):(\d+)(?:@([^\s"]+))?')  # no @: a dnet before clusters


@dataclass
class Imported:
    """What import found: the inventory sections, and what it could not express."""

    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    swarm: dict[str, Any] = field(default_factory=dict)
    networks: dict[str, dict[str, Any]] = field(default_factory=dict)
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    containers: dict[str, dict[str, Any]] = field(default_factory=dict)
    forwards: list[dict[str, Any]] = field(default_factory=list)
    stacks: dict[str, dict[str, Any]] = field(default_factory=dict)  # stack -> its compose document
    notes: list[str] = field(default_factory=list)


def leader_of(facts: dict[str, HostFacts]) -> str | None:
    return next((h for h, f in facts.items() if f.swarm_state == "active" and f.is_manager), None)


def _mine(labels: dict[str, str], cluster: str) -> str:
    """'import' (made by hand), 'own' (dnet's, for this cluster) or 'skip' (a lab's, a probe's, another cluster's)."""
    if read.foreign(labels):
        return "import"
    return "own" if labels.get("dnet.cluster", "") in ("", cluster) and labels.get("dnet.kind") else "skip"


def _hosts(out: Imported, facts: dict[str, HostFacts], leader: str | None) -> None:
    nodes = {n.id: n for n in facts[leader].nodes} if leader else {}
    for h, f in facts.items():
        entry: dict[str, Any] = {}
        node = nodes.get(f.node_id) if f.swarm_state == "active" else None
        if node:
            entry["roles"] = ["manager" if node.role == "manager" else "worker"]
            labels = {k: v for k, v in node.labels.items() if k != NODE_LABELS}
            if labels:
                entry["labels"] = labels
            if node.availability != "active":
                entry["availability"] = node.availability
        docker: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for k, v in f.daemon.items():
            if k in REFUSED_DAEMON:
                out.notes.append(f"host {h}: daemon.json {k}: dnet does not manage it; it stays as it is")
            elif k in MODELLED_DAEMON:
                docker[MODELLED_DAEMON[k]] = v
            else:
                extra[k] = v
        if extra:
            docker["daemon"] = extra
        if docker:
            entry["docker"] = docker
        out.hosts[h] = entry


def _swarm(out: Imported, f: HostFacts) -> None:
    c = f.swarm.cluster_spec
    if f.swarm.autolock:
        out.swarm["autolock"] = True
        out.notes.append("swarm: autolock is on: set swarm.unlock_key_file (or DNET_UNLOCK_KEY) so that dnet can "
                         "unlock managers it restarts")
    pools = c.get("DefaultAddrPool") or []
    if pools and pools != ["10.0.0.0/8"]:
        out.swarm["default_addr_pool"] = list(pools)
    if c.get("SubnetSize") and c["SubnetSize"] != 24:
        out.swarm["subnet_size"] = c["SubnetSize"]
    if c.get("DataPathPort") and c["DataPathPort"] != 4789:
        out.swarm["data_path_port"] = c["DataPathPort"]


def _networks(out: Imported, facts: dict[str, HostFacts], leader: str | None, cluster: str) -> None:
    seen: dict[str, tuple[str, dict[str, Any]]] = {}  # bridge name -> (first host, entry)
    for h, f in facts.items():
        for n in f.networks:
            if read.is_engine_made(n.raw) or (n.scope == "swarm" and h != leader):
                continue
            mine = _mine(n.labels, cluster)
            if mine == "skip":
                continue
            entry = read.network(n.raw, f"network {n.name}", out.notes)
            if entry is None:
                continue
            if mine == "import":
                entry["adopt"] = True
            if n.scope == "swarm":
                out.networks[n.name] = entry
                continue
            if n.name in out.networks and n.name not in seen:
                out.notes.append(f"network {n.name} on {h}: not imported: an overlay has that name")
            elif n.name in seen:
                first, kept = seen[n.name]
                if {k: v for k, v in kept.items() if k != "hosts"} == entry:
                    kept["hosts"].append(h)
                else:
                    out.notes.append(f"network {n.name} on {h}: not imported: its settings differ from those on "
                                     f"{first} (the inventory has one subnet per network); make it there by hand "
                                     "or give it another name")
            else:
                entry["hosts"] = [h]
                seen[n.name] = (h, entry)
                out.networks[n.name] = entry


def _services(out: Imported, f: HostFacts, cluster: str) -> None:
    names = {n.id: n.name for n in f.networks}
    for s in f.services:
        mine = _mine(s.labels, cluster)
        if mine == "skip":
            continue
        entry = read.service(s.raw, names, out.notes)
        if entry is not None:
            if mine == "import":
                entry["adopt"] = True
            out.services[s.name] = entry


def _containers(out: Imported, facts: dict[str, HostFacts], cluster: str) -> None:
    task = genuine_tasks(facts)
    for h, f in facts.items():
        for c in f.containers:
            mine = _mine(c.labels, cluster)
            if task(c) or mine == "skip":
                continue
            if not c.running:
                out.notes.append(f"container {c.name} on {h}: not imported: it is not running ({c.status})")
                continue
            if c.name in out.containers:
                out.notes.append(f"container {c.name} on {h}: not imported: a container on "
                                 f"{out.containers[c.name]['host']} has that name (names are unique in an inventory)")
                continue
            entry = read.container(c.raw, h, out.notes)
            if mine == "import":
                entry["adopt"] = True
            out.containers[c.name] = entry


def _forwards(out: Imported, facts: dict[str, HostFacts], specs: dict[str, HostSpec], cluster: str) -> None:
    by_addr = {address_of(s): h for h, s in specs.items()}
    for h, f in facts.items():
        for rule in f.nat_rules:
            m = FWD.search(rule)
            if m and rule.startswith("-A DNET-FWD ") and (m[5] or cluster) == cluster:
                to = by_addr.get(m[3], m[3])
                fwd = {"host": h, "listen": int(m[1]), "to": f"{to}:{m[4]}"}
                if m[2] != "tcp":
                    fwd["protocol"] = m[2]
                if fwd not in out.forwards:
                    out.forwards.append(fwd)


def _stacks(out: Imported, f: HostFacts) -> None:
    """Services and networks `docker stack deploy` made, as one compose document per stack (taken out of
    services and networks)."""
    names = {s.name: (s.labels.get(compose.NAMESPACE) or "") for s in f.services}
    nets = {n.name: (n.labels.get(compose.NAMESPACE) or "") for n in f.networks}
    for stack in sorted({ns for ns in names.values() if ns}):
        svcs = {n: out.services.pop(n) for n, ns in names.items() if ns == stack and n in out.services}
        own = {n: out.networks.pop(n) for n, ns in nets.items() if ns == stack and n in out.networks}
        if svcs:
            out.stacks[stack] = compose.to_compose(stack, svcs, own)


def gather(facts: dict[str, HostFacts], specs: dict[str, HostSpec], cluster: str, stacks: bool = False
           ) -> Imported:
    """Everything the hosts run, as inventory sections (pure: tested from recorded facts). With `stacks`, the
    services and networks of each stack become a compose document of their own."""
    out = Imported()
    leader = leader_of(facts)
    _hosts(out, facts, leader)
    if leader:
        _swarm(out, facts[leader])
        _services(out, facts[leader], cluster)
    _networks(out, facts, leader, cluster)
    _containers(out, facts, cluster)
    _forwards(out, facts, specs, cluster)
    if stacks and leader:
        _stacks(out, facts[leader])
    return out


def _reads_back(text: str) -> bool:
    """Whether dnet's YAML reader (YAML 1.1: yes, on, null are not strings) reads the plain text as itself."""
    try:
        return bool(yaml.safe_load(text) == text)
    except yaml.YAMLError:
        return False


def _styled(value: Any) -> Any:
    """Block mappings; lists of plain values in flow style ([a, b]), as people write inventories; a string that
    dnet's YAML reader would read as something else (yes, null, 1.5) quoted."""
    if isinstance(value, str) and not _reads_back(value):
        return SingleQuotedScalarString(value)
    if isinstance(value, dict):
        m = CommentedMap()
        for k, v in value.items():
            m[k] = _styled(v)
        return m
    if isinstance(value, list):
        items = [_styled(v) for v in value]
        return flow(items) if all(not isinstance(v, (dict, list)) for v in value) else CommentedSeq(items)
    return value


def compose_file(stack: str) -> str:
    """Where import writes a stack's compose file (beside the inventory)."""
    return f"{stack}.compose.yml"


def compose_text(doc: dict[str, Any]) -> str:
    y = roundtrip(110)
    buf = io.StringIO()
    y.dump(_styled(doc), buf)
    return "# written by dnet import from what runs; docker stack deploy reads it\n" + buf.getvalue()


def write(hosts_text: str, got: Imported, cluster: str | None, stack_files: dict[str, str] | None = None) -> str:
    """HOSTS.yml with the imported sections added (its comments and key order kept); a stack's compose file is
    `stack_files[name]` when given (the operator's own), else the one import writes."""
    y = roundtrip(110)
    data = y.load(hosts_text)
    if not isinstance(data, CommentedMap) or "hosts" not in data:
        raise DnetError("the hosts file must be a mapping with 'hosts'")
    extra = [k for k in data if k not in ("version", "cluster", "defaults", "hosts", "groups")]
    if extra:
        raise DnetError(f"the hosts file holds {', '.join(map(str, extra))}: import writes those itself; give it a "
                        "file with only hosts (and defaults, cluster, groups)")
    if "version" not in data:
        data.insert(0, "version", 1)
    if cluster:
        if "cluster" in data:
            data["cluster"] = cluster
        else:
            data.insert(1, "cluster", cluster)
    for h, entry in got.hosts.items():
        host = data["hosts"].get(h)
        if host is None:
            data["hosts"][h] = host = CommentedMap()
        elif host.fa.flow_style():  # a one-line host grows: written as a block
            host.fa.set_block_style()
        for k, v in entry.items():
            host[k] = _styled(v)
    for key in ("swarm", "networks", "services", "containers", "forwards"):
        value = getattr(got, key)
        if value:
            data[key] = _styled(value)
    if got.stacks:
        data["stacks"] = _styled({name: {"file": (stack_files or {}).get(name) or compose_file(name), "adopt": True}
                                  for name in got.stacks})
    buf = io.StringIO()
    y.dump(data, buf)
    text = buf.getvalue()
    if got.notes:
        text += "\n# not imported (the model has no key for these; dnet leaves them as they are):\n"
        text += "".join(f"#   {n}\n" for n in got.notes)
    return text
