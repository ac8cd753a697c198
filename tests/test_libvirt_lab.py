"""VM labs made by Vagrant with vagrant-libvirt (`--provider libvirt`): the rig the project names, on libvirtd.

One 2-VM lab for the module through dnet's pytest marker: the VM image (shared with the qemu labs) becomes a
Vagrant box once, `vagrant up` makes the domains, and the VMs carry Debian's own kernel. What test_vm_lab proves in
depth on `--provider qemu` (findings, trace, doctor) runs on the same image; here: that Vagrant made and can reach
the VMs, that the routing mesh and an encrypted overlay verify on them, that netem acts on the lab NIC (the
guest's second NIC, renamed eth0), and that `lab down` leaves no domain, disk or network."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dnet.lab import libvirt, qemu, vmimage
from dnet.lab.state import LabState, labs_dir
from dnet.pytest_plugin import DnetLab
from tests.lablib import dnet, dnet_json, http_get, node_sh
from tests.test_vm_lab import WORKLOADS

pytestmark = [pytest.mark.lab, pytest.mark.timeout(1800), pytest.mark.dnet_lab(provider="libvirt", nodes=2)]
_APPLIED: dict[str, Path] = {}


@pytest.fixture
def vms(dnet_lab: DnetLab, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """The marker's lab, applied once (a service published in ingress mode with its one task on node1)."""
    if dnet_lab.name not in _APPLIED:
        inv = tmp_path_factory.mktemp("libvirt") / "lab.yml"
        # http egress only, as in test_vm_lab: the upstream's https answers one TLS handshake at a time
        inv.write_text(dnet_lab.inventory.read_text().replace("  - https://upstream.lab/\n", "") + WORKLOADS)
        r = dnet("apply", "-i", str(inv), "--yes", timeout=900)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        _APPLIED[dnet_lab.name] = inv
    return dnet_lab.name, _APPLIED[dnet_lab.name]


def _vagrant(state: LabState, *args: str) -> str:
    r = subprocess.run(["vagrant", *args], env=libvirt._env(state), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return r.stdout


def test_vagrant_made_the_vms_boots_the_image_kernel_and_reaches_them(vms: tuple[str, Path]) -> None:
    name, _ = vms
    state = LabState.load(name)
    assert state.provider == "libvirt"
    rc, out = dnet_json("lab", "status", "--name", name)
    assert rc == 0
    rows = {n["node"]: n for n in out["nodes"]}
    assert {rows[n]["state"] for n in ("node1", "node2")} == {"running"}
    assert rows["node1"]["container"] == f"dnet-lab-{name}-node1"
    machine = [ln.split(",") for ln in _vagrant(state, "status", "--machine-readable").splitlines()]
    assert sorted((p[1], p[3]) for p in machine if len(p) > 3 and p[2] == "state") == [("node1", "running"),
                                                                                       ("node2", "running")]
    # Vagrant's own SSH goes over its management network; the guest has the lab address on eth0
    eth0 = _vagrant(state, "ssh", "node2", "-c", "ip -br -4 addr show eth0; ip -br -4 addr show mgmt0")
    assert f"{state.nodes[1].address}/24" in eth0 and "mgmt0" in eth0
    xml = subprocess.run(["virsh", "-c", libvirt.URI, "dumpxml", f"dnet-lab-{name}-node1"], capture_output=True,
                         text=True).stdout
    assert f"dnet-vm-{vmimage.recipe()}-vmlinuz</kernel>" in xml
    assert f"<cmdline>{qemu.CMDLINE}</cmdline>" in xml
    assert f"<source bridge='{qemu.bridge_name(name)}'/>" in xml
    # the seed disk carries the VM's SSH host key: only root reads it (libvirt hands it to QEMU's user)
    seed = libvirt.pool_dir() / f"dnet-lab-{name}-node1-seed.img"
    assert seed.stat().st_mode & 0o077 == 0


def test_the_routing_mesh_and_an_encrypted_overlay_verify_on_vagrant_vms(vms: tuple[str, Path]) -> None:
    name, inv = vms
    tasks = node_sh(name, "node1", "docker service ps web --filter desired-state=running --format '{{.Node}}'")
    assert tasks.split() == ["node1"]
    for n in LabState.load(name).nodes:  # node2 runs no task: IPVS in its own kernel forwards to node1
        assert "dnet probe ok" in http_get(f"http://{n.address}:8080/", timeout=15)
    rc, out = dnet_json("verify", "-i", str(inv))
    assert rc == 0, [(c["from"], c["to"], c["check"], c["detail"]) for c in out["checks"] if not c["ok"]]
    ingress = {(c["from"], c["to"]) for c in out["checks"] if c.get("mode") == "ingress" and c["ok"]}
    assert {("operator", "node1:8080"), ("operator", "node2:8080"), ("node1", "node2:8080")} <= ingress
    enc = [c for c in out["checks"] if c.get("encrypted") == "true" and c["check"].startswith("mtu")]
    assert enc and all(c["ok"] and c["detail"].startswith("1424-byte packets") for c in enc)


def test_netem_delay_acts_on_the_lab_nic(vms: tuple[str, Path]) -> None:
    name, _ = vms
    node2 = LabState.load(name).nodes[1].address

    def rtt() -> float:
        out = node_sh(name, "node1", f"ping -c 5 -i 0.2 -q {node2} | tail -1")
        return float(out.split("=")[1].split("/")[1])

    before = rtt()
    assert dnet("lab", "fault", "--name", name, "delay", "node2", "200").returncode == 0
    try:
        delayed = rtt()
    finally:
        assert dnet("lab", "fault", "--name", name, "heal").returncode == 0
    assert 180 <= delayed - before <= 300, (before, delayed)
    assert rtt() < before + 50


def test_down_leaves_no_domain_disk_or_network(vms: tuple[str, Path]) -> None:
    name, _ = vms
    r = dnet("lab", "down", "--name", name)
    assert r.returncode == 0, r.stderr
    domains = subprocess.run(["virsh", "-c", libvirt.URI, "list", "--all", "--name"], capture_output=True,
                             text=True).stdout.split()
    assert not [d for d in domains if d.startswith(f"dnet-lab-{name}-")]
    assert not list(libvirt.pool_dir().glob(f"dnet-lab-{name}-*"))
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert qemu.bridge_name(name) not in links
    nets = subprocess.run(["docker", "network", "ls", "--filter", f"label=dnet.lab={name}", "-q"],
                          capture_output=True, text=True).stdout
    assert nets.strip() == "" and not (labs_dir() / name).exists()
