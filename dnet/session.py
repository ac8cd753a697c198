"""One run's connections and facts: every host connected once, in parallel, facts read in one round trip each."""
from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dnet.errors import DnetError
from dnet.facts import HostFacts, gather
from dnet.images import PROBE_IMAGE, local_image
from dnet.inventory import Loaded
from dnet.inventory.resolve import HostSpec, hosts
from dnet.inventory.semantic import image_sources
from dnet.lock import Lock
from dnet.plan.world import leader
from dnet.runner import HostResult, parallel
from dnet.transport import Transport, connect, transport_kind
from dnet.transport.wire import persist_seconds

Log = Callable[[str], None]


@dataclass
class Session:
    """Open connections and gathered facts for one run; close() when done."""

    loaded: Loaded
    specs: dict[str, HostSpec]
    transports: dict[str, Transport] = field(default_factory=dict)
    facts: dict[str, HostFacts] = field(default_factory=dict)
    host_errors: dict[str, str] = field(default_factory=dict)
    local_images: dict[str, str | None] = field(default_factory=dict)
    local_arches: dict[str, str] = field(default_factory=dict)  # image -> its architecture in this machine's engine
    limit: list[str] | None = None  # --limit: the hosts this run may change (None: every host)
    overrides: dict[str, str] = field(default_factory=dict)  # --set values over the file: path -> "old -> new"

    def leader(self) -> str | None:
        """The manager that runs cluster-wide commands (see dnet.plan.world.leader)."""
        return leader(self.loaded.model, self.facts)

    def close(self) -> None:
        for t in self.transports.values():
            t.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def images_of(loaded: Loaded) -> list[str]:
    """Every image the inventory's workloads use."""
    inv = loaded.model
    return sorted({c.image for c in inv.containers.values()} | {x.image for x in inv.services.values()})


def open_session(loaded: Loaded, accept_new_host_keys: bool, log: Log,
                 wrap: Callable[[Transport], Transport] | None = None, limit: list[str] | None = None,
                 read_facts: bool = True, lock: Lock | None = None) -> Session:
    """Connect to every host (one connection each, in parallel) and read their facts (unless not read_facts:
    a runbook reads them only when a step needs them).

    `wrap` decorates each transport (for example to log every command with -v). With `limit`, only those hosts,
    plus the first reachable manager when limited swarm hosts need one and none is in the limit. With `lock`,
    each host's lock is taken in the same round trip as its facts (hosts_locked then only reads the answers).
    """
    persist_seconds()  # a bad DNET_PERSIST or DNET_TRANSPORT is one clear error, not one per host
    transport_kind()
    s = Session(loaded, hosts(loaded.model), limit=limit)
    targets = [sp for sp in s.specs.values() if limit is None or sp.name in limit]
    images = images_of(loaded)
    start = time.monotonic()

    def work(spec: HostSpec) -> tuple[Transport, HostFacts | None]:
        t = connect(spec, accept_new_host_keys)
        t = t if wrap is None else wrap(t)
        return t, _read(t, images, read_facts, lock)

    count = [0]
    step = max(1, len(targets) // 10) if len(targets) > 20 else 1  # many hosts: a count every tenth, not a line each

    def done(r: HostResult[tuple[Transport, HostFacts | None]]) -> None:
        count[0] += 1
        if not r.ok:
            log(f"{r.host}: unreachable: {r.error}")
        elif step == 1:
            log(f"{r.host}: facts read" if read_facts else f"{r.host}: connected")
        elif count[0] % step == 0:
            log(f"facts read: {count[0]}/{len(targets)} hosts")

    for r in parallel(targets, work, name=lambda sp: sp.name, on_done=done):
        if r.ok and r.value:
            s.transports[r.host] = r.value[0]
            if r.value[1] is not None:
                s.facts[r.host] = r.value[1]
        else:
            s.host_errors[r.host] = r.error or "unknown error"
    if limit is not None:
        _reach_a_manager(s, accept_new_host_keys, log, wrap, images, lock)
    sources = image_sources(loaded.model)
    for i in images:  # only what may be streamed: never dnet's probe (made on each host), never pull-only images
        got = local_image(i) if i != PROBE_IMAGE and sources.get(i, "auto") != "pull" else None
        s.local_images[i] = got[0] if got else None
        if got:
            s.local_arches[i] = got[1]
    log(f"{len(s.transports)}/{len(targets)} hosts {'read' if read_facts else 'connected'} in "
        f"{time.monotonic() - start:.1f}s")
    return s


def _read(t: Transport, images: list[str], read_facts: bool, lock: Lock | None) -> HostFacts | None:
    """A host's facts (or None) and its answer to the lock, in one round trip; nothing held when it fails."""
    try:
        if not read_facts:
            if lock:
                lock.take(t)
            return None
        f = gather(t, images, lock.take_script() if lock else "")
        if lock:
            lock.read(t.name, f.first)
        return f
    except BaseException:
        if lock:  # the lock may have been taken before the facts failed
            with contextlib.suppress(Exception):  # the connection may be what failed
                t.run(lock.release_script(), check=False)
            lock.answers.pop(t.name, None)
        t.close()
        raise


def _reach_a_manager(s: Session, accept: bool, log: Log, wrap: Callable[[Transport], Transport] | None,
                     images: list[str], lock: Lock | None) -> None:
    """With --limit on swarm hosts and no manager in it: connect to managers in order until one answers."""
    inv = s.loaded.model
    limited = s.limit or []
    if not any(inv.hosts[h].roles for h in limited) or any("manager" in inv.hosts[h].roles for h in limited):
        return
    for h in [n for n, host in inv.hosts.items() if "manager" in host.roles]:
        try:
            t = connect(s.specs[h], accept)
            t = wrap(t) if wrap else t
            f = _read(t, images, True, lock)
            assert f is not None  # read_facts=True
            s.facts[h] = f
        except DnetError as exc:
            log(f"{h}: manager unreachable: {exc}")
            continue
        s.transports[h] = t
        log(f"{h}: manager for swarm-wide work (outside --limit, read and used for swarm commands only)")
        return
