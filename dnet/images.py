"""Give hosts the images they need without a registry: stream them from the operator's engine."""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from importlib import resources
from pathlib import Path

from dnet.errors import DnetError
from dnet.transport.base import Transport, quote

PROBE_IMAGE = "dnet/probe:latest"
IMAGE_LABEL = "dnet.lab.image"
PROBE_APPLETS = ["sh", "httpd", "nc", "nslookup", "ping", "wget", "ip", "arp", "cat", "echo", "sleep", "hostname",
                 "ls", "ps", "timeout", "grep", "kill", "true", "false"]


def _files(name: str) -> str:
    return resources.files("dnet").joinpath("files", name).read_text()


def local_image_id(image: str) -> str | None:
    """The operator engine's ID for image, or None when it does not have it (or has no docker command)."""
    if not shutil.which("docker"):
        return None
    p = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", image], capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 else None


def remote_image_id(t: Transport, image: str) -> str | None:
    """The host's ID for image, or None."""
    r = t.run(quote("docker", "image", "inspect", "--format", "{{.Id}}", image), check=False)
    return r.stdout.strip() if r.ok else None


def stream_image(t: Transport, image: str) -> None:
    """Pipe `docker save` on this machine into `docker load` on the host (no temporary files)."""
    save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert save.stdout is not None
    try:
        t.stream_in("docker load -q", save.stdout)
    finally:
        save.stdout.close()
        _, err = save.communicate()
    if save.returncode != 0:
        raise DnetError(f"{t.name}: cannot stream {image} from this machine (docker save: "
                        f"{err.decode(errors='replace').strip()}); build or pull it here first")


def ensure_image(t: Transport, image: str, local: str | None) -> str:
    """Make sure the host has image with this machine's ID `local` (looked up once by the caller).

    Returns how: present|streamed.
    """
    remote = remote_image_id(t, image)
    if remote and (local is None or remote == local):
        return "present"
    stream_image(t, image)
    return "streamed"


def import_rootfs(root: Path, tag: str, cmd: str, labels: dict[str, str] | None = None) -> None:
    """Import a root directory as an image (docker import), labelled as dnet's."""
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
    text = "|".join([*PROBE_APPLETS, _files("probe-index.html"), _files("probe-fetch"), "dfping", "p2"])
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
    ping = _iputils_ping()
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
        _copy_with_libs(ping, root, "bin/dfping")
        import_rootfs(root, PROBE_IMAGE, '["httpd", "-f", "-p", "80", "-h", "/www"]', {"dnet.recipe": probe_recipe()})
    return time.monotonic() - start


def _iputils_ping() -> Path:
    """iputils' ping: the one that can forbid fragmentation (-M do), for verify's full-size (MTU) probes."""
    for cand in ("/usr/bin/ping", "/bin/ping", shutil.which("ping") or ""):
        if cand and os.path.isfile(cand) and not os.path.islink(cand):
            out = subprocess.run([cand, "-V"], capture_output=True, text=True)
            if "iputils" in out.stdout + out.stderr:
                return Path(cand)
    raise DnetError("the probe image needs iputils' ping (for MTU probes with -M do): apt-get install iputils-ping")


def _copy_with_libs(binary: Path, root: Path, dest: str) -> None:
    """Copy a dynamically linked binary into an image root with the libraries ldd lists, at their own paths."""
    target = root / dest
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(binary, target)
    listing = subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
    for lib in re.findall(r"(/\S+\.so[.\d]*)", listing):
        real = Path(lib).resolve()
        for path in {Path(lib), real}:
            copy = root / path.relative_to("/")
            copy.parent.mkdir(parents=True, exist_ok=True)
            if not copy.exists():
                shutil.copy2(real, copy)
