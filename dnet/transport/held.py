"""A host reached through the connection holder (see holder.py): no SSH handshake in this process, none at all when
an earlier run within DNET_PERSIST seconds opened the host already."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from dnet.errors import DnetError
from dnet.transport import wire
from dnet.transport.base import Result, command_timeout
from dnet.transport.direct import DirectOnDemand

if TYPE_CHECKING:
    from dnet.inventory.resolve import HostSpec

_start_lock = threading.Lock()


class NoHolder(DnetError):
    """No holder could be reached, or it cannot serve this environment: connect directly instead."""
START_WAIT = 5.0


def _dial(path: Path) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
        return sock
    except OSError:
        sock.close()
        return None


def dial() -> socket.socket | None:
    """A connection to this user's holder, starting one when none answers; None when it cannot be had (the caller
    then connects directly)."""
    path = wire.socket_path()
    sock = _dial(path)
    if sock is not None:
        return sock
    with _start_lock:  # one start per process, however many hosts connect at once
        sock = _dial(path)
        if sock is not None:
            return sock
        subprocess.Popen([sys.executable, "-m", "dnet.transport.holder", str(wire.persist_seconds())],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True, close_fds=True, cwd="/")
        deadline = time.monotonic() + START_WAIT
        while time.monotonic() < deadline:
            sock = _dial(path)
            if sock is not None:
                return sock
            time.sleep(0.01)
    return None


def request(req: dict[str, Any], stdin: bytes | None = None, source: IO[bytes] | None = None) -> dict[str, Any]:
    """Send one request and wait for its answer; ConnectionError when no holder can be reached before sending."""
    sock = dial()
    if sock is None:
        raise ConnectionError("no connection holder")
    with sock:
        wire.send_json(sock, req)
        if stdin is not None:
            wire.send(sock, stdin)
        if source is not None:
            while chunk := source.read(1 << 16):
                wire.send(sock, chunk)
            wire.send(sock, b"")
        return wire.recv_json(sock)


class HeldTransport(DirectOnDemand):
    """Runs commands through the holder's connection to one host."""

    def __init__(self, spec: HostSpec, accept_new_host_keys: bool = False) -> None:
        self.name, self.spec, self.accept_new = spec.name, spec, accept_new_host_keys
        self.prefix = "" if spec.user == "root" else "sudo -n "
        self._spec = {"name": spec.name, "hostname": spec.hostname, "port": spec.port, "user": spec.user,
                      "identity_file": spec.identity_file, "proxy_jump": spec.proxy_jump,
                      "known_hosts": spec.known_hosts}
        self._call({"op": "open"})

    def _call(self, req: dict[str, Any], stdin: bytes | None = None, source: IO[bytes] | None = None
              ) -> dict[str, Any]:
        req = {**req, "spec": self._spec, "accept_new": self.accept_new,
               "env": {k: os.environ.get(k) for k in wire.ENV_KEYS}}
        try:
            reply = request(req, stdin, source)
        except (ConnectionError, OSError) as exc:
            raise NoHolder(f"{self.name}: lost the connection holder ({exc}); run again, or set DNET_PERSIST=0 to "
                           "connect directly") from None
        if reply.get("other_env"):
            raise NoHolder(f"{self.name}: the connection holder runs in another environment")
        if "error" in reply:
            raise DnetError(str(reply["error"]))
        return reply

    def run(self, command: str, *, check: bool = True, stdin: bytes | None = None, timeout: float | None = None,
            secrets: tuple[str, ...] = ()) -> Result:
        reply = self._call({"op": "run", "command": command, "timeout": timeout or command_timeout(),
                            "secrets": list(secrets), "has_stdin": stdin is not None}, stdin=stdin)
        r = Result(self.name, command, int(reply["code"]), str(reply["stdout"]), str(reply["stderr"]))
        return r.check(secrets) if check else r

    def stream_in(self, command: str, source: IO[bytes], *, secrets: tuple[str, ...] = ()) -> Result:
        reply = self._call({"op": "stream", "command": command, "secrets": list(secrets)}, source=source)
        return Result(self.name, command, int(reply["code"]), str(reply["stdout"]), str(reply["stderr"])
                      ).check(secrets)


def connect(spec: HostSpec, accept_new_host_keys: bool) -> HeldTransport | None:
    """The host through the holder, or None when persistence is off or no holder can be had."""
    if wire.persist_seconds() <= 0:
        return None
    try:
        return HeldTransport(spec, accept_new_host_keys)
    except NoHolder:
        return None


def close() -> bool:
    """Close every held connection and stop the holder (dnet ssh-close); False when none was running."""
    path = wire.socket_path()
    sock = _dial(path)
    if sock is None:
        return False
    with sock:
        wire.send_json(sock, {"op": "close"})
        with contextlib.suppress(ConnectionError):
            wire.recv_json(sock)
    deadline = time.monotonic() + 3  # gone when this returns, so the next run starts a new one
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return True


def stats() -> dict[str, Any] | None:
    """The holder's counts (connections opened since it started, held now), or None when none runs."""
    sock = _dial(wire.socket_path())
    if sock is None:
        return None
    with sock:
        wire.send_json(sock, {"op": "stats"})
        return wire.recv_json(sock)
