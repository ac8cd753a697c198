"""Write the inventory for a lab: its hosts alone, or paired with the example's networks and workloads."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from dnet.errors import DnetError
from dnet.inventory import loads
from dnet.lab.state import LabState

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories" / "example.yml"


def inventory(state: LabState, example: Path | None = None) -> str:
    """Return inventory YAML for the lab (validated before it is returned)."""
    defaults: dict[str, Any] = {"user": "root", "port": 22, "identity_file": str(state.key),
                                "known_hosts": str(state.known_hosts)}
    upstream = state.upstream.address if state.upstream else None
    if example is not None:
        if not example.exists():
            raise DnetError(f"{example}: no such example inventory")
        data = yaml.safe_load(example.read_text())
        names = list(data.get("hosts", {}))
        if len(state.nodes) < len(names):
            raise DnetError(f"the example needs {len(names)} hosts; bring the lab up with --nodes {len(names)} or more")
        data.setdefault("defaults", {}).update(defaults)
        if upstream:
            data["defaults"].setdefault("docker", {})["dns"] = [upstream]
        for node, name in zip(state.nodes, names + [n.name for n in state.nodes[len(names):]], strict=True):
            host = data["hosts"].setdefault(name, {"roles": ["worker"]})
            host["address"] = node.address
            host.pop("port", None) if node.ssh_port == 22 else host.update(port=node.ssh_port)
    else:
        data = {"version": 1, "defaults": {**defaults, "docker": {"dns": [upstream]} if upstream else {}},
                "hosts": {n.name: {"address": n.address, "roles": ["manager" if i == 0 else "worker"]}
                          for i, n in enumerate(state.nodes)},
                "swarm": {"advertise_interface": "eth0"}, "egress": ["http://upstream.lab/"]}
    head = (f"# Inventory for dnet lab '{state.name}' ({state.provider}, {state.subnet}); written by dnet lab up.\n"
            f"# The upstream host {upstream} plays the internet: DNS for *.lab and HTTP.\n")
    text = head + yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)
    loads(text, f"<inventory for lab {state.name}>")
    return text
