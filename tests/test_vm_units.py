"""VM labs and the kernel features they bring, without booting anything: the QEMU provider's names, choices and
refusals, the routing mesh's IPVS table as trace reads it, and the overlay packet sizes doctor expects."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest

from dnet.doctor import _vxlan_size
from dnet.errors import DnetError
from dnet.lab import provider, qemu
from dnet.trace import _ipvs
from tests.lablib import dnet

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
    assert r.stderr == "error: --accel is for VM labs (--provider qemu); the docker provider does not take it\n"


def test_bare_vm_labs_are_refused_before_anything_starts() -> None:
    with pytest.raises(DnetError, match="--bare is for container labs: VM nodes always have an engine"):
        qemu.up("x", 2, "192.168.120.0/24", True, print)
