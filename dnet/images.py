"""Give hosts the images they need without a registry: stream them from the operator's engine."""
from __future__ import annotations

import subprocess

from dnet.errors import DnetError
from dnet.transport.base import Transport, quote


def local_image_id(image: str) -> str | None:
    """The operator engine's ID for image, or None when it does not have it."""
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
