"""What the connection holder and its clients share: where its socket lives, who may use it, and its framing."""
from __future__ import annotations

import json
import os
import socket
import stat
import struct
from pathlib import Path
from typing import Any

from dnet.errors import DnetError

DEFAULT_PERSIST = 300.0
# what decides how the holder authenticates and which known_hosts it reads: a holder started in another environment
# would connect differently, so it refuses and the run connects directly
ENV_KEYS = ("HOME", "SSH_AUTH_SOCK")


def persist_seconds() -> float:
    """How long the holder keeps an idle connection (DNET_PERSIST, seconds; 0 turns the holder off)."""
    raw = os.environ.get("DNET_PERSIST", "")
    try:
        return max(0.0, float(raw)) if raw.strip() else DEFAULT_PERSIST
    except ValueError:
        raise DnetError(f"DNET_PERSIST={raw!r} is not a number of seconds; set it to e.g. 300, or 0 to turn "
                        "connection persistence off") from None


def private_dir() -> Path:
    """The holder's directory: DNET_RUNTIME_DIR, else $XDG_RUNTIME_DIR/dnet, else /tmp/dnet-UID; made mode 0700 and
    refused unless it is a real directory of this user that nobody else can enter (so the socket can never serve or
    be faked by another user)."""
    uid = os.getuid()
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    own = os.environ.get("DNET_RUNTIME_DIR")
    path = Path(own) if own else Path(runtime) / "dnet" if runtime else Path(f"/tmp/dnet-{uid}")
    try:
        path.mkdir(mode=0o700, exist_ok=True)
    except OSError as exc:
        raise DnetError(f"cannot make {path}: {exc.strerror}") from None
    check_private(path)
    return path


def check_private(path: Path) -> None:
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise DnetError(f"{path} is not a private directory of this user (owner uid {st.st_uid}, mode "
                        f"{stat.S_IMODE(st.st_mode):o}); remove it so dnet can make its own")


def socket_path() -> Path:
    return private_dir() / "holder.sock"


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a unix socket (SO_PEERCRED: pid, uid, gid)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


def send(sock: socket.socket, data: bytes) -> None:
    sock.sendall(struct.pack(">I", len(data)) + data)


def send_json(sock: socket.socket, value: dict[str, Any]) -> None:
    send(sock, json.dumps(value).encode())


def recv(sock: socket.socket) -> bytes:
    head = _exactly(sock, 4)
    return _exactly(sock, struct.unpack(">I", head)[0])


def recv_json(sock: socket.socket) -> dict[str, Any]:
    value = json.loads(recv(sock))
    if not isinstance(value, dict):
        raise ConnectionError("the holder's peer sent something that is not an object")
    return value


def _exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 16))
        if not chunk:
            raise ConnectionError("the other end closed the connection")
        buf += chunk
    return bytes(buf)
