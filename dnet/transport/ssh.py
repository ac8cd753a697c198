"""One SSH connection per host, opened once and reused; host keys verified by default."""
from __future__ import annotations

import base64
import errno
import functools
import hashlib
import logging
import os
import select
import shlex
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import paramiko
from fabric import Config, Connection

from dnet.errors import DnetError
from dnet.transport.base import Result, command_timeout, mask

_opened = 0
_lock = threading.Lock()
# paramiko logs a failed handshake (a port that accepts and closes) with a 20-line traceback through Python's
# last-resort handler; dnet says it in one line instead. A program that configures logging still gets them.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


def connections_opened() -> int:
    """How many SSH connections this process has opened (for benchmarks)."""
    return _opened


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's format: SHA256:base64 of the key blob, no padding."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


class AcceptNewPolicy(paramiko.MissingHostKeyPolicy):
    """Record unknown host keys (like OpenSSH's accept-new); changed keys still fail."""

    def __init__(self, save_to: str) -> None:
        self.save_to = save_to

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        client.get_host_keys().add(hostname, key.get_name(), key)
        Path(self.save_to).parent.mkdir(parents=True, exist_ok=True)
        with _lock, open(self.save_to, "a", encoding="utf-8") as fh:
            fh.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")


class UnknownHostKey(paramiko.MissingHostKeyPolicy):
    """Refuse hosts whose key is not in known_hosts, with advice."""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise DnetError(f"{hostname}: host key {key.get_name()} {fingerprint(key)} is not in known_hosts; "
                        "check it and add it (ssh-keyscan), or run with --accept-new-host-keys")


class _Known:
    """One parse of a known_hosts file, and the keys it holds per host name, each looked up once: paramiko's lookup
    walks every entry, and its HostKeys' len() (a plain `if parsed`) compares every name with every other."""

    def __init__(self, path: str) -> None:
        self.parsed = paramiko.HostKeys(path)
        self.found: dict[str, dict[str, paramiko.PKey]] = {}

    def keys_for(self, name: str) -> dict[str, paramiko.PKey]:
        if name not in self.found:
            self.found[name] = dict(self.parsed.lookup(name) or {})
        return self.found[name]


_parsed: dict[tuple[str, int, int], _Known] = {}


def _known_hosts(path: str) -> _Known | None:
    """A known_hosts file parsed once per process (and again only when it changes): parsing it for each of N
    connections costs N x N key parses."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (path, st.st_mtime_ns, st.st_size)
    with _lock:
        if key not in _parsed:
            _parsed[key] = _Known(path)
        return _parsed[key]


def known_keys(extra: str | None, host: str, port: int) -> dict[str, paramiko.PKey]:
    """The keys ~/.ssh/known_hosts and the inventory's file hold for a host, by key type."""
    name = host if port == 22 else f"[{host}]:{port}"  # how known_hosts and paramiko name it
    out: dict[str, paramiko.PKey] = {}
    for path in (os.path.expanduser("~/.ssh/known_hosts"), extra):
        known = _known_hosts(path) if path else None
        if known is not None:
            with _lock:
                out.update(known.keys_for(name))
    return out


def _verify_keys(client: paramiko.SSHClient, extra: str | None, accept_new: bool, host: str, port: int) -> None:
    """Check host keys against ~/.ssh/known_hosts and the inventory's file (Fabric alone accepts any key)."""
    name = host if port == 22 else f"[{host}]:{port}"
    mine = client.get_host_keys()
    for kind, k in known_keys(extra, host, port).items():
        mine.add(name, kind, k)
    known = os.path.expanduser("~/.ssh/known_hosts")
    client.set_missing_host_key_policy(AcceptNewPolicy(extra or known) if accept_new else UnknownHostKey())


def connection(host: str, **kwargs: Any) -> Connection:
    """A Fabric connection that reads no ssh_config of its own: dnet has resolved host, user, port, keys and
    ProxyJump already, and a gateway Fabric built from ~/.ssh/config or /etc/ssh/ssh_config would skip dnet's host
    key verification (Fabric's clients accept any new key)."""
    return Connection(host, config=_fabric_config(), **kwargs)


@functools.cache
def _fabric_config() -> Config:
    return Config(overrides={"load_ssh_configs": False})  # one for all connections: building one costs milliseconds


def _jump(spec: Any, kwargs: dict[str, Any], timeout: int, accept_new: bool) -> Connection | None:
    """The ProxyJump chain as Fabric connections, each through the one before, every host key verified.

    `ProxyJump a,b` reaches b through a and the target through b, as OpenSSH does.
    """
    if not spec.proxy_jump or spec.proxy_jump == "none":
        return None
    from dnet.inventory.resolve import ssh_config

    config = ssh_config()
    gateway: Connection | None = None
    for hop in [h.strip() for h in spec.proxy_jump.split(",") if h.strip()]:
        user, _, hostport = hop.rpartition("@")
        host, _, port = hostport.partition(":")
        cfg = config.lookup(host) if config is not None else {}
        jump_kwargs = dict(kwargs)
        if cfg.get("identityfile"):
            jump_kwargs["key_filename"] = [os.path.expanduser(cfg["identityfile"][0])]
        gateway = connection(cfg.get("hostname", host), user=user or cfg.get("user") or spec.user,
                             port=int(port or cfg.get("port") or 22), connect_kwargs=jump_kwargs,
                             connect_timeout=timeout, gateway=gateway)
        _verify_keys(gateway.client, spec.known_hosts, accept_new, gateway.host, gateway.port)
    return gateway


def advice(exc: BaseException, host: str, port: int) -> str:
    """Say what went wrong opening a connection and what to check next (never a bare [Errno None])."""
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError) and exc.errors:
        exc = next(iter(exc.errors.values()))
    if isinstance(exc, socket.gaierror):
        return (f"cannot resolve '{host}' ({exc.strerror}); check the host's address in the inventory "
                "or its HostName in ~/.ssh/config")
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused: nothing listens on port {port} there; check the port and that sshd runs"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return (f"timed out: check that the address is right and reachable from here and that no firewall drops "
                f"port {port}")
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "no route to that address; check the address and this machine's routes (or use ProxyJump)"
    if isinstance(exc, (paramiko.SSHException, EOFError)):
        return (f"the SSH handshake failed ({exc or type(exc).__name__}); check that port {port} is an SSH server "
                "and that it allows this client")
    return f"{exc.strerror if isinstance(exc, OSError) and exc.strerror else exc or type(exc).__name__}"


def _nodelay(transport: paramiko.Transport | None) -> None:
    """Send each packet at once. With Nagle's algorithm a command's second small packet (its end of input after the
    exec request) waited for the host's delayed ACK: 40 ms on every command."""
    sock = getattr(transport, "sock", None)
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class NotStarted(DnetError):
    """The connection failed before a command started (no channel): trying again elsewhere is safe."""


class SSHTransport:
    """Runs commands over one Fabric connection; `sudo -n` for non-root users."""

    open_timeout: float | None = None  # seconds a channel may take to open (paramiko's default: an hour)

    def __init__(self, spec: Any, accept_new_host_keys: bool = False, connect_timeout: float = 10,
                 poll: float | None = None) -> None:
        """`poll`: how often paramiko's reader thread wakes to see whether it was closed (None: paramiko's 0.1 s).
        Longer saves CPU on connections that live long, but a closed one keeps its socket until the thread wakes."""
        self.name = spec.name
        self.poll = poll
        self.spec = spec
        kwargs: dict[str, Any] = {"allow_agent": True, "look_for_keys": spec.identity_file is None,
                                  "banner_timeout": connect_timeout, "auth_timeout": connect_timeout}
        if spec.identity_file:
            kwargs["key_filename"] = [spec.identity_file]
        gateway = _jump(spec, kwargs, int(connect_timeout), accept_new_host_keys)
        self.conn = connection(spec.hostname, user=spec.user, port=spec.port, connect_kwargs=kwargs,
                               connect_timeout=int(connect_timeout), gateway=gateway)
        _verify_keys(self.conn.client, spec.known_hosts, accept_new_host_keys, spec.hostname, spec.port)
        self.prefix = "" if spec.user == "root" else "sudo -n "
        self._open()

    def _open(self) -> None:
        global _opened
        where = f"{self.spec.user}@{self.spec.hostname}:{self.spec.port}"
        try:
            self.conn.open()
        except paramiko.BadHostKeyException as exc:
            raise DnetError(f"{self.name} ({where}): the host key CHANGED (got {exc.key.get_name()} "
                            f"{fingerprint(exc.key)}); refusing to connect. If the host was rebuilt, "
                            f"remove the old key with ssh-keygen -R and try again") from None
        except paramiko.AuthenticationException as exc:
            key = self.spec.identity_file or "your default keys and agent"
            raise DnetError(f"{self.name} ({where}): authentication failed ({exc}); check that user "
                            f"'{self.spec.user}' exists there and accepts the key {key} (authorized_keys)") from None
        except (TimeoutError, OSError, paramiko.SSHException, EOFError) as exc:
            raise DnetError(f"{self.name} ({where}): cannot connect: {advice(exc, self.spec.hostname, self.spec.port)}"
                            ) from None
        hop: Connection | None = self.conn
        while hop is not None:  # the target and every ProxyJump host on the way
            _nodelay(hop.client.get_transport())
            hop = hop.gateway if isinstance(hop.gateway, Connection) else None
        transport = self.conn.client.get_transport()
        if transport is not None:
            transport.set_keepalive(15)  # keeps NAT and firewall state alive on long waits
            if self.poll:
                transport.sock.settimeout(self.poll)
        with _lock:
            _opened += 1

    def run(self, command: str, *, check: bool = True, stdin: bytes | None = None, timeout: float | None = None,
            secrets: tuple[str, ...] = (), abandoned: Callable[[], bool] | None = None) -> Result:
        chan = self._session()
        chan.exec_command(self.prefix + "sh -c " + shlex.quote(command))
        if stdin is not None:
            chan.sendall(stdin)
        chan.shutdown_write()
        return self._finish(chan, command, check, secrets, timeout or command_timeout(), abandoned)

    def stream_in(self, command: str, source: IO[bytes], *, secrets: tuple[str, ...] = (),
                  check: bool = True) -> Result:
        chan = self._session()
        chan.exec_command(self.prefix + "sh -c " + shlex.quote(command))
        while chunk := source.read(1 << 16):
            chan.sendall(chunk)
        chan.shutdown_write()
        return self._finish(chan, command, check, secrets)

    def alive(self, timeout: float) -> bool:
        """Whether the connection still answers: one channel opened and closed (a held connection's host may have
        gone since, and then only this short wait tells)."""
        try:
            self._session(timeout).close()
            return True
        except DnetError:
            return False

    def _session(self, timeout: float | None = None) -> paramiko.Channel:
        transport = self.conn.client.get_transport()
        if transport is None or not transport.is_active():
            raise NotStarted(f"{self.name}: the SSH connection was lost")
        try:
            chan = transport.open_session(timeout=timeout or self.open_timeout)
        except (paramiko.SSHException, OSError) as exc:
            raise NotStarted(f"{self.name}: the SSH connection was lost ({exc})") from None
        return chan  # type: ignore[no-any-return]

    def _finish(self, chan: paramiko.Channel, command: str, check: bool, secrets: tuple[str, ...],
                timeout: float | None = None, abandoned: Callable[[], bool] | None = None) -> Result:
        out, err = bytearray(), bytearray()
        deadline = time.monotonic() + timeout if timeout else None
        code = -1
        try:
            while True:
                while chan.recv_ready():
                    out += chan.recv(1 << 16)
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(1 << 16)
                # sshd may send the exit status before the last output: done only at EOF (or close)
                finished = chan.exit_status_ready() and (chan.eof_received or chan.closed)
                if finished and not chan.recv_ready() and not chan.recv_stderr_ready():
                    code = chan.recv_exit_status()
                    break
                if chan.closed and not chan.exit_status_ready():
                    raise DnetError(f"{self.name}: the SSH connection was lost while running "
                                    f"`{mask(command, secrets)}`")
                if deadline and time.monotonic() > deadline:
                    code, err = 124, err + f"\n(timed out after {timeout:.0f}s)".encode()
                    break
                if abandoned is not None and abandoned():  # the holder's client went away (interrupted)
                    raise DnetError(f"{self.name}: abandoned: the run that asked for it ended")
                if chan.eof_received or chan.closed:
                    # no more output can come, and the channel's fd stays readable from now on: waiting on it would
                    # spin (and starve the thread that reads the exit status) until the status arrives
                    chan.status_event.wait(0.05)
                else:
                    select.select([chan], [], [], 0.05)
        finally:
            chan.close()
        r = Result(self.name, command, code, out.decode(errors="replace"), err.decode(errors="replace"))
        return r.check(secrets) if check else r

    def close(self) -> None:
        self.conn.close()
