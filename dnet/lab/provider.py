"""Lab providers: one interface (up, down, status, ssh, faults) and the map of them, like testinfra's BACKENDS.

A provider is one module with a `PROVIDER` object; adding one (say, VMs under QEMU) is a new module and a line in
PROVIDERS. `dnet lab`, `api.lab_up`/`lab_down` and the pytest marker reach providers only through `get()`."""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Protocol

from dnet.errors import DnetError
from dnet.lab.fault import Faults, for_lab
from dnet.lab.state import LabState

Log = Callable[[str], None]
Row = dict[str, str]  # lab, node, role, address, state, container

# provider name -> the module that holds its PROVIDER (imported only when used: each needs its own tools)
PROVIDERS: dict[str, str] = {
    "docker": "dnet.lab.dind",
    "vagrant": "dnet.lab.vagrant",
    "qemu": "dnet.lab.qemu",
    "libvirt": "dnet.lab.libvirt",
}


class Provider(Protocol):
    """What every lab provider does. A lab's state (LabState) records which provider made it."""

    name: str

    def up(self, name: str, nodes: int, subnet: str, bare: bool, log: Log, accel: str = "auto") -> LabState:
        """Start the nodes and the upstream host, trust their host keys, wait for sshd and dockerd (accel: how VMs
        run, for providers that make VMs)."""
        ...

    def down(self, name: str, state: LabState | None, log: Log) -> None:
        """Remove exactly what the lab made, whatever state it is in (state is None when none was saved)."""
        ...

    def status(self, name: str, state: LabState | None) -> list[Row]:
        """One row per node (upstream included)."""
        ...


def get(name: str) -> Provider:
    """The provider of that name."""
    if name not in PROVIDERS:
        raise DnetError(f"provider {name!r}: use one of {', '.join(PROVIDERS)}")
    provider: Provider = importlib.import_module(PROVIDERS[name]).PROVIDER
    return provider


def no_accel(provider: str, accel: str) -> None:
    """Providers that do not run VMs themselves take no --accel."""
    if accel != "auto":
        raise DnetError(f"--accel is for VM labs (--provider qemu or libvirt); the {provider} provider does not "
                        "take it")


def of(state: LabState | None) -> Provider:
    """The provider that made a lab (docker when no state was saved: its containers carry the lab's label)."""
    return get(state.provider if state else "docker")


def load(name: str) -> LabState | None:
    try:
        return LabState.load(name)
    except DnetError:
        return None


def ssh_args(state: LabState, node: str, command: list[str], quiet: bool = False) -> list[str]:
    """The `ssh` command line that logs in to a lab node with the lab's key and known_hosts (every provider's nodes
    run sshd on their lab address)."""
    nodes = {n.name: n for n in [*state.nodes, *([state.upstream] if state.upstream else [])]}
    if node not in nodes:
        raise DnetError(f"lab '{state.name}' has no node '{node}'; it has {', '.join(nodes)}")
    n = nodes[node]
    return ["ssh", "-i", str(state.key), "-o", f"UserKnownHostsFile={state.known_hosts}", "-o",
            "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes", *(["-q"] if quiet else []),
            "-p", str(n.ssh_port), f"root@{n.address}", *command]


def faults(name: str) -> Faults:
    """Network faults inside a lab's nodes, over SSH (the same for every provider)."""
    return for_lab(name)
