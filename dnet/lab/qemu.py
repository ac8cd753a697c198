"""VM labs under QEMU directly (no Vagrant, no libvirtd): N VMs running Debian's own kernel, so the routing mesh
(IPVS), encrypted overlays (ESP) and netem work as on real servers.

Each VM boots the cached VM image (vmimage.py) from a copy-on-write overlay, with a small seed disk that carries
its address, its SSH host key (made here, so it is trusted before the VM ever answers) and the lab's CA. Its NIC
is a tap on the lab's Docker bridge network, beside the upstream host container, so this machine reaches it at
its lab address like a container node. KVM is used only where a short probe shows it runs natively; otherwise
QEMU's emulator (TCG)."""
from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from dnet.errors import DnetError
from dnet.lab import dind, vmimage
from dnet.lab.image import build_node_image, node_image_tag
from dnet.lab.state import LabState, Node, labs_dir

if TYPE_CHECKING:
    from docker import DockerClient

Log = Callable[[str], None]
QEMU = "qemu-system-x86_64"
MEMORY = os.environ.get("DNET_VM_MEMORY", "1536")  # MiB per VM
CPUS = os.environ.get("DNET_VM_CPUS", "2")
ACCELS = ("auto", "kvm", "tcg")
CMDLINE = "root=/dev/vda rw console=ttyS0 net.ifnames=0 panic=-1 init=/usr/local/sbin/dnet-vm-init"


def bridge_name(lab: str) -> str:
    """The lab network's Linux bridge (15 characters at most, as Linux allows): its taps are BRIDGE-N."""
    return "dq" + hashlib.sha256(lab.encode()).hexdigest()[:8]


def _tools() -> None:
    for tool, pkg in ((QEMU, "qemu-system-x86"), ("qemu-img", "qemu-utils"), ("ip", "iproute2"),
                      ("ssh-keygen", "openssh-client")):
        if not shutil.which(tool):
            raise DnetError(f"VM labs need {tool}: apt-get install {pkg}")
    if not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        raise DnetError("VM labs need /dev/net/tun (tap devices) and the right to use it: run as root")


# A boot sector that exits QEMU at once through isa-debug-exit (out 0xf4): under a KVM that runs guests natively it
# finishes in well under a second; under a KVM that emulates them (PVM, docs/guides/vms.md) SeaBIOS alone takes
# seconds.
_EXIT_SECTOR = bytes([0xB0, 0x01, 0xE6, 0xF4, 0xF4]).ljust(510, b"\0") + b"\x55\xaa"


def kvm_runs_natively(limit: float = 2.0) -> bool:
    """Whether KVM here boots a guest at native speed (a probe of about a second)."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    with tempfile.NamedTemporaryFile(suffix=".img") as f:
        f.write(_EXIT_SECTOR)
        f.flush()
        start = time.monotonic()
        try:
            r = subprocess.run([QEMU, "-accel", "kvm", "-display", "none", "-nodefaults", "-device",
                                "isa-debug-exit,iobase=0xf4,iosize=1", "-drive", f"file={f.name},format=raw"],
                               capture_output=True, timeout=limit * 3)
        except subprocess.TimeoutExpired:
            return False
        return r.returncode == 3 and time.monotonic() - start < limit


def choose_accel(accel: str, log: Log) -> str:
    if accel not in ACCELS:
        raise DnetError(f"--accel {accel}: use one of {', '.join(ACCELS)}")
    if accel == "auto":
        accel = "kvm" if kvm_runs_natively() else "tcg"
        if accel == "tcg":
            log("KVM does not run guests natively here: VMs run under QEMU's emulator (TCG), several times slower "
                "than real hardware (--accel kvm forces KVM)")
    return accel


Net = ipaddress.IPv4Network | ipaddress.IPv6Network


def start_checks(name: str, nodes: int, subnet: str, bare: bool, accel: str, log: Log, tools: Callable[[], None],
                 net_check: Callable[[Net], None] | None = None) -> tuple[DockerClient, Net, str]:
    """What every VM lab checks before it makes anything (its tools, subnet, name, acceleration); returns the
    engine client, the lab's subnet and how the VMs run (kvm or tcg)."""
    if bare:
        raise DnetError("--bare is for container labs: VM nodes always have an engine")
    net = dind.lab_subnet(subnet, nodes, 16)
    if net.version != 4:
        raise DnetError(f"--subnet {subnet}: VM labs need an IPv4 subnet")
    if net_check:
        net_check(net)
    tools()  # after the input checks: a wrong flag is answered even where the tools are missing
    c = dind.client()
    dind._check_free(c, name, net)
    if (labs_dir() / name / "lab.json").exists():
        raise dind.LabExists(f"a lab named '{name}' exists already; remove it with dnet lab down --name {name}")
    return c, net, choose_accel(accel, log)


def up(name: str, nodes: int, subnet: str, bare: bool, log: Log, accel: str = "auto") -> LabState:
    """Start the VMs and the upstream host; wait until every VM answers on SSH with its engine and probe ready."""
    c, net, how = start_checks(name, nodes, subnet, bare, accel, log, _tools)
    return dind.or_remove(name, log, lambda: _up(c, name, nodes, net, how, log), down)

def _up(c: DockerClient, name: str, nodes: int, net: Net, accel: str, log: Log) -> LabState:
    t = vmimage.build(log=log)
    log(f"VM image {vmimage.recipe()}: " + (f"built in {t:.1f}s" if t else "cached"))
    t = build_node_image(log=log)  # the upstream host is a container, as in container labs
    log(f"node image {node_image_tag()}: " + (f"built in {t:.1f}s" if t else "cached"))
    state = LabState.layout(name, "qemu", net, nodes)
    assert state.upstream
    pub = state.make_key()
    state.save()
    bridge = bridge_name(name)
    netname = dind.make_network(c, name, net, bridge)
    ca = dind.start_upstream(dind._Starter(c, name, netname, log), state, pub, node_image_tag())
    keys = [_start_vm(state, i, n, bridge, pub, ca, accel) for i, n in enumerate(state.nodes)]
    state.save()
    dind._trust_host_keys(c, state, [state.upstream])
    with state.known_hosts.open("a") as fh:
        fh.write("".join(f"{n.address} {key}\n" for n, key in zip(state.nodes, keys, strict=True)))
    log(f"started {nodes} VMs ({accel}, {CPUS} CPUs and {MEMORY} MiB each) and the upstream host on {net}; waiting "
        "for sshd and dockerd")
    try:
        dind.wait_all(state, False, log, timeout=120 if accel == "kvm" else 420)
    except DnetError as exc:  # the consoles are gone with the lab: say what they last printed
        tails = [f"{n.name}'s console ends: " + " | ".join(console_tail(state.dir / n.name / "console.log"))
                 for n in state.nodes]
        raise DnetError(f"{exc}; " + "; ".join(tails)) from None
    return state


def console_tail(path: Path, lines: int = 6) -> list[str]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ["(no console output)"]
    return [ln.strip() for ln in text.splitlines() if ln.strip()][-lines:]


def _run(cmd: list[str], what: str) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise DnetError(f"{what} failed ({r.returncode}): {(r.stderr or r.stdout).strip()[-500:]}")
    return r.stdout


def lab_mac(n: Node) -> str:
    """The MAC of a VM's lab NIC, from its address (unique within the lab's subnet)."""
    return "52:54:00:" + ":".join(f"{int(o):02x}" for o in n.address.split(".")[1:])


def make_seed(state: LabState, n: Node, pub: str, ca: str, image: Path, extra: dict[str, str] | None = None) -> str:
    """Write a VM's seed disk (its address, SSH host key, the lab's key and CA) to `image`; return its SSH host key
    line ("ssh-ed25519 AAAA...")."""
    seed = state.dir / n.name / "seed"
    seed.mkdir(parents=True, mode=0o700)  # it holds the VM's SSH host key
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{n.name}.{state.name}", "-f",
          str(seed / "ssh_host_ed25519_key")], "ssh-keygen")
    net = ipaddress.ip_network(state.subnet)
    files = {"hostname": n.name, "address": f"{n.address}/{net.prefixlen}", "gateway": str(next(net.hosts())),
             "dns": state.upstream.address if state.upstream else "", "authorized_keys": pub, "ca.crt": ca,
             **(extra or {})}
    for fname, text in files.items():
        (seed / fname).write_text(text.strip() + "\n")
    image.touch(mode=0o600)
    _run(["mkfs.ext4", "-q", "-F", "-d", str(seed), str(image), "4M"], "mkfs.ext4 (seed disk)")
    kind, key = (seed / "ssh_host_ed25519_key.pub").read_text().split()[:2]
    return f"{kind} {key}"


def _start_vm(state: LabState, i: int, n: Node, bridge: str, pub: str, ca: str, accel: str) -> str:
    """Start one VM; return its SSH host key line ("ssh-ed25519 AAAA...")."""
    vm = state.dir / n.name
    hostkey = make_seed(state, n, pub, ca, vm / "seed.img")
    base = vmimage.image_dir()
    _run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(base / "root.img"), str(vm / "disk.qcow2")],
         "qemu-img create")
    tap = f"{bridge}-{i}"
    mac = lab_mac(n)
    cmd = [QEMU, "-name", f"dnet-lab-{state.name}-{n.name}", "-nodefaults", "-display", "none", "-vga", "none",
           "-accel", "kvm" if accel == "kvm" else "tcg,thread=multi", "-cpu", "host" if accel == "kvm" else "max",
           "-smp", CPUS, "-m", MEMORY, "-kernel", str(base / "vmlinuz"), "-initrd", str(base / "initrd.img"),
           "-append", CMDLINE,
           "-drive", f"file={vm / 'disk.qcow2'},if=virtio,format=qcow2",
           "-drive", f"file={vm / 'seed.img'},if=virtio,format=raw,readonly=on",
           "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no",
           "-device", f"virtio-net-pci,netdev=n0,mac={mac}",
           "-device", "virtio-rng-pci", "-serial", f"file:{vm / 'console.log'}", "-monitor", "none", "-no-reboot",
           "-daemonize", "-pidfile", str(vm / "qemu.pid")]
    _run(cmd, f"starting VM {n.name} ({QEMU})")
    _run(["ip", "link", "set", tap, "master", bridge, "up"], f"attaching {tap} to {bridge}")
    n.container = f"dnet-lab-{state.name}-{n.name}"
    return hostkey


def _pid(vm: Path) -> int | None:
    """The VM's QEMU process, if it still runs (checked against its command line, never a reused pid)."""
    try:
        pid = int((vm / "qemu.pid").read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, ValueError):
        return None
    return pid if str(vm / "disk.qcow2") in cmdline else None


def down(name: str, log: Log) -> None:
    """Stop the lab's VMs (whatever state they are in), then remove its network, upstream host and files."""
    lab = labs_dir() / name
    stopped = 0
    for vm in sorted(p.parent for p in lab.glob("*/qemu.pid")):
        pid = _pid(vm)
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # the VMs are disposable: no shutdown to wait for
            for _ in range(100):
                if _pid(vm) is None:
                    break
                time.sleep(0.05)
            stopped += 1
    bridge = bridge_name(name)
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    for line in links.splitlines():  # QEMU removes its taps as it exits; this is for a run killed half-way
        dev = line.split(":")[1].strip().split("@")[0] if line.count(":") > 1 else ""
        if dev.startswith(f"{bridge}-"):
            subprocess.run(["ip", "link", "del", dev], capture_output=True)
    log(f"lab '{name}': stopped {stopped} VMs")
    dind.down(name, log)


def status(name: str, state: LabState | None) -> list[dict[str, str]]:
    """The upstream container's row, and one row per VM: running while its QEMU process runs."""
    rows = [r for r in dind.status(name) if r["role"] == "upstream"]
    for n in state.nodes if state else []:
        pid = _pid(labs_dir() / name / n.name)
        rows.append({"lab": name, "node": n.name, "role": n.role, "address": n.address,
                     "state": "running" if pid else "stopped", "container": f"qemu pid {pid}" if pid else ""})
    return rows


class QemuProvider:
    """VMs under QEMU on this machine (KVM where it runs natively, else TCG)."""

    name = "qemu"

    def up(self, name: str, nodes: int, subnet: str, bare: bool, log: Log, accel: str = "auto") -> LabState:
        return up(name, nodes, subnet, bare, log, accel)

    def down(self, name: str, state: LabState | None, log: Log) -> None:
        down(name, log)

    def status(self, name: str, state: LabState | None) -> list[dict[str, str]]:
        return status(name, state)


PROVIDER = QemuProvider()
