"""How commands reach a host: one reused SSH connection (Fabric/paramiko) or the local shell."""
from __future__ import annotations

from typing import TYPE_CHECKING

from dnet.transport.base import Result, Transport
from dnet.transport.local import LocalTransport
from dnet.transport.ssh import SSHTransport, connections_opened

if TYPE_CHECKING:
    from dnet.inventory.resolve import HostSpec

__all__ = ["LocalTransport", "Result", "SSHTransport", "Transport", "connect", "connections_opened"]


def connect(spec: HostSpec, accept_new_host_keys: bool = False) -> Transport:
    """Open the transport a host needs (local for address 'local', else SSH)."""
    if spec.local:
        return LocalTransport(spec.name)
    return SSHTransport(spec, accept_new_host_keys=accept_new_host_keys)
