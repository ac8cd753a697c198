"""The OpenSSH transport (DNET_TRANSPORT=openssh): the `ssh` command with ControlMaster/ControlPersist.

For setups paramiko cannot serve (certificates, FIDO `sk-` keys, `Match` blocks, `ProxyCommand`, GSSAPI): OpenSSH
reads the user's ssh_config itself. Host keys stay verified (StrictHostKeyChecking=yes against dnet's known_hosts
files; --accept-new-host-keys maps to accept-new). Commands and secrets travel on stdin or as the remote command's
quoted text, never in a local process list's arguments beyond the command dnet would run anyway.
"""
from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path
from typing import IO, TYPE_CHECKING

from dnet.errors import DnetError
from dnet.transport import wire
from dnet.transport.base import Result, command_timeout
from dnet.transport.direct import DirectOnDemand

if TYPE_CHECKING:
    from dnet.inventory.resolve import HostSpec

CONNECT_TIMEOUT = 10


def control_dir() -> Path:
    """The master connections' sockets: beside the holder's, or in /tmp/dnet-UID-ssh when that path is too long for
    a unix socket (108 bytes with ssh's 40-character %C name and its temporary suffix)."""
    path = wire.private_dir() / "ssh"
    if len(str(path)) > 40:
        path = Path(f"/tmp/dnet-{os.getuid()}-ssh")
    path.mkdir(mode=0o700, exist_ok=True)
    wire.check_private(path)
    return path


def _known_files(spec: HostSpec) -> str:
    """The inventory's file first: accept-new records keys in the first one, as the paramiko transport does."""
    files = ([spec.known_hosts] if spec.known_hosts else []) + [os.path.expanduser("~/.ssh/known_hosts")]
    return " ".join('"' + f.replace('"', "") + '"' for f in files)


class OpenSSHTransport(DirectOnDemand):
    """Runs commands with `ssh`, one master connection per host kept for DNET_PERSIST seconds."""

    def __init__(self, spec: HostSpec, accept_new_host_keys: bool = False) -> None:
        self.name, self.spec, self.accept_new = spec.name, spec, accept_new_host_keys
        self.prefix = "" if spec.user == "root" else "sudo -n "
        persist = wire.persist_seconds()
        opts = {"BatchMode": "yes", "ConnectTimeout": str(CONNECT_TIMEOUT), "ServerAliveInterval": "15",
                "StrictHostKeyChecking": "accept-new" if accept_new_host_keys else "yes",
                "UserKnownHostsFile": _known_files(spec), "LogLevel": "ERROR"}
        if persist > 0:
            opts.update({"ControlMaster": "auto", "ControlPath": str(control_dir() / "%C"),
                         "ControlPersist": f"{int(persist)}s"})
        self.base = ["ssh", *[a for k, v in opts.items() for a in ("-o", f"{k}={v}")]]
        config = os.environ.get("DNET_SSH_CONFIG")
        if config:
            self.base += ["-F", os.path.expanduser(config)]
        # what the inventory states is passed on; what ssh_config says, ssh reads itself (Match blocks included)
        mine = {k for k, v in spec.sources.items() if v in ("host", "defaults")}
        if "port" in mine:
            self.base += ["-p", str(spec.port)]
        if "user" in mine or spec.sources.get("user") == "built-in":
            self.base += ["-l", spec.user]
        if "identity_file" in mine and spec.identity_file:
            self.base += ["-i", spec.identity_file]
        via_config = spec.sources.get("hostname") == "ssh_config" and spec.alias
        self.base += ["--", spec.alias if via_config else spec.hostname]
        r = self._ssh("true", None, CONNECT_TIMEOUT + 20)
        if r.returncode != 0:
            raise DnetError(f"{self.name} ({spec.user}@{spec.hostname}:{spec.port}): cannot connect: "
                            f"{advice(r.stderr, spec.port)}")

    def _ssh(self, command: str, stdin: bytes | None, timeout: float | None) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run([*self.base, self.prefix + "sh -c " + shlex.quote(command)], input=stdin or b"",
                                  capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            return subprocess.CompletedProcess(exc.cmd, 124, exc.stdout or b"",
                                               (exc.stderr or b"") + f"\n(timed out after {timeout:.0f}s)".encode())

    def run(self, command: str, *, check: bool = True, stdin: bytes | None = None, timeout: float | None = None,
            secrets: tuple[str, ...] = ()) -> Result:
        p = self._ssh(command, stdin, timeout or command_timeout())
        self._lost(p)
        r = Result(self.name, command, p.returncode, p.stdout.decode(errors="replace"),
                   p.stderr.decode(errors="replace"))
        return r.check(secrets) if check else r

    def stream_in(self, command: str, source: IO[bytes], *, secrets: tuple[str, ...] = ()) -> Result:
        with subprocess.Popen([*self.base, self.prefix + "sh -c " + shlex.quote(command)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) as p:
            assert p.stdin is not None
            try:
                while chunk := source.read(1 << 16):
                    p.stdin.write(chunk)
            except BrokenPipeError:
                pass
            out, err = p.communicate()
        done = subprocess.CompletedProcess(p.args, p.returncode, out, err)
        self._lost(done)
        return Result(self.name, command, done.returncode, out.decode(errors="replace"),
                      err.decode(errors="replace")).check(secrets)

    def _lost(self, p: subprocess.CompletedProcess[bytes]) -> None:
        """ssh's own failures exit 255 with its message on stderr (a remote command's 255 has no "ssh:" line)."""
        text = p.stderr.decode(errors="replace")
        if p.returncode == 255 and ("ssh:" in text or "Connection" in text or "closed by remote host" in text):
            raise DnetError(f"{self.name}: the SSH connection was lost ({text.strip().splitlines()[-1]})")


def advice(stderr: bytes, port: int) -> str:
    """ssh's failure, said as dnet says the paramiko transport's."""
    text = stderr.decode(errors="replace").strip()
    last = text.splitlines()[-1] if text else "ssh failed with no message"
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text:
        return ("the host key CHANGED; refusing to connect. If the host was rebuilt, remove the old key with "
                "ssh-keygen -R and try again")
    if "Host key verification failed" in text or "No ED25519 host key is known" in text or \
            "host key is known" in text:
        return ("its host key is not in known_hosts; check it and add it (ssh-keygen), or run with "
                "--accept-new-host-keys")
    if "Permission denied" in text:
        return f"authentication failed ({last}); check the user and the key (authorized_keys)"
    if "Connection refused" in text:
        return f"connection refused: nothing listens on port {port} there; check the port and that sshd runs"
    if "timed out" in text:
        return (f"timed out: check that the address is right and reachable from here and that no firewall drops "
                f"port {port}")
    if "Could not resolve hostname" in text:
        return f"{last}; check the host's address in the inventory or its HostName in ~/.ssh/config"
    return last


def close_all() -> int:
    """Stop every master connection (dnet ssh-close); how many there were."""
    try:
        sockets = [p for p in control_dir().iterdir() if p.is_socket()]
    except (OSError, DnetError):
        return 0
    for sock in sockets:
        subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "dnet-master"], capture_output=True,
                       timeout=10)
    return len(sockets)
