"""Where a lab keeps its key, known_hosts and description."""
from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dnet.errors import DnetError
from dnet.inventory.resolve import HostSpec
from dnet.inventory.schema import DockerEngine

LAB_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


def check_name(name: str) -> str:
    """A lab name is a plain word (it names containers, a network and a folder): never a path."""
    if not LAB_NAME.fullmatch(name):
        raise DnetError(f"lab name {name!r}: use 1-40 lowercase letters, digits, '-' or '_', starting with a letter "
                        "or digit")
    return name


def labs_dir() -> Path:
    """Root folder of every lab's state (DNET_HOME overrides ~/.local/share/dnet)."""
    base = os.environ.get("DNET_HOME") or os.path.expanduser("~/.local/share/dnet")
    return Path(base) / "labs"


@dataclass
class Node:
    name: str
    address: str
    container: str = ""
    ssh_port: int = 22
    role: str = "node"


@dataclass
class LabState:
    """What `lab up` made, enough for status, ssh and down."""

    name: str
    provider: str
    subnet: str
    nodes: list[Node] = field(default_factory=list)
    upstream: Node | None = None
    inventory: str = ""

    @classmethod
    def layout(cls, name: str, provider: str, net: ipaddress.IPv4Network | ipaddress.IPv6Network,
               nodes: int) -> LabState:
        """A new lab's fixed addresses: upstream at .2, nodes from .11."""
        hosts = list(net.hosts())
        return cls(name=name, provider=provider, subnet=str(net), upstream=Node("upstream", str(hosts[1]),
                                                                                role="upstream"),
                   nodes=[Node(f"node{i + 1}", str(hosts[10 + i])) for i in range(nodes)])

    @property
    def dir(self) -> Path:
        return labs_dir() / check_name(self.name)

    @property
    def key(self) -> Path:
        return self.dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / "lab.json.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=2))
        os.replace(tmp, self.dir / "lab.json")  # never half-written

    @classmethod
    def load(cls, name: str) -> LabState:
        path = labs_dir() / check_name(name) / "lab.json"
        if not path.exists():
            raise DnetError(f"no lab named '{name}' (see dnet lab status)")
        data = json.loads(path.read_text())
        data["nodes"] = [Node(**n) for n in data["nodes"]]
        data["upstream"] = Node(**data["upstream"]) if data.get("upstream") else None
        return cls(**data)

    def make_key(self) -> str:
        """Create the lab's SSH key pair; return the public key."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self.key.exists():
            r = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"dnet-lab-{self.name}",
                                "-f", str(self.key)], capture_output=True, text=True)
            if r.returncode != 0:
                raise DnetError(f"ssh-keygen failed: {r.stderr.strip()} (apt-get install openssh-client)")
        return (self.dir / "id_ed25519.pub").read_text().strip()

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def all_labs() -> list[str]:
    """Names of every lab with saved state."""
    root = labs_dir()
    return sorted(p.parent.name for p in root.glob("*/lab.json")) if root.exists() else []


def host_spec(state: LabState, n: Node) -> HostSpec:
    """Connection settings for one lab node."""
    return HostSpec(name=n.name, hostname=n.address, port=n.ssh_port, user="root", identity_file=str(state.key),
                    proxy_jump=None, roles=(), labels={}, advertise_addr=None, engine=DockerEngine(),
                    known_hosts=str(state.known_hosts))
