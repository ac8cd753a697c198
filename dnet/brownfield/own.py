"""Ownership of objects dnet did not make, kept by the cluster itself.

Docker cannot relabel a network or a container after it is made, so dnet records what it adopted in labels of
an object of its own: `dnet.own.<ID>=<kind>/<name>` on a swarm config (services and overlay networks, readable
from any manager) or on a volume (a host's containers and bridge networks). Any operator machine reads the same
records with the facts; there is no local state file. A record is never edited: a new one replaces it.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from dnet import CLUSTER_LABEL, MANAGED_LABEL
from dnet.facts import HostFacts
from dnet.facts.model import KIND_LABEL, ObjectFact

KIND = "ownership"
PREFIX = "dnet.own."


@dataclass(frozen=True)
class Record:
    host: str
    store: str  # "config" or "volume"
    name: str
    owned: dict[str, tuple[str, str]]  # ID -> (kind, name)


def _owned(o: ObjectFact) -> dict[str, tuple[str, str]]:
    out = {}
    for k, v in o.labels.items():
        if k.startswith(PREFIX):
            kind, _, name = v.partition("/")
            out[k[len(PREFIX):]] = (kind, name)
    return out


def records(facts: Mapping[str, HostFacts], cluster: str) -> list[Record]:
    """Every ownership record of this cluster on the hosts read (configs are the same on every manager)."""
    out: dict[tuple[str, str], Record] = {}
    for h, f in sorted(facts.items()):
        for store, objs in (("config", f.configs), ("volume", f.volumes)):
            for o in objs:
                if o.labels.get(KIND_LABEL) == KIND and o.labels.get(CLUSTER_LABEL) == cluster and o.managed:
                    key = (store, o.name) if store == "config" else (h, o.name)
                    out.setdefault(key, Record(h, store, o.name, _owned(o)))
    return list(out.values())


def adopted(facts: Mapping[str, HostFacts], cluster: str) -> dict[str, str]:
    """ID -> kind of everything this cluster adopted."""
    return {i: kind for r in records(facts, cluster) for i, (kind, _) in r.owned.items()}


def record_name(cluster: str, owned: Mapping[str, tuple[str, str]]) -> str:
    digest = hashlib.sha256("\n".join(sorted(owned)).encode()).hexdigest()[:12]
    return f"dnet-owned-{cluster}-{digest}"


def labels(cluster: str, owned: Mapping[str, tuple[str, str]]) -> dict[str, str]:
    out = {MANAGED_LABEL: "true", CLUSTER_LABEL: cluster, KIND_LABEL: KIND}
    out.update({f"{PREFIX}{i}": f"{kind}/{name}" for i, (kind, name) in sorted(owned.items())})
    return out

