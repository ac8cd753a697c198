"""The spec an object dnet did not make runs with, in the shape of dnet's desired specs (so plan can compare it
with the inventory, and update in place from it). Read with the import readers, then resolved as declared ones."""
from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, TypeVar

from pydantic import ValidationError

from dnet.brownfield import read
from dnet.errors import DnetError
from dnet.facts import ContainerFact, NetworkFact, ServiceFact
from dnet.inventory.schema import Container, Network, Service
from dnet.inventory.workload import POLICY_DEFAULTS
from dnet.plan import desired as d
from dnet.plan.runspec import EnvVar

W = TypeVar("W", d.ContainerSpec, d.ServiceSpec)


class Unreadable(DnetError):
    """What runs has a setting the inventory model cannot hold."""


def _model(kind: type[Any], data: dict[str, Any] | None, who: str) -> Any:
    if data is None:
        raise Unreadable(f"{who} cannot be read into the inventory model")
    try:
        return kind.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise Unreadable(f"{who}: {where}: {first['msg']}") from None


def network(have: NetworkFact) -> d.NetworkSpec:
    notes: list[str] = []
    return d.network_spec(_model(Network, read.network(have.raw, f"network {have.name}", notes),
                                 f"network {have.name}"))


def _as_declared(actual: W, want: W) -> W:
    """What Docker keeps as a set or a map (ports, networks, aliases, mounts, constraints) in the declared order
    when it holds the same items; env values equal to the declared ones shown as declared (a ${VAR} as a digest)."""
    declared = {e.key: e for e in want.env}
    env: tuple[EnvVar, ...] = tuple(declared[e.key] if e.key in declared and declared[e.key].value == e.value else e
                                    for e in actual.env)
    order: dict[str, Any] = {}
    for f in ("update", "rollback"):  # a policy that spells out Docker's defaults is the same policy
        if not hasattr(actual, f):
            continue
        have, wanted = getattr(actual, f), getattr(want, f)
        if {**POLICY_DEFAULTS, **(have or {})} == {**POLICY_DEFAULTS, **(wanted or {})}:
            order[f] = wanted
    for f in ("ports", "networks", "aliases", "mounts", "constraints", "preferences"):
        have, wanted = getattr(actual, f, None), getattr(want, f, None)
        if have is not None and wanted is not None and sorted(map(str, have)) == sorted(map(str, wanted)):
            order[f] = wanted
    return replace(actual, env=env, **order)


def container(have: ContainerFact, host: str, want: d.ContainerSpec, at: d.Where) -> d.ContainerSpec:
    who = f"container {have.name}"
    c = _model(Container, read.container(have.raw, host, []), who)
    image_id = want.image_id if c.image == want.image else None
    return _as_declared(d.container_spec(have.name, c, image_id, at), want)


def service(have: ServiceFact, net_names: dict[str, str], want: d.ServiceSpec, at: d.Where) -> d.ServiceSpec:
    who = f"service {have.name}"
    s = _model(Service, read.service(have.raw, net_names, []), who)
    image_id = want.image_id if s.image == want.image else None
    return _as_declared(d.service_spec(have.name, s, image_id, at), want)


def shown(spec: d.Spec) -> dict[str, Any]:
    """A spec as its dnet.shown label would hold it (JSON types)."""
    got: dict[str, Any] = json.loads(json.dumps(spec.as_dict()))
    return got
