"""The connection holder: one process per user that keeps dnet's SSH connections open between runs.

A run asks it over a unix socket in a private directory to open a host (the handshake happens once, here) and to run
commands on it; a later run within DNET_PERSIST seconds finds the connection open. Each request names the host by
everything that decides how it is reached, so two inventories never share a connection unless they would open the
same one. A held connection is used again only while its host key is still in known_hosts and it still answers.
"""
from __future__ import annotations

import fcntl
import os
import select
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Any

from dnet.errors import DnetError
from dnet.transport import wire
from dnet.transport.ssh import NotStarted

# a held connection idle for longer than ALIVE_AFTER must answer a channel request within ALIVE_TIMEOUT, else it is
# replaced by a fresh one (one used a moment ago answered then: the check would cost a round trip per host and run)
ALIVE_TIMEOUT = 3.0
ALIVE_AFTER = 10.0
# a channel on a held connection that takes longer than this to open counts as a dead connection (tried once more
# on a fresh one), instead of paramiko's hour
OPEN_TIMEOUT = 30.0
# paramiko's reader threads wake every 0.1 s to see whether they were closed: 100 idle held connections cost 4% of a
# core. Every 2 s instead: a closed connection's socket then lingers up to 2 s, and the holder closes all on exit.
POLL = 2.0
SPEC_FIELDS = ("name", "hostname", "port", "user", "identity_file", "proxy_jump", "known_hosts")


@dataclass
class Held:
    transport: Any = None
    used: float = field(default_factory=time.monotonic)
    busy: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Holder:
    def __init__(self, persist: float) -> None:
        self.persist = persist
        self.held: dict[tuple[Any, ...], Held] = {}
        self.lock = threading.Lock()
        self.last = time.monotonic()
        self.opened = 0
        self.stop = threading.Event()

    def entry(self, spec: dict[str, Any]) -> Held:
        key = tuple(spec.get(f) for f in SPEC_FIELDS)
        with self.lock:
            return self.held.setdefault(key, Held())

    def get(self, req: dict[str, Any], check_alive: bool, fresh: bool = False) -> Any:
        """The open connection for the request's host: the held one if it is still trusted and answers, else new."""
        from dnet.transport.ssh import SSHTransport

        spec, accept_new = req["spec"], bool(req.get("accept_new"))
        h = self.entry(spec)
        with h.lock:
            t = h.transport
            probe = check_alive and time.monotonic() - h.used > ALIVE_AFTER
            good = not fresh and t is not None and self.trusted(t, spec, accept_new) and \
                (not probe or t.alive(ALIVE_TIMEOUT))
            if t is not None and not good:
                t.close()
                h.transport = t = None
            if t is None:
                t = SSHTransport(SimpleNamespace(**{f: spec.get(f) for f in SPEC_FIELDS}),
                                 accept_new_host_keys=accept_new, poll=POLL)
                t.open_timeout = OPEN_TIMEOUT
                h.transport = t
                with self.lock:
                    self.opened += 1
            h.used = time.monotonic()
            return t

    @staticmethod
    def trusted(t: Any, spec: dict[str, Any], accept_new: bool) -> bool:
        """Whether the key the held connection was opened with is still one known_hosts accepts (someone may have
        removed it, or replaced it after a rebuild, since)."""
        from dnet.transport.ssh import known_keys

        transport = t.conn.client.get_transport()
        if transport is None or not transport.is_active():
            return False
        key = transport.get_remote_server_key()
        known = known_keys(spec.get("known_hosts"), spec["hostname"], int(spec["port"]))
        if key.get_name() in known:
            return bool(known[key.get_name()] == key)
        return accept_new and not known

    def handle(self, conn: socket.socket) -> None:
        with conn:
            try:
                if wire.peer_uid(conn) != os.getuid():
                    return  # the directory is private; this is a second lock on the door
                req = wire.recv_json(conn)
                self.last = time.monotonic()
                wire.send_json(conn, self.answer(req, conn))
            except (ConnectionError, OSError, ValueError):
                return
            finally:
                self.last = time.monotonic()

    def answer(self, req: dict[str, Any], conn: socket.socket) -> dict[str, Any]:
        op = req.get("op")
        if op == "stats":
            with self.lock:
                return {"opened": self.opened, "held": sum(1 for h in self.held.values() if h.transport),
                        "pid": os.getpid()}
        if op == "close":
            self.close_all()
            self.stop.set()
            return {"closed": True}
        env = req.get("env") or {}
        if any(env.get(k) != os.environ.get(k) for k in wire.ENV_KEYS):
            return {"other_env": True}
        try:
            t = self.get(req, check_alive=op == "open")
        except DnetError as exc:
            return {"error": str(exc)}
        if op == "open":
            return {"ok": True}
        h = self.entry(req["spec"])
        with self.lock:
            h.busy += 1
        try:
            secrets = tuple(req.get("secrets") or ())
            stdin = wire.recv(conn) if op == "run" and req.get("has_stdin") else None
            for attempt in (1, 2):
                try:
                    if op == "run":
                        r = t.run(req["command"], check=False, stdin=stdin, timeout=req.get("timeout"),
                                  secrets=secrets, abandoned=lambda: gone(conn))
                    elif op == "stream":
                        r = t.stream_in(req["command"], Frames(conn), secrets=secrets, check=False)
                    else:
                        return {"error": f"unknown request {op!r}"}
                    break
                except NotStarted:
                    if attempt == 2:
                        raise
                    # the held connection died since its last use and nothing ran: once more on a fresh one
                    t = self.get(req, check_alive=False, fresh=True)
        except DnetError as exc:
            return {"error": str(exc)}
        finally:
            with self.lock:
                h.busy -= 1
                h.used = time.monotonic()
        return {"code": r.code, "stdout": r.stdout, "stderr": r.stderr}

    def reap(self) -> None:
        """Close connections idle for longer than persist; stop once nothing is held and nobody asked for as long."""
        while not self.stop.wait(1.0):
            now = time.monotonic()
            with self.lock:
                idle = [h for h in self.held.values() if h.transport and not h.busy and now - h.used > self.persist]
            for h in idle:
                with h.lock:
                    if h.transport is not None and not h.busy and now - h.used > self.persist:
                        h.transport.close()
                        h.transport = None
            with self.lock:
                empty = not any(h.transport for h in self.held.values())
            if empty and now - self.last > self.persist:
                self.stop.set()

    def close_all(self) -> None:
        with self.lock:
            entries = list(self.held.values())
        for h in entries:
            if h.transport is not None:
                h.transport.close()
                h.transport = None


def gone(conn: socket.socket) -> bool:
    """Whether the client closed its end (it was interrupted): then its command's channel is closed too, as it
    would have been with a connection of its own."""
    readable, _, _ = select.select([conn], [], [], 0)
    if not readable:
        return False
    try:
        return conn.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


class Frames:
    """A stream's stdin as it arrives from the client: length-prefixed chunks, an empty one at the end."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn, self.done = conn, False

    def read(self, size: int = -1) -> bytes:
        if self.done:
            return b""
        chunk = wire.recv(self.conn)
        self.done = not chunk
        return chunk


def serve(path: Path, persist: float) -> int:
    """Hold the lock beside the socket (one holder per user), listen, and serve until idle for `persist`."""
    lock: IO[str] = open(path.with_name("holder.lock"), "w", encoding="utf-8")  # noqa: SIM115 - held for life
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another holder serves this user
    tmp = path.with_name(f"holder.{os.getpid()}.sock")
    tmp.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        listener.bind(str(tmp))
    finally:
        os.umask(old)
    listener.listen(128)
    os.replace(tmp, path)  # appears whole, already listening
    listener.settimeout(0.5)
    holder = Holder(persist)
    threading.Thread(target=holder.reap, daemon=True).start()
    try:
        while not holder.stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(None)
            threading.Thread(target=holder.handle, args=(conn,), daemon=True).start()
    finally:
        path.unlink(missing_ok=True)  # ours: no other holder can have replaced it while we hold the lock
        listener.close()
        holder.close_all()
    return 0


def main(argv: list[str]) -> int:
    persist = float(argv[0]) if argv else wire.persist_seconds()
    return serve(wire.socket_path(), persist)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
