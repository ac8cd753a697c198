"""Effective per-host settings: inventory host > inventory defaults > ~/.ssh/config > built-ins.

As in Ansible, a value the inventory states wins over ssh_config (whose `Host *` would otherwise beat the
inventory's defaults); ssh_config fills what the inventory leaves out. Each setting records where it came from."""
from __future__ import annotations

import glob
import os
import re
import shlex
import socket
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from dnet.errors import DnetError
from dnet.inventory.schema import DockerEngine, Inventory

if TYPE_CHECKING:  # paramiko costs 0.15 s to import; validate and --help do not need it
    import paramiko


@dataclass(frozen=True)
class HostSpec:
    """Everything dnet needs to reach and configure one host."""

    name: str
    hostname: str
    port: int
    user: str
    identity_file: str | None
    proxy_jump: str | None
    roles: tuple[str, ...]
    labels: dict[str, str] = field(hash=False)
    advertise_addr: str | None
    engine: DockerEngine
    known_hosts: str | None = None
    local: bool = False
    sources: dict[str, str] = field(default_factory=dict, hash=False)  # setting -> host|defaults|ssh_config|built-in
    alias: str = ""  # the name ssh_config was asked about (the address, else the host's name)
    transport: str = "paramiko"  # or openssh

    @property
    def is_manager(self) -> bool:
        return "manager" in self.roles


def ssh_config(path: str | None = None) -> paramiko.SSHConfig | None:
    """Read the user's ssh_config, with its Include directives expanded; None when there is none (and then paramiko
    is not imported at all: a run through the connection holder needs it nowhere else)."""
    cfg_path = Path(path or os.environ.get("DNET_SSH_CONFIG", "~/.ssh/config")).expanduser()
    if not cfg_path.is_file():
        return None
    import paramiko

    return paramiko.SSHConfig.from_text(expand_includes(cfg_path))


INCLUDE = re.compile(r"^\s*include\s*(?:=\s*)?(?P<args>.+?)\s*$", re.IGNORECASE)


def expand_includes(path: Path, depth: int = 0) -> str:
    """The config's text with each `Include` replaced by the files it names (paramiko's parser skips Include).

    Like OpenSSH: relative paths are taken from ~/.ssh (from the config's folder when DNET_SSH_CONFIG points
    elsewhere), globs are expanded in order, and included lines count as part of the block they appear in.
    """
    if depth > 16:
        raise DnetError(f"{path}: Include nested more than 16 deep (a loop?)")
    base = path.parent
    out: list[str] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = INCLUDE.match(line)
        if not m:
            out.append(line)
            continue
        for arg in shlex.split(m["args"]):
            pattern = os.path.expanduser(arg)
            if not os.path.isabs(pattern):
                pattern = str(base / pattern)
            for found in sorted(glob.glob(pattern)):
                if os.path.isfile(found):
                    out.append(expand_includes(Path(found), depth + 1))
    return "\n".join(out) + "\n"


def _pick(sources: dict[str, str], key: str, *found: tuple[str, object]) -> object:
    """The first value set, in precedence order; records where it came from."""
    for src, value in found:
        if value is not None:
            sources[key] = src
            return value
    return None


def hosts(inv: Inventory, config: paramiko.SSHConfig | None = None) -> dict[str, HostSpec]:
    """Resolve every host's effective connection and engine settings."""
    config = config if config is not None else ssh_config()
    out: dict[str, HostSpec] = {}
    d = inv.defaults
    env_transport = os.environ.get("DNET_TRANSPORT", "").strip() or None  # checked by transport_kind()
    for name, h in inv.hosts.items():
        sc = config.lookup(h.address or name) if config is not None else {}
        sources: dict[str, str] = {}
        pick = partial(_pick, sources)
        ident = pick("identity_file", ("host", h.identity_file), ("defaults", d.identity_file),
                     ("ssh_config", (sc.get("identityfile") or [None])[0]))
        sc_port = int(sc["port"]) if "port" in sc else None
        port = pick("port", ("host", h.port), ("defaults", d.port), ("ssh_config", sc_port), ("built-in", 22))
        user = pick("user", ("host", h.user), ("defaults", d.user), ("ssh_config", sc.get("user")),
                    ("built-in", "root"))
        transport = pick("transport", ("host", h.transport), ("defaults", d.transport), ("env", env_transport),
                         ("built-in", "paramiko"))
        sc_host = sc.get("hostname") if sc.get("hostname") != (h.address or name) else None  # paramiko fills it in
        hostname = pick("hostname", ("ssh_config", sc_host), ("host", h.address), ("name", name))
        # the host's own values as they are (model_dump would turn address pools into plain dicts)
        engine = d.docker if h.docker is None else \
            d.docker.model_copy(update={k: getattr(h.docker, k) for k in h.docker.model_fields_set})
        out[name] = HostSpec(
            name=name,
            hostname=str(hostname),
            port=int(str(port)),
            user=str(user),
            identity_file=os.path.expanduser(str(ident)) if ident else None,
            proxy_jump=sc.get("proxyjump"),
            roles=tuple(h.roles),
            labels=dict(h.labels),
            advertise_addr=h.advertise_addr,
            engine=engine,
            known_hosts=os.path.expanduser(d.known_hosts) if d.known_hosts else None,
            local=(h.address or name) == "local",
            sources=sources,
            alias=h.address or name,
            transport=str(transport),
        )
    return out


def address_of(spec: HostSpec) -> str:
    """An IP for a host (resolving its name here when the inventory gives a name)."""
    try:
        return socket.gethostbyname(spec.hostname)
    except OSError:
        return spec.hostname
