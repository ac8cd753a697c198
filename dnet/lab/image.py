"""Build the lab's images offline: a Debian node (debootstrap + import) and a busybox probe."""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from dnet.errors import DnetError
from dnet.images import import_rootfs, local_image_id

SUITE = "bookworm"
BASE_PACKAGES = ["openssh-server", "iproute2", "iptables", "iputils-ping", "netcat-openbsd", "dnsutils", "curl",
                 "procps", "dnsmasq-base", "busybox", "ca-certificates", "conntrack", "sudo"]
ENGINE_PACKAGES = ["docker.io"]


def _files(name: str) -> str:
    return resources.files("dnet.lab").joinpath("files", name).read_text()


def node_image_tag(bare: bool = False) -> str:
    """Tag of the node image for the current recipe (changes when the recipe does)."""
    recipe = "|".join([SUITE, *BASE_PACKAGES, *([] if bare else ENGINE_PACKAGES), _files("node-init"),
                       _files("fix-docker-init"), "v3"])
    return f"dnet/node{'-bare' if bare else ''}:{hashlib.sha256(recipe.encode()).hexdigest()[:10]}"


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (DNET_DEBIAN_MIRROR overrides)."""
    if os.environ.get("DNET_DEBIAN_MIRROR"):
        return os.environ["DNET_DEBIAN_MIRROR"]
    texts = []
    for p in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if p.is_file():
            texts.append(p.read_text(errors="replace"))
    for text in texts:
        for m in re.finditer(r"(?m)^(?:URIs:\s*|deb\s+(?:\[[^\]]*\]\s+)?)(\S+/debian)/?\s", text):
            return m.group(1)
    raise DnetError("cannot find a Debian mirror in /etc/apt/sources.list*; set DNET_DEBIAN_MIRROR=URL")


def build_node_image(bare: bool = False, force: bool = False, log: Callable[[str], None] | None = None) -> float:
    """Build the Debian node image with debootstrap; return seconds spent (0 when cached)."""
    tag = node_image_tag(bare)
    if not force and local_image_id(tag):
        return 0.0
    if not shutil.which("debootstrap"):
        raise DnetError("building lab nodes needs debootstrap: apt-get install debootstrap")
    packages = BASE_PACKAGES + ([] if bare else ENGINE_PACKAGES)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dnet-node-", dir=os.environ.get("DNET_BUILD_DIR")) as tmp:
        root = Path(tmp) / "root"
        cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", SUITE, str(root), debian_mirror()]
        if log:
            log(f"debootstrap {SUITE} with {len(packages)} packages (about a minute)")
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise DnetError(f"debootstrap failed ({r.returncode}): {(r.stdout + r.stderr).strip()[-800:]}")
        _customise(root)
        if log:
            log(f"importing {tag}")
        import_rootfs(root, tag, '["/usr/local/sbin/dnet-node-init"]')
    return time.monotonic() - start


def _customise(root: Path) -> None:
    init = root / "usr/local/sbin/dnet-node-init"
    init.write_text(_files("node-init"))
    init.chmod(0o755)
    fix = root / "usr/local/sbin/dnet-fix-docker-init"
    fix.write_text(_files("fix-docker-init"))
    fix.chmod(0o755)
    (root / "etc/apt/apt.conf.d/99dnet-lab").write_text(
        'DPkg::Post-Invoke { "/usr/local/sbin/dnet-fix-docker-init || true"; };\n')
    subprocess.run(["chroot", str(root), "/usr/local/sbin/dnet-fix-docker-init"], check=True)
    for key in (root / "etc/ssh").glob("ssh_host_*"):  # each node makes its own at first start
        key.unlink()
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
        shutil.rmtree(root / junk, ignore_errors=True)
    (root / "etc/hostname").write_text("node\n")
