"""A paramiko connection of this process's own, opened on first use, for transports whose commands go elsewhere."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dnet.inventory.resolve import HostSpec
    from dnet.transport.ssh import SSHTransport


class DirectOnDemand:
    """For transports whose commands do not go over a paramiko connection of this process (the holder's, `ssh`):
    one is opened on first use, for what they cannot carry (a runbook's Fabric connection, a tunnel's channels)."""

    spec: HostSpec
    accept_new: bool
    _direct: SSHTransport | None = None

    def direct(self) -> SSHTransport:
        if self._direct is None:
            from dnet.transport.ssh import SSHTransport

            self._direct = SSHTransport(self.spec, accept_new_host_keys=self.accept_new)
        return self._direct

    @property
    def conn(self) -> Any:
        """A Fabric connection for runbook Python steps."""
        return self.direct().conn

    def close(self) -> None:
        if self._direct is not None:
            self._direct.close()
