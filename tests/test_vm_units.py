"""VM labs and the kernel features they bring, without booting anything: the QEMU provider's names, choices and
refusals, the routing mesh's IPVS table as trace reads it, and the overlay packet sizes doctor expects."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from dnet.doctor import _vxlan_size
from dnet.errors import DnetError
from dnet.lab import libvirt, provider, qemu
from dnet.trace import _ipvs
from tests.lablib import dnet

ROOT = Path(__file__).resolve().parents[1]

IP_VS = """IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port Forward Weight ActiveConn InActConn
FWM  00000100 rr
  -> 0A000005:0000      Masq    1      2          0
  -> 0A00000C:0000      Masq    1      0          0
FWM  00000101 wrr
  -> 0A000009:0000      Masq    1      0          0
TCP  0A000002:0050 rr
  -> 0A000007:0050      Masq    1      0          0
"""


def test_trace_reads_the_real_servers_of_a_firewall_mark_from_proc_net_ip_vs() -> None:
    assert _ipvs(IP_VS, 0x100) == ("rr", ["10.0.0.5", "10.0.0.12"])
    assert _ipvs(IP_VS, 0x101) == ("wrr", ["10.0.0.9"])
    assert _ipvs(IP_VS, 0x102) == ("", [])
    assert _ipvs("", 0x100) == ("", [])


def _session(*nets: tuple[bool, int | None]) -> Any:
    networks = {f"n{i}": SimpleNamespace(driver="overlay", encrypted=enc, mtu=mtu) for i, (enc, mtu) in enumerate(nets)}
    return cast(Any, SimpleNamespace(loaded=SimpleNamespace(model=SimpleNamespace(networks=networks))))


def test_doctor_expects_docker_to_fit_encrypted_overlays_in_the_underlay_by_default() -> None:
    # Docker's default overlay MTU is 1450, 1424 when encrypted: either way 1500-byte packets on the wire
    assert _vxlan_size(_session((False, None)), ["a", "b"]) == (50, 1500)
    assert _vxlan_size(_session((True, None)), ["a", "b"]) == (76, 1500)
    assert _vxlan_size(_session((True, None), (False, 1450)), ["a", "b"]) == (76, 1500)
    assert _vxlan_size(_session((True, 1450)), ["a", "b"]) == (76, 1526)  # an explicit MTU is taken as it is
    assert _vxlan_size(_session((True, None)), ["a"]) == (0, 0)


def test_qemu_names_fit_linux_interface_names_and_differ_per_lab() -> None:
    names = {qemu.bridge_name(f"lab{i}") for i in range(200)}
    assert len(names) == 200
    longest = max(names, key=len)
    assert len(f"{longest}-15") <= 15  # the taps are BRIDGE-N


def test_qemu_is_a_lab_provider_and_accel_is_checked() -> None:
    assert "qemu" in provider.PROVIDERS and provider.get("qemu").name == "qemu"
    with pytest.raises(DnetError, match="--accel fast: use one of auto, kvm, tcg"):
        qemu.choose_accel("fast", print)
    assert qemu.choose_accel("tcg", print) == "tcg"


def test_accel_is_refused_for_providers_that_run_no_vms() -> None:
    r = dnet("lab", "up", "--name", "x", "--accel", "tcg")
    assert r.returncode == 1
    assert r.stderr == ("error: --accel is for VM labs (--provider qemu or libvirt); the docker provider does not "
                        "take it\n")


def test_bare_vm_labs_are_refused_before_anything_starts() -> None:
    with pytest.raises(DnetError, match="--bare is for container labs: VM nodes always have an engine"):
        qemu.up("x", 2, "192.168.120.0/24", True, print)


def test_libvirt_is_a_lab_provider_and_its_vagrantfile_ships_unchanged() -> None:
    assert provider.get("libvirt").name == "libvirt"
    shipped = Path(libvirt.__file__).parents[1] / "files" / "vagrant"
    for rel in ("Vagrantfile", "libvirt/Vagrantfile"):  # the package carries a copy of vagrant/
        assert (shipped / rel).read_text() == (ROOT / "vagrant" / rel).read_text(), rel
    with pytest.raises(DnetError, match="--bare is for container labs: VM nodes always have an engine"):
        libvirt.up("x", 2, "192.168.120.0/24", True, print)
    with pytest.raises(DnetError, match=r"^--subnet 192.168.121.0/25 overlaps vagrant-libvirt's management network "
                                        r"192.168.121.0/24; pick another$"):
        libvirt.up("x", 2, "192.168.121.0/25", False, print)


def test_the_libvirt_vagrantfile_passes_vagrant_validate_with_dnets_settings(tmp_path: Path) -> None:
    """vagrant-libvirt checks every setting dnet passes (and that the bridge exists): a real `vagrant validate`."""
    key = tmp_path / "id_ed25519"
    key.write_text("not a key\n")
    skip = ("lo", "docker", "virbr", "vnet", "macvtap", "veth")
    dev = sorted(p.name for p in Path("/sys/class/net").iterdir() if not p.name.startswith(skip))[0]
    env = {**os.environ, "VAGRANT_CWD": str(libvirt.VAGRANT_DIR), "VAGRANT_DEFAULT_PROVIDER": "libvirt",
           "VAGRANT_DOTFILE_PATH": str(tmp_path / "vagrant"), "DNET_LAB_NAME": "t",
           "DNET_VM_NODES": "node1=52:54:00:a8:67:0b,node2=52:54:00:a8:67:0c", "DNET_VM_BOX": "dnet/vm-test",
           "DNET_VM_KERNEL": "/k", "DNET_VM_INITRD": "/i", "DNET_VM_CMDLINE": qemu.CMDLINE, "DNET_VM_BRIDGE": dev,
           "DNET_LAB_KEY": str(key), "DNET_VM_CONSOLES": str(tmp_path)}
    r = subprocess.run(["vagrant", "validate"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    env["DNET_VM_BRIDGE"] = "no-such-br"
    r = subprocess.run(["vagrant", "validate"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "referencing host device 'no-such-br' which does not exist" in r.stderr


def test_libvirt_down_removes_only_its_own_labs_domains_and_disks() -> None:
    assert libvirt.owned("web", "dnet-lab-web-node1") and libvirt.owned("web", "dnet-lab-web-node12-seed.img")
    assert libvirt.owned("web", "dnet-lab-web-node2.img")
    for other in ("dnet-lab-web-2-node1", "dnet-lab-web-node1-node1", "dnet-lab-webx-node1", "dnet-lab-web-upstream",
                  "dnet-vm-abc-vmlinuz", "dnet-lab-web-node1.img.bak"):
        assert not libvirt.owned("web", other), other


def test_the_vagrant_provider_never_picks_libvirt_by_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """Vagrant's libvirt provider would fetch its box from Vagrant Cloud: `--provider vagrant` takes docker unless
    told (VAGRANT_DEFAULT_PROVIDER) or VirtualBox is there; `--provider libvirt` is dnet's own image."""
    from dnet.lab import vagrant

    monkeypatch.delenv("VAGRANT_DEFAULT_PROVIDER", raising=False)
    monkeypatch.setattr("dnet.lab.vagrant.shutil.which",
                        lambda tool: f"/usr/bin/{tool}" if tool != "VBoxManage" else None)
    assert vagrant.provider() == "docker"
    monkeypatch.setenv("VAGRANT_DEFAULT_PROVIDER", "libvirt")
    assert vagrant.provider() == "libvirt"
