"""Vagrant labs: the same lab as real VMs (virtualbox/libvirt) or as docker-provider machines."""
from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

from dnet.errors import DnetError
from dnet.lab.dind import wait_all
from dnet.lab.image import build_node_image, node_image_tag
from dnet.lab.state import LabState

VAGRANT_DIR = Path(__file__).resolve().parents[1] / "files" / "vagrant"  # a copy of vagrant/ (a test keeps it equal)
Log = Callable[[str], None]


def provider() -> str:
    """The Vagrant provider to use: VAGRANT_DEFAULT_PROVIDER, else virtualbox if present, else docker. Never libvirt
    by itself: its box comes from Vagrant Cloud, and `dnet lab up --provider libvirt` makes VMs from dnet's own image
    with no download."""
    if os.environ.get("VAGRANT_DEFAULT_PROVIDER"):
        return os.environ["VAGRANT_DEFAULT_PROVIDER"]
    if shutil.which("VBoxManage"):
        return "virtualbox"
    return "docker"


def _free_ports(names: list[str]) -> str:
    """One free 127.0.0.1 port per machine, as "name=port,...": all sockets are held until every port is picked."""
    socks = []
    try:
        for _ in names:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return ",".join(f"{n}={s.getsockname()[1]}" for n, s in zip(names, socks, strict=True))
    finally:
        for s in socks:
            s.close()


def _env(state: LabState, nodes: int, bare: bool) -> dict[str, str]:
    prefix = ".".join(state.subnet.split("/")[0].split(".")[:3])
    ports = state.dir / "ssh-ports"
    return {**os.environ, "DNET_SSH_PORTS": ports.read_text().strip() if ports.exists() else "",
            "VAGRANT_CWD": str(VAGRANT_DIR), "VAGRANT_DOTFILE_PATH": str(state.dir / "vagrant"),
            "VAGRANT_CHECKPOINT_DISABLE": "1",  # no version check with HashiCorp: labs talk only to their hosts
            "DNET_NODES": str(nodes), "DNET_SUBNET_PREFIX": prefix, "DNET_LAB_NAME": state.name,
            "DNET_NODE_IMAGE": node_image_tag(bare), "DNET_LAB_KEY": str(state.key), "DNET_BARE": "1" if bare else "0",
            "DNET_LAB_PUBKEY": (state.dir / "id_ed25519.pub").read_text().strip()}


def _vagrant(args: list[str], env: dict[str, str], log: Log | None = None, logfile: Path | None = None) -> str:
    if not shutil.which("vagrant"):
        raise DnetError("vagrant is not installed: apt-get install vagrant")
    proc = subprocess.Popen(["vagrant", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if log and line.startswith("==>"):
            log(line.strip())
    proc.wait()
    text = "".join(lines)
    if logfile:
        with open(logfile, "a", encoding="utf-8") as fh:
            fh.write(text)
    if proc.returncode != 0:
        raise DnetError(f"vagrant {' '.join(args)} failed ({proc.returncode}):\n" + "".join(lines[-15:]).strip())
    return text


def up(name: str, nodes: int, subnet: str, bare: bool, log: Log) -> LabState:
    """`vagrant up` the lab, record host keys, wait for sshd and dockerd."""
    net = ipaddress.ip_network(subnet)
    if net.prefixlen != 24 or net.version != 4:
        raise DnetError("the Vagrant lab needs an IPv4 /24 --subnet (nodes at .11, .12, ...)")
    state = LabState.layout(name, "vagrant", net, nodes)
    if (state.dir / "lab.json").exists():
        raise DnetError(f"a lab named '{name}' exists already; remove it with dnet lab down --name {name}")
    which = provider()
    if which == "docker":
        t = build_node_image(bare=bare, log=log)
        log(f"node image {node_image_tag(bare)}: " + (f"built in {t:.1f}s" if t else "cached"))
    state.make_key()
    state.save()
    if which == "docker":
        machines = [*([state.upstream] if state.upstream else []), *state.nodes]
        (state.dir / "ssh-ports").write_text(_free_ports([n.name for n in machines]) + "\n")
    env = _env(state, nodes, bare)
    log(f"vagrant up --provider={which} ({nodes} nodes + upstream); log in {state.dir / 'vagrant.log'}")
    try:
        _vagrant(["up", f"--provider={which}"], env, log, state.dir / "vagrant.log")
        lines = []
        assert state.upstream
        for n in [state.upstream, *state.nodes]:
            if which == "docker":
                n.container = f"dnet-vagrant-{name}-{n.name}"
            key = _vagrant(["ssh", n.name, "-c", "cat /etc/ssh/ssh_host_ed25519_key.pub"], env).split()
            lines.append(f"{n.address} {key[0]} {key[1]}")
        state.known_hosts.write_text("\n".join(lines) + "\n")
        state.save()
        wait_all(state, bare, log)
    except (DnetError, KeyboardInterrupt):
        log(f"lab '{name}' failed to come up; destroying its machines")
        down(state, log)
        raise
    return state


def down(state: LabState, log: Log) -> None:
    """`vagrant destroy -f` the lab's machines and remove their engine volumes and the lab state."""
    nodes = len(state.nodes)
    if (state.dir / "vagrant").exists():
        _vagrant(["destroy", "-f"], _env(state, nodes, False))
    for n in state.nodes:
        subprocess.run(["docker", "volume", "rm", "-f", f"dnet-vagrant-{state.name}-{n.name}-docker"],
                       capture_output=True)
    state.remove()
    log(f"lab '{state.name}': vagrant machines destroyed")


def status(state: LabState) -> list[dict[str, str]]:
    """One row per machine, its state as `vagrant status` reports it."""
    states: dict[str, str] = {}
    if (state.dir / "vagrant").exists():
        out = _vagrant(["status", "--machine-readable"], _env(state, len(state.nodes), False))
        for line in out.splitlines():
            parts = line.split(",")
            if len(parts) >= 4 and parts[2] == "state":
                states[parts[1]] = parts[3]
    nodes = [*([state.upstream] if state.upstream else []), *state.nodes]
    return [{"lab": state.name, "node": n.name, "role": n.role, "address": n.address,
             "state": states.get(n.name, "not created"), "container": n.container} for n in nodes]


class VagrantProvider:
    """Vagrant machines (virtualbox, libvirt, or Vagrant's docker provider)."""

    name = "vagrant"

    def up(self, name: str, nodes: int, subnet: str, bare: bool, log: Log, accel: str = "auto") -> LabState:
        from dnet.lab.provider import no_accel

        no_accel(self.name, accel)
        return up(name, nodes, subnet, bare, log)

    def down(self, name: str, state: LabState | None, log: Log) -> None:
        if state is None:
            raise DnetError(f"lab '{name}' has no saved state: remove its machines with vagrant destroy")
        down(state, log)

    def status(self, name: str, state: LabState | None) -> list[dict[str, str]]:
        return status(state) if state else []


PROVIDER = VagrantProvider()
