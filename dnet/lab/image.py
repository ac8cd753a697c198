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
from dnet.images import local_image_id

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


def _import(root: Path, tag: str, cmd: str, labels: dict[str, str] | None = None) -> None:
    tar = subprocess.Popen(["tar", "-C", str(root), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
    changes = [a for k, v in {IMAGE_LABEL: "true", **(labels or {})}.items() for a in ("--change", f"LABEL {k}={v}")]
    imp = subprocess.run(["docker", "import", "--change", f"CMD {cmd}", *changes, "-", tag],
                         stdin=tar.stdout, capture_output=True, text=True)
    assert tar.stdout is not None
    tar.stdout.close()
    if tar.wait() != 0 or imp.returncode != 0:
        raise DnetError(f"docker import of {tag} failed: {imp.stderr.strip()[-500:]}")


def probe_recipe() -> str:
    """A hash of what goes into the probe image (a change rebuilds it)."""
    text = "|".join([*PROBE_APPLETS, _files("probe-index.html"), _files("probe-fetch"), "p1"])
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def build_probe_image(force: bool = False) -> float:
    """Build dnet/probe:latest from the host's busybox-static; return seconds spent (0 when cached)."""
    have = subprocess.run(["docker", "image", "inspect", "--format", '{{index .Config.Labels "dnet.recipe"}}',
                           PROBE_IMAGE], capture_output=True, text=True).stdout.strip()
    if not force and have == probe_recipe():
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
        fetch = root / "bin" / "fetch"
        fetch.write_text(_files("probe-fetch"))
        fetch.chmod(0o755)
        _import(root, PROBE_IMAGE, '["httpd", "-f", "-p", "80", "-h", "/www"]', {"dnet.recipe": probe_recipe()})
    return time.monotonic() - start


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
        _import(root, tag, '["/usr/local/sbin/dnet-node-init"]')
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
