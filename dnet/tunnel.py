"""SSH local forwards: reach a host's port, or a container's or task's port through the host it runs on.

A host port is an SSH direct-tcpip channel. A container's port is reached inside the container's own network
namespace (busybox nc in a probe container sharing it), so it works whether or not the port is published and
whatever networks the container is on.
"""
from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from dnet.errors import DnetError
from dnet.facts import HostFacts, genuine_tasks
from dnet.inventory.schema import TARGET_RE, Inventory


@dataclass(frozen=True)
class Target:
    """Where a tunnel ends: the host to go through and the address and port seen from that host."""

    host: str
    address: str  # for a host target; "" when the tunnel enters a container's namespace
    port: int
    what: str
    container: str = ""  # container ID: the tunnel ends inside its network namespace, on 127.0.0.1:port


def resolve(inv: Inventory, facts: dict[str, HostFacts], text: str) -> Target:
    """HOST:PORT, CONTAINER:PORT or SERVICE:PORT (one running task) to a tunnel target."""
    m = TARGET_RE.match(text)
    if not m or not 1 <= int(m["port"]) <= 65535:
        raise DnetError(f"'{text}' is not NAME:PORT (a host, container or service of the inventory, and a port)")
    name, port = m["name"], int(m["port"])
    if name in inv.hosts:
        return Target(name, "127.0.0.1", port, f"host {name} port {port}")
    if name in inv.containers:
        host = inv.containers[name].host
        c = facts[host].container(name) if host in facts else None
        if c is None or not c.running:
            raise DnetError(f"container {name} is not running on {host}")
        return Target(host, "", port, f"container {name} port {port} (on {host})", c.id)
    if name in inv.services:
        genuine = genuine_tasks(facts)
        for host, f in sorted(facts.items()):
            for c in f.containers:
                if c.service == name and c.running and genuine(c):
                    return Target(host, "", port, f"task {c.task_name} port {port} (on {host})", c.id)
        raise DnetError(f"service {name} has no running task on the reachable hosts")
    raise DnetError(f"'{name}' is no host, container or service of this inventory")


class Stream(Protocol):
    """A socket, or a paramiko channel: what a tunnel pipes bytes through."""

    def recv(self, size: int) -> bytes: ...

    def sendall(self, data: bytes) -> None: ...

    def close(self) -> None: ...

    def fileno(self) -> int: ...


Opener = Callable[[tuple[str, int], tuple[str, int]], Stream]


MAX_CONNECTIONS = 16  # connections one tunnel carries at once (each into a container costs a docker run there)


def serve(listener: socket.socket, open_channel: Opener, dest: tuple[str, int], stop: threading.Event,
          log: Callable[[str], None] = lambda m: None, limit: int = MAX_CONNECTIONS) -> None:
    """Accept local connections until stopped; pipe each through a new channel to dest. A connection beyond
    `limit` open ones is refused, and one whose channel cannot be opened is closed: the tunnel goes on."""
    listener.settimeout(0.5)
    slots = threading.BoundedSemaphore(limit)
    while not stop.is_set():
        try:
            client, peer = listener.accept()
        except TimeoutError:
            continue
        except OSError:
            return
        if not slots.acquire(blocking=False):
            client.close()
            log(f"refused a connection from {peer[0]}:{peer[1]}: {limit} are open, the most one tunnel carries")
            continue
        try:
            chan = open_channel(dest, peer)
        except Exception as exc:  # this connection's failure, not the tunnel's
            slots.release()
            client.close()
            log(f"could not open {dest[0] or 'the container'}:{dest[1]} for a connection: {exc}")
            continue
        threading.Thread(target=_pipe, args=(client, chan, stop, slots.release), daemon=True).start()


def _pipe(a: Stream, b: Stream, stop: threading.Event, done: Callable[[], None] = lambda: None) -> None:
    try:
        while not stop.is_set():
            ready, _, _ = select.select([a, b], [], [], 0.5)
            for src in ready:
                data = src.recv(65536)
                if not data:
                    return
                (b if src is a else a).sendall(data)
    except OSError:
        return
    finally:
        for end in (a, b):
            with contextlib.suppress(Exception):
                end.close()
        done()
