"""VM labs under Vagrant and vagrant-libvirt: the same VMs as the qemu provider (dnet's VM image, Debian's own
kernel), made and destroyed by `vagrant up`/`destroy` through libvirtd.

The VM image becomes a Vagrant box (`dnet/vm-RECIPE`, added once). Each VM boots the image's kernel directly, with
a seed disk in libvirt's storage pool (address, SSH host key made here, the lab's key and CA). Its first NIC is
vagrant-libvirt's management network (DHCP, what `vagrant ssh` uses); its second joins the lab's Docker bridge
beside the upstream host container, and the guest names it eth0, so dnet reaches it at its lab address."""
from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from dnet.errors import DnetError
from dnet.lab import dind, qemu, vmimage
from dnet.lab.image import build_node_image, node_image_tag
from dnet.lab.state import LabState, labs_dir

if TYPE_CHECKING:
    from docker import DockerClient

Log = Callable[[str], None]
VAGRANT_DIR = Path(__file__).resolve().parents[1] / "files" / "vagrant" / "libvirt"  # a copy of vagrant/libvirt
URI = "qemu:///system"
POOL = "default"  # vagrant-libvirt's storage pool (it makes it at /var/lib/libvirt/images when missing)
MGMT = ipaddress.ip_network("192.168.121.0/24")  # vagrant-libvirt's management network (made on the first up)


def _cmd(args: list[str], what: str, timeout: float = 120) -> str:
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DnetError(f"{what}: {exc}") from None
    if r.returncode != 0:
        raise DnetError(f"{what} failed ({r.returncode}): {(r.stderr or r.stdout).strip()[-500:]}")
    return r.stdout


def virsh(*args: str, what: str = "") -> str:
    return _cmd(["virsh", "-q", "-c", URI, *args], what or f"virsh {args[0]}")


def _tools() -> None:
    for tool, pkg in (("vagrant", "vagrant"), ("virsh", "libvirt-clients"), ("qemu-img", "qemu-utils"),
                      ("ssh-keygen", "openssh-client"), ("mkfs.ext4", "e2fsprogs")):
        if not shutil.which(tool):
            raise DnetError(f"libvirt labs need {tool}: apt-get install {pkg}")
    if "vagrant-libvirt" not in _cmd(["vagrant", "plugin", "list"], "vagrant plugin list"):
        raise DnetError("libvirt labs need Vagrant's libvirt plugin: apt-get install vagrant-libvirt "
                        "(or vagrant plugin install vagrant-libvirt)")
    try:
        virsh("uri", what="connecting to libvirtd")
    except DnetError as exc:
        raise DnetError(f"{exc}; is libvirtd running? (systemctl start libvirtd, or libvirtd -d as root)") from None


def pool_dir() -> Path:
    """Where libvirt's storage pool keeps its files (made, as vagrant-libvirt would make it, when missing)."""
    try:
        xml = virsh("pool-dumpxml", POOL)
    except DnetError:
        target = Path("/var/lib/libvirt/images")
        virsh("pool-define-as", POOL, "dir", "--target", str(target), what="defining libvirt's default pool")
        virsh("pool-build", POOL)
        virsh("pool-start", POOL)
        virsh("pool-autostart", POOL)
        return target
    path = ET.fromstring(xml).findtext("target/path")
    if not path:
        raise DnetError(f"libvirt's storage pool '{POOL}' has no target path")
    return Path(path)


def box_name() -> str:
    return f"dnet/vm-{vmimage.recipe()}"


def ensure_box(log: Log) -> float:
    """Add the VM image to Vagrant as a libvirt box unless it is there; return seconds spent (0 when it was)."""
    name = box_name()
    if any(line.split()[:1] == [name] for line in _cmd(["vagrant", "box", "list"], "vagrant box list").splitlines()):
        return 0.0
    start = time.monotonic()
    log(f"making the Vagrant box {name} from the VM image")
    with tempfile.TemporaryDirectory(prefix="box-", dir=vmimage.images_dir()) as tmp:
        box = Path(tmp)
        _cmd(["qemu-img", "convert", "-O", "qcow2", str(vmimage.image_dir() / "root.img"), str(box / "box.img")],
             "qemu-img convert (box disk)", timeout=600)
        size = int(json.loads(_cmd(["qemu-img", "info", "--output=json", str(box / "box.img")], "qemu-img info"))
                   ["virtual-size"]) // 2**30
        (box / "metadata.json").write_text(json.dumps({"provider": "libvirt", "format": "qcow2",
                                                       "virtual_size": size}))
        _cmd(["tar", "-C", str(box), "-cf", str(box / "dnet.box"), "metadata.json", "box.img"], "tar (box)", 600)
        _cmd(["vagrant", "box", "add", "--force", "--name", name, str(box / "dnet.box")], "vagrant box add", 900)
    _drop_old_boxes(log)
    return time.monotonic() - start


def _drop_old_boxes(log: Log) -> None:
    """Remove the boxes, pool volumes and kernel files of earlier image recipes (about 2 GB each), unless some dnet
    VM still exists: its disk is an overlay of its box's volume."""
    if any(d.startswith("dnet-lab-") for d in virsh("list", "--all", "--name").split()):
        return
    for line in _cmd(["vagrant", "box", "list"], "vagrant box list").splitlines():
        old = line.split()[0] if line.split() else ""
        if old.startswith("dnet/vm-") and old != box_name():
            _cmd(["vagrant", "box", "remove", "--force", "--all", old], "vagrant box remove")
            log(f"removed the Vagrant box {old} of an earlier VM image")
    pool, recipe = pool_dir(), vmimage.recipe()
    for f in [*pool.glob("dnet-VAGRANTSLASH-vm-*"), *pool.glob("dnet-vm-*")]:
        if recipe not in f.name:
            f.unlink()
    virsh("pool-refresh", POOL)


def _boot_file(pool: Path, fname: str) -> Path:
    """Where the image's kernel (vmlinuz) or initramfs (initrd.img) is copied for the VMs' QEMU (libvirt's user)."""
    return pool / f"dnet-vm-{vmimage.recipe()}-{fname}"


def _copy_boot_files(pool: Path) -> None:
    for fname in ("vmlinuz", "initrd.img"):
        dest = _boot_file(pool, fname)
        if not dest.exists():
            tmp = dest.with_suffix(".tmp")
            shutil.copy(vmimage.image_dir() / fname, tmp)
            tmp.chmod(0o644)
            tmp.replace(dest)


def domain(lab: str, node: str) -> str:
    """A VM's libvirt domain name (the Vagrantfile's default_prefix plus the machine's name)."""
    return f"dnet-lab-{lab}-{node}"


def _seed(pool: Path, lab: str, node: str) -> Path:
    return pool / f"{domain(lab, node)}-seed.img"


def _env(state: LabState, accel: str = "tcg") -> dict[str, str]:
    pool = pool_dir()
    kernel, initrd = _boot_file(pool, "vmlinuz"), _boot_file(pool, "initrd.img")
    return {**os.environ, "VAGRANT_CWD": str(VAGRANT_DIR), "VAGRANT_DOTFILE_PATH": str(state.dir / "vagrant"),
            "VAGRANT_DEFAULT_PROVIDER": "libvirt", "VAGRANT_CHECKPOINT_DISABLE": "1", "DNET_LAB_NAME": state.name,
            "DNET_VM_NODES": ",".join(f"{n.name}={qemu.lab_mac(n)}" for n in state.nodes),
            "DNET_VM_BOX": box_name(), "DNET_VM_KERNEL": str(kernel), "DNET_VM_INITRD": str(initrd),
            "DNET_VM_CMDLINE": qemu.CMDLINE, "DNET_VM_BRIDGE": qemu.bridge_name(state.name),
            "DNET_VM_DRIVER": "kvm" if accel == "kvm" else "qemu", "DNET_LAB_KEY": str(state.key),
            "DNET_VM_CONSOLES": str(state.dir / "consoles"), "DNET_VM_MEMORY": qemu.MEMORY, "DNET_VM_CPUS": qemu.CPUS}


def _vagrant(args: list[str], env: dict[str, str], log: Log | None, logfile: Path) -> None:
    with open(logfile, "a", encoding="utf-8") as fh:
        proc = subprocess.Popen(["vagrant", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        assert proc.stdout is not None
        tail: list[str] = []
        for line in proc.stdout:
            fh.write(line)
            tail = [*tail[-14:], line]
            if log and line.startswith("==>") and ("Creating domain" in line or "Machine booted" in line):
                log(line.strip())
        proc.wait()
    if proc.returncode != 0:
        raise DnetError(f"vagrant {' '.join(args)} failed ({proc.returncode}); its log is {logfile}:\n"
                        + "".join(tail).strip())


def up(name: str, nodes: int, subnet: str, bare: bool, log: Log, accel: str = "auto") -> LabState:
    """`vagrant up` the VMs (with the upstream host as a container), trust their host keys, wait for sshd and
    dockerd."""
    def off_mgmt(net: qemu.Net) -> None:
        if net.overlaps(MGMT):
            raise DnetError(f"--subnet {subnet} overlaps vagrant-libvirt's management network {MGMT}; pick another")

    c, net, how = qemu.start_checks(name, nodes, subnet, bare, accel, log, _tools, off_mgmt)
    return dind.or_remove(name, log, lambda: _up(c, name, nodes, net, how, log), down)


def _up(c: DockerClient, name: str, nodes: int, net: qemu.Net, accel: str, log: Log) -> LabState:
    t = vmimage.build(log=log)
    log(f"VM image {vmimage.recipe()}: " + (f"built in {t:.1f}s" if t else "cached"))
    t = ensure_box(log)
    log(f"Vagrant box {box_name()}: " + (f"added in {t:.1f}s" if t else "present"))
    t = build_node_image(log=log)
    log(f"node image {node_image_tag()}: " + (f"built in {t:.1f}s" if t else "cached"))
    state = LabState.layout(name, "libvirt", net, nodes)
    assert state.upstream
    pub = state.make_key()
    state.save()
    pool = pool_dir()
    _copy_boot_files(pool)
    netname = dind.make_network(c, name, net, qemu.bridge_name(name))
    ca = dind.start_upstream(dind._Starter(c, name, netname, log), state, pub, node_image_tag())
    keys = [qemu.make_seed(state, n, pub, ca, _seed(pool, name, n.name), {"lab-mac": qemu.lab_mac(n)})
            for n in state.nodes]
    for n in state.nodes:
        n.container = domain(name, n.name)
    state.save()
    virsh("pool-refresh", POOL)  # so vagrant-libvirt finds the seed disks as existing volumes
    (state.dir / "consoles").mkdir(exist_ok=True)
    dind._trust_host_keys(c, state, [state.upstream])
    with state.known_hosts.open("a") as fh:
        fh.write("".join(f"{n.address} {key}\n" for n, key in zip(state.nodes, keys, strict=True)))
    log(f"vagrant up --provider=libvirt: {nodes} VMs ({accel}, {qemu.CPUS} CPUs and {qemu.MEMORY} MiB each) on {net}; "
        f"log in {state.dir / 'vagrant.log'}")
    try:
        _vagrant(["up", "--provider=libvirt"], _env(state, accel), log, state.dir / "vagrant.log")
        dind.wait_all(state, False, log, timeout=120 if accel == "kvm" else 420)
    except DnetError as exc:  # the consoles go with the lab: say what they last printed
        tails = [f"{n.name}'s console ends: " + " | ".join(qemu.console_tail(state.dir / "consoles" / f"{n.name}.log"))
                 for n in state.nodes]
        raise DnetError(f"{exc}; " + "; ".join(tails)) from None
    return state


def owned(lab: str, thing: str) -> bool:
    """Whether a libvirt domain or pool file belongs to this lab (lab `a`'s, never lab `a-2`'s)."""
    return re.fullmatch(rf"dnet-lab-{re.escape(lab)}-node\d+(?:\.img|-seed\.img)?", thing) is not None


def down(name: str, log: Log) -> None:
    """`vagrant destroy -f` the lab's VMs; remove any domain, overlay or seed disk that is left (a run killed
    half-way), then the network, upstream host and files."""
    state_dir = labs_dir() / name
    state = None
    with contextlib.suppress(DnetError):
        state = LabState.load(name)
    if state and (state_dir / "vagrant").exists() and shutil.which("vagrant"):
        with contextlib.suppress(DnetError):
            _vagrant(["destroy", "-f"], _env(state), None, state_dir / "vagrant.log")
    removed, failed = 0, ""
    try:
        for dom in virsh("list", "--all", "--name").split() if shutil.which("virsh") else []:
            if owned(name, dom):
                with contextlib.suppress(DnetError):
                    virsh("destroy", dom)  # fails when it is not running
                virsh("undefine", dom)
                removed += 1
        if shutil.which("virsh") and POOL in virsh("pool-list", "--all", "--name").split():
            for vol in pool_dir().iterdir():
                if owned(name, vol.name):
                    vol.unlink()
            virsh("pool-refresh", POOL)
    except (DnetError, OSError) as exc:
        failed = str(exc)
    if removed:
        log(f"lab '{name}': removed {removed} VMs that Vagrant left")
    if failed:
        log(f"lab '{name}': could not check libvirt for what is left ({failed}); look for dnet-lab-{name}-node* "
            "with virsh list --all and virsh vol-list default")
    else:
        log(f"lab '{name}': VMs destroyed")
    dind.down(name, log)


def status(name: str, state: LabState | None) -> list[dict[str, str]]:
    """The upstream container's row, and one row per VM with its libvirt state."""
    rows = [r for r in dind.status(name) if r["role"] == "upstream"]
    states: dict[str, str] = {}
    with contextlib.suppress(DnetError):  # libvirtd not answering: every VM shows "not created"
        for line in virsh("list", "--all").splitlines():  # one call: " Id   Name   State" rows
            parts = line.split(None, 2)
            if len(parts) == 3:
                states[parts[1]] = parts[2].strip()
    for n in state.nodes if state else []:
        rows.append({"lab": name, "node": n.name, "role": n.role, "address": n.address,
                     "state": states.get(domain(name, n.name), "not created"), "container": domain(name, n.name)})
    return rows


class LibvirtProvider:
    """VMs made by Vagrant with vagrant-libvirt (KVM where it runs natively, else QEMU's TCG)."""

    name = "libvirt"

    def up(self, name: str, nodes: int, subnet: str, bare: bool, log: Log, accel: str = "auto") -> LabState:
        return up(name, nodes, subnet, bare, log, accel)

    def down(self, name: str, state: LabState | None, log: Log) -> None:
        down(name, log)

    def status(self, name: str, state: LabState | None) -> list[dict[str, str]]:
        return status(name, state)


PROVIDER = LibvirtProvider()
