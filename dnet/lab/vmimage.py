"""The VM lab's node image: a Debian root with Debian's own kernel (IPVS, xfrm/ESP and netem as modules), made
offline with debootstrap, as a raw ext4 disk plus the kernel and initramfs to boot it directly. Cached by recipe
under DNET_HOME; each VM boots from a copy-on-write overlay of it."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from dnet.errors import DnetError
from dnet.lab.image import BASE_PACKAGES, ENGINE_PACKAGES, SUITE, _files, debian_mirror
from dnet.lab.state import labs_dir

VM_PACKAGES = ["linux-image-amd64", "kmod", "initramfs-tools", "tini", "e2fsprogs"]
DISK_SIZE = "8G"  # sparse: the engine's images and containers live in each VM's overlay of it


def recipe() -> str:
    text = "|".join([SUITE, *BASE_PACKAGES, *ENGINE_PACKAGES, *VM_PACKAGES, _files("vm-init"), DISK_SIZE, "v2"])
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def images_dir() -> Path:
    return labs_dir().parent / "vm-images"


def image_dir() -> Path:
    """Where the current recipe's image is (vmlinuz, initrd.img, root.img), built or not."""
    return images_dir() / recipe()


def build(force: bool = False, log: Callable[[str], None] | None = None) -> float:
    """Build the VM image unless the current recipe's is cached; return seconds spent (0 when cached)."""
    final = image_dir()
    if not force and (final / "done").exists():
        return 0.0
    for tool, pkg in (("debootstrap", "debootstrap"), ("mkfs.ext4", "e2fsprogs")):
        if not shutil.which(tool):
            raise DnetError(f"building the VM image needs {tool}: apt-get install {pkg}")
    start = time.monotonic()
    images_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="build-", dir=images_dir()) as tmp:
        root = Path(tmp) / "root"
        packages = BASE_PACKAGES + ENGINE_PACKAGES + VM_PACKAGES
        if log:
            log(f"debootstrap {SUITE} with a kernel and {len(packages)} packages (a few minutes, once)")
        r = subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", SUITE, str(root),
                            debian_mirror()], capture_output=True, text=True)
        if r.returncode != 0:
            raise DnetError(f"debootstrap failed ({r.returncode}): {(r.stdout + r.stderr).strip()[-800:]}")
        out = Path(tmp) / "image"
        out.mkdir()
        _customise(root, out)
        if log:
            log("making the root disk (mkfs.ext4 -d)")
        r = subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "dnet-root", "-d", str(root), str(out / "root.img"),
                            DISK_SIZE], capture_output=True, text=True)
        if r.returncode != 0:
            raise DnetError(f"mkfs.ext4 failed: {r.stderr.strip()[-500:]}")
        (out / "done").write_text(recipe() + "\n")
        if final.exists():
            shutil.rmtree(final)
        os.replace(out, final)  # whole or not at all
    return time.monotonic() - start


def _customise(root: Path, out: Path) -> None:
    # an initramfs with just what mounts the root disk: a tenth of Debian's default, seconds less to boot emulated
    (root / "etc/initramfs-tools/conf.d/dnet.conf").write_text("MODULES=list\n")
    (root / "etc/initramfs-tools/modules").write_text("virtio_pci\nvirtio_blk\next4\n")
    r = subprocess.run(["chroot", str(root), "update-initramfs", "-u", "-k", "all"], capture_output=True, text=True)
    if r.returncode != 0:
        raise DnetError(f"update-initramfs in the VM image failed: {(r.stdout + r.stderr).strip()[-500:]}")
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    initrds = sorted((root / "boot").glob("initrd.img-*"))
    if not kernels or not initrds:
        raise DnetError("the VM image has no kernel or initramfs in /boot (linux-image-amd64 did not install)")
    shutil.copy(kernels[-1], out / "vmlinuz")
    shutil.copy(initrds[-1], out / "initrd.img")
    init = root / "usr/local/sbin/dnet-vm-init"
    init.write_text(_files("vm-init"))
    init.chmod(0o755)
    for key in (root / "etc/ssh").glob("ssh_host_*"):  # each VM gets its own from its seed disk
        key.unlink()
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
        shutil.rmtree(root / junk, ignore_errors=True)
    (root / "etc/hostname").write_text("node\n")
    (root / "etc/fstab").write_text("/dev/vda / ext4 rw,relatime 0 1\n")
