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

PROBE_IMAGE = "dnet/probe:latest"
SUITE = "bookworm"
BASE_PACKAGES = ["openssh-server", "iproute2", "iptables", "iputils-ping", "netcat-openbsd", "dnsutils", "curl",
                 "procps", "dnsmasq-base", "busybox", "ca-certificates", "conntrack"]
ENGINE_PACKAGES = ["docker.io"]
PROBE_APPLETS = ["sh", "httpd", "nc", "nslookup", "ping", "wget", "ip", "arp", "cat", "echo", "sleep", "hostname",
                 "ls", "ps", "timeout", "grep", "kill", "true", "false"]
IMAGE_LABEL = "dnet.lab.image"


def _files(name: str) -> str:
    return resources.files("dnet.lab").joinpath("files", name).read_text()


def node_image_tag(bare: bool = False) -> str:
    """Tag of the node image for the current recipe (changes when the recipe does)."""
    recipe = "|".join([SUITE, *BASE_PACKAGES, *([] if bare else ENGINE_PACKAGES), _files("node-init"), "v2"])
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


def image_exists(tag: str) -> bool:
    """True when the local engine has `tag`."""
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0


def _import(root: Path, tag: str, cmd: str) -> None:
    tar = subprocess.Popen(["tar", "-C", str(root), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
    imp = subprocess.run(["docker", "import", "--change", f"CMD {cmd}", "--change", f"LABEL {IMAGE_LABEL}=true",
                          "-", tag], stdin=tar.stdout, capture_output=True, text=True)
    assert tar.stdout is not None
    tar.stdout.close()
    if tar.wait() != 0 or imp.returncode != 0:
        raise DnetError(f"docker import of {tag} failed: {imp.stderr.strip()[-500:]}")


def build_probe_image(force: bool = False) -> float:
    """Build dnet/probe:latest from the host's busybox-static; return seconds spent (0 when cached)."""
    if not force and image_exists(PROBE_IMAGE):
        return 0.0
    busybox = shutil.which("busybox")
    if not busybox or subprocess.run(["ldd", busybox], capture_output=True).returncode == 0:
        raise DnetError("the probe image needs a static busybox: apt-get install busybox-static")
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dnet-probe-") as tmp:
        root = Path(tmp)
        for d in ("bin", "www", "tmp", "etc"):
            (root / d).mkdir()
        shutil.copy2(busybox, root / "bin" / "busybox")
        for applet in PROBE_APPLETS:
            (root / "bin" / applet).symlink_to("busybox")
        (root / "www" / "index.html").write_text(_files("probe-index.html"))
        (root / "etc" / "passwd").write_text("root:x:0:0:root:/:/bin/sh\n")
        _import(root, PROBE_IMAGE, '["httpd", "-f", "-p", "80", "-h", "/www"]')
    return time.monotonic() - start


def build_node_image(bare: bool = False, force: bool = False, log: Callable[[str], None] | None = None) -> float:
    """Build the Debian node image with debootstrap; return seconds spent (0 when cached)."""
    tag = node_image_tag(bare)
    if not force and image_exists(tag):
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
        _import(root, tag, '["/usr/local/sbin/dnet-node-init"]')
    return time.monotonic() - start


def _customise(root: Path) -> None:
    init = root / "usr/local/sbin/dnet-node-init"
    init.write_text(_files("node-init"))
    init.chmod(0o755)
    rc = root / "etc/init.d/docker"
    if rc.exists():  # ulimit fails without CAP_SYS_RESOURCE and the engine then never starts
        rc.write_text(re.sub(r"(?m)^(\s*ulimit\b.*)$", r"\1 || true", rc.read_text()))
    for key in (root / "etc/ssh").glob("ssh_host_*"):  # each node makes its own at first start
        key.unlink()
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
        shutil.rmtree(root / junk, ignore_errors=True)
    (root / "etc/hostname").write_text("node\n")
