"""How commands reach a host: one reused SSH connection (Fabric/paramiko) or the local shell."""
from __future__ import annotations

from typing import TYPE_CHECKING

from dnet.transport.base import Result, Transport
from dnet.transport.local import LocalTransport

if TYPE_CHECKING:
    from dnet.inventory.resolve import HostSpec

__all__ = ["LocalTransport", "Result", "Transport", "connect", "connections_opened"]


KINDS = ("paramiko", "openssh")


def transport_kind() -> str:
    """DNET_TRANSPORT: paramiko (the default: Fabric, and the connection holder) or openssh (the ssh command)."""
    import os

    from dnet.errors import DnetError

    kind = os.environ.get("DNET_TRANSPORT", "").strip() or "paramiko"
    if kind not in KINDS:
        raise DnetError(f"DNET_TRANSPORT={kind!r} is not a transport; use paramiko (the default) or openssh")
    return kind


def connections_opened() -> int:
    """SSH connections this process opened itself, plus those the holder opened since it started (benchmarks)."""
    import sys

    from dnet.transport import held

    ssh = sys.modules.get("dnet.transport.ssh")
    mine = ssh.connections_opened() if ssh is not None else 0
    stats = held.stats()
    return int(mine) + int(stats["opened"] if stats else 0)


def connect(spec: HostSpec, accept_new_host_keys: bool = False) -> Transport:
    """Open the transport a host needs (local for address 'local', else SSH)."""
    if spec.local:
        return LocalTransport(spec.name)
    if spec.transport == "openssh":
        from dnet.transport.openssh import OpenSSHTransport

        return OpenSSHTransport(spec, accept_new_host_keys)
    from dnet.transport import held

    t = held.connect(spec, accept_new_host_keys)
    if t is not None:
        return t
    from dnet.transport.ssh import SSHTransport  # paramiko only when this run connects by itself

    return SSHTransport(spec, accept_new_host_keys=accept_new_host_keys)
