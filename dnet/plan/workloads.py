"""Workload part of the diff: images, containers and services (create, recreate, start, prune)."""
from __future__ import annotations

import json
from dataclasses import MISSING, fields
from typing import Any

from dnet.brownfield import actual
from dnet.facts import ContainerFact, HostFacts, ServiceFact
from dnet.images import PROBE_IMAGE
from dnet.inventory.semantic import image_sources, swarm_hosts
from dnet.plan import desired as d
from dnet.plan.model import (
    Change,
    ContainerRemove,
    ContainerRun,
    ContainerStart,
    FileCreate,
    FileRemove,
    ImagePull,
    ImageStream,
    NetworkRecreate,
    Plan,
    ServiceRemove,
    ServiceRun,
    ServiceUpdate,
)
from dnet.plan.networks import TAKE_OVER
from dnet.plan.runspec import SpecError
from dnet.plan.world import World


def _image_ids(w: World, h: str, image: str, source: str) -> tuple[str | None, Change | None]:
    """The image ID the host will run, and the change that gets it there (if any). Raises SpecError when
    image_source: stream cannot be met."""
    have = w.facts[h].images.get(image)
    if image == PROBE_IMAGE or source == "pull":  # the probe is assembled on the host, never streamed or pulled
        return have, None if have else ImagePull(host=h, image=image)
    local = w.local_images.get(image)
    arch, host_arch = w.local_arches.get(image, ""), w.facts[h].arch
    if local and arch and host_arch and arch != host_arch:
        if source == "stream":
            raise SpecError(f"{h}: image_source stream: this machine's {image} is built for {arch} and {h} runs "
                            f"{host_arch}; build it for {host_arch} (docker build --platform linux/{host_arch}) or "
                            "let the host pull it (image_source: pull)")
        local = None  # auto: the host's registry has the right architecture
    if source == "stream" and not local:
        raise SpecError(f"{h}: image_source stream: this machine's engine has no {image}; build or pull it here "
                        "first, or let the host pull it (image_source: pull)")
    if have and (local is None or have == local):
        return have, None
    if local:
        return local, ImageStream(host=h, image=image, image_id=local, current=have)
    return None, ImagePull(host=h, image=image)


def _ctr_before(c: ContainerFact) -> dict[str, Any]:
    return {"image": c.image, "running": c.running, "networks": sorted(c.endpoints), "spec": c.spec_hash}


def _svc_before(s: ServiceFact, nets: set[str]) -> dict[str, Any]:
    return {"image": s.image, "replicas": s.replicas, "networks": sorted(nets), "spec": s.spec_hash}


def diff(w: World, plan: Plan) -> None:
    leader = w.leader()
    need: dict[str, set[str]] = {}
    for c in w.inv.containers.values():
        need.setdefault(c.host, set()).add(c.image)
    for s in w.inv.services.values():
        for h in swarm_hosts(w.inv):
            need.setdefault(h, set()).add(s.image)
    ids: dict[tuple[str, str], str | None] = {}
    sources = image_sources(w.inv)
    for h, images in need.items():
        if h not in w.facts:
            continue
        for image in sorted(images):
            try:
                ids[(h, image)], change = _image_ids(w, h, image, sources.get(image, "auto"))
            except SpecError as exc:
                plan.errors.append(str(exc))
                ids[(h, image)], change = w.facts[h].images.get(image), None
            if change:
                plan.add(change)
    for h, f in w.facts.items():
        declared = {n for n, c in w.inv.containers.items() if c.host == h}
        for have in f.containers:
            if w.ours(have) and w.kind(have) == "container" and have.name not in declared:
                plan.add(ContainerRemove(host=h, container=have.name))
    _containers(w, plan, ids)
    if leader and leader in w.facts:
        _services(w, plan, leader, ids)


def _where(w: World) -> d.Where:
    return d.Where(w.base, w.inv.cluster)


def _containers(w: World, plan: Plan, ids: dict[tuple[str, str], str | None]) -> None:
    for name, c in w.inv.containers.items():
        if c.host not in w.facts:
            continue
        try:
            spec = d.container_spec(name, c, ids.get((c.host, c.image)), _where(w))
        except SpecError as exc:
            plan.errors.append(str(exc))
            continue
        have = w.facts[c.host].container(name)
        if have is None:
            plan.add(ContainerRun(host=c.host, spec=spec))
            continue
        adopting = not w.ours(have)
        if adopting and not c.adopt:
            plan.errors.append(f"{c.host}: a container named '{name}' exists but was made by {w.whose(have)}; "
                               f"{TAKE_OVER}")
            continue
        try:
            old = d.shown(have.labels) if have.spec_hash else \
                actual.shown(actual.container(have, c.host, spec, _where(w)))
        except actual.Unreadable as exc:
            plan.errors.append(f"{c.host}: cannot {'adopt' if adopting else 'compare'} {exc}")
            continue
        differs = have.spec_hash != spec.hash if have.spec_hash else old != actual.shown(spec)
        if adopting and differs:
            diff = ", ".join(changed(old, spec))
            plan.errors.append(f"{c.host}: container '{name}' differs from its entry ({diff}); adopting it would "
                               "mean recreating it: make the entry say what runs (dnet import writes it), adopt, "
                               "then change it")
        elif adopting:
            w.adopt(c.host, have, "container", name)
            if not have.running:
                plan.add(ContainerStart(host=c.host, container=name, on=tuple(c.networks)))
        elif differs:
            why = f"changed: {', '.join(changed(old, spec))}" if old is not None else ""
            plan.add(ContainerRun(host=c.host, spec=spec, recreate=True, why=why, current=_ctr_before(have)))
        elif drift := _net_drift(set(have.endpoints), set(c.networks) or {"bridge"}):
            plan.add(ContainerRun(host=c.host, spec=spec, recreate=True, why=drift, current=_ctr_before(have)))
        elif not have.running:
            plan.add(ContainerStart(host=c.host, container=name, on=tuple(c.networks)))


def _services(w: World, plan: Plan, leader: str, ids: dict[tuple[str, str], str | None]) -> None:
    lf = w.facts[leader]
    for svc in lf.services:
        if w.ours(svc) and w.kind(svc) == "service" and svc.name not in w.inv.services:
            plan.add(ServiceRemove(host=leader, service=svc.name))
    rebuilt = {x for c in plan.changes if isinstance(c, NetworkRecreate) for x in c.services_rm}
    specs: list[d.ServiceSpec] = []
    for name, s in w.inv.services.items():
        try:
            pinned = ids.get((leader, s.image))
            if s.image == PROBE_IMAGE and len({ids.get((h, s.image)) for h in swarm_hosts(w.inv) if h in w.facts}) > 1:
                pinned = None  # assembled on each host, so its ID differs per node: named by tag, never resolved
            spec = d.service_spec(name, s, pinned, _where(w))
        except SpecError as exc:
            plan.errors.append(str(exc))
            continue
        specs.append(spec)
        have = lf.service(name)
        if name in rebuilt:
            plan.add(ServiceRun(host=leader, spec=spec, recreate=True, why="after its network"))
        elif have is None:
            plan.add(ServiceRun(host=leader, spec=spec))
        elif not w.ours(have) and not s.adopt:
            plan.errors.append(f"service '{name}' exists but was made by {w.whose(have)}; {TAKE_OVER}")
        elif not have.spec_hash:  # adopted, or being adopted: compared with what it runs
            try:
                got = actual.service(have, {n.id: n.name for n in lf.networks}, spec, _where(w))
            except actual.Unreadable as exc:
                plan.errors.append(f"cannot adopt {exc}")
                continue
            if not w.ours(have):
                w.adopt(leader, have, "service", name)
            if got.hash != spec.hash:
                _update(plan, leader, spec, actual.shown(got), _svc_before(have, _service_nets(lf, have)))
        elif have.spec_hash != spec.hash:
            _changed_service(plan, leader, spec, have, _svc_before(have, _service_nets(lf, have)))
        elif drift := _net_drift(_service_nets(lf, have), set(s.networks)):
            plan.add(ServiceRun(host=leader, spec=spec, recreate=True, why=drift,
                                  current=_svc_before(have, _service_nets(lf, have))))
        if (s.endpoint_mode == "vip" or any(p.mode == "ingress" for p in s.ports)) and \
                not any(w.facts[h].ipvs for h in swarm_hosts(w.inv) if h in w.facts):
            plan.warnings.append(f"service '{name}' needs IPVS (endpoint_mode vip or ingress publish) but no swarm "
                                 "host has ip_vs loaded: use endpoint_mode dnsrr with mode: host ports")
    _files(w, plan, leader, specs)


def _changed_service(plan: Plan, leader: str, spec: d.ServiceSpec, have: ServiceFact,
                     current: dict[str, Any]) -> None:
    """An in-place rolling update where Docker can make one, else a recreate that says why."""
    old = d.shown(have.labels)
    if old is None:
        plan.add(ServiceRun(host=leader, spec=spec, recreate=True, current=current,
                            why="made by a dnet without in-place updates: recreated once"))
        return
    _update(plan, leader, spec, old, current)


def _update(plan: Plan, leader: str, spec: d.ServiceSpec, old: dict[str, Any], current: dict[str, Any]) -> None:
    fields_ = changed(old, spec)
    new = spec.as_dict()
    why = ""
    if "mode" in fields_:
        why = f"mode {old.get('mode', 'replicated')} -> {spec.mode}: Docker cannot change a service's mode in place"
    elif "healthcheck" in fields_ and spec.healthcheck is None:
        why = "health check removed: Docker cannot give back the image's own check in place"
    if why:
        plan.add(ServiceRun(host=leader, spec=spec, recreate=True, current=current, why=why))
    elif fields_:
        plan.add(ServiceUpdate(host=leader, spec=spec, old=old, fields=tuple(fields_)))
    elif new != old:  # the same fields, a different hash: labels only
        plan.add(ServiceUpdate(host=leader, spec=spec, old=old, fields=("labels",)))


def changed(old: dict[str, Any] | None, spec: d.Workload) -> list[str]:
    """The fields of a workload's spec that differ from what it was made with (in field order)."""
    new = json.loads(json.dumps(spec.as_dict()))
    old = old or {}
    out = []
    for f in fields(spec):
        default = f.default_factory() if callable(f.default_factory) else f.default
        default = None if default is MISSING else json.loads(json.dumps(default))
        if f.name in ("env", "secrets", "configs") and default == []:  # shown as mappings
            default = {}
        if old.get(f.name, default) != new.get(f.name, default):
            out.append(f.name)
    return out


def _files(w: World, plan: Plan, leader: str, specs: list[d.ServiceSpec]) -> None:
    """Secrets and configs: make the ones the services need, remove the ones of ours that none uses."""
    lf = w.facts[leader]
    for what, have_list in (("secret", lf.secrets), ("config", lf.configs)):
        have = {o.name: o for o in have_list}
        want = {f.object: f for s in specs for f in (s.secrets if what == "secret" else s.configs)}
        for obj, f in sorted(want.items()):
            if obj in have and not w.ours(have[obj]):
                plan.errors.append(f"{what} '{obj}' exists but was made by {w.whose(have[obj])}; remove it by hand")
            elif obj not in have:
                plan.add(FileCreate(host=leader, file=f, what=what))  # type: ignore[arg-type]
        for obj, o in sorted(have.items()):
            if obj not in want and w.ours(o) and o.kind == what:
                plan.add(FileRemove(host=leader, object=obj, what=what))  # type: ignore[arg-type]


def _net_drift(have: set[str], want: set[str]) -> str:
    """Describe a difference between attached and declared networks ('' when none)."""
    if have == want:
        return ""
    return f"networks drifted: attached to {', '.join(sorted(have)) or 'none'}, declared {', '.join(sorted(want))}"


def _service_nets(lf: HostFacts, svc: ServiceFact) -> set[str]:
    names = {n.id: n.name for n in lf.networks}
    return {names.get(t) or t or "?" for t in svc.network_targets}
