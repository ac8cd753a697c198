"""Give hosts the images they need without a registry: stream them from the operator's engine, or (dnet's probe)
assemble them on the host."""
from __future__ import annotations

import hashlib
import shlex
import shutil
import subprocess
from importlib import resources
from pathlib import Path

from dnet.errors import DnetError
from dnet.transport.base import Transport, quote

PROBE_IMAGE = "dnet/probe:latest"
IMAGE_LABEL = "dnet.lab.image"
# what the probe's scripts need (every other applet the host's busybox has is linked too): a busybox without
# FEATURE_SH_STANDALONE, as Debian's dynamic one, finds an applet only through its link
PROBE_APPLETS = ["sh", "httpd", "nc", "nslookup", "ping", "wget", "ip", "arp", "cat", "echo", "sleep", "hostname",
                 "ls", "ps", "timeout", "grep", "kill", "true", "false", "printf", "tr", "cut", "sed", "head", "tail"]


def _files(name: str) -> str:
    return resources.files("dnet").joinpath("files", name).read_text()


def local_image(image: str) -> tuple[str, str] | None:
    """The operator engine's (ID, architecture) for image, or None when it does not have it (or has no docker)."""
    if not shutil.which("docker"):
        return None
    p = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}} {{.Architecture}}", image],
                       capture_output=True, text=True)
    parts = p.stdout.split()
    return (parts[0], parts[1] if len(parts) > 1 else "") if p.returncode == 0 and parts else None


def local_image_id(image: str) -> str | None:
    """The operator engine's ID for image, or None when it does not have it (or has no docker command)."""
    got = local_image(image)
    return got[0] if got else None


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
    """A hash of what goes into the probe image (a change assembles it again on every host)."""
    text = "|".join([*PROBE_APPLETS, _files("probe-index.html"), _files("probe-fetch"), _files("probe-assemble")])
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def probe_script() -> str:
    """The shell script that assembles the probe image on a host (or says it is there already)."""
    env = {"TAG": PROBE_IMAGE, "RECIPE": probe_recipe(), "APPLETS": " ".join(PROBE_APPLETS),
           "INDEX": _files("probe-index.html").rstrip("\n"), "FETCH": _files("probe-fetch").rstrip("\n")}
    return "".join(f"{k}={shlex.quote(v)}\n" for k, v in env.items()) + _files("probe-assemble")


def ensure_probe(t: Transport) -> str:
    """Give the host dnet's probe image, assembled there from the host's own busybox, ping and openssl (so it has
    the host's architecture and this machine needs no engine). Returns present|assembled, and what it lacks."""
    r = t.run("sh -s", stdin=probe_script().encode(), check=False, timeout=120)
    lines = r.stdout.split("\n")
    lacks = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("lacks:")]
    how = next((ln for ln in lines if ln in ("present", "assembled")), "")
    if not r.ok or not how:
        raise DnetError(f"{t.name}: cannot assemble the probe image: {(r.stderr or r.stdout).strip()[-300:]}")
    return how + (f" (without {', '.join(lacks)})" if lacks else "")
