"""Write the inventory for a lab: its hosts alone, or paired with the example's networks and workloads.

The example is edited in place (ruamel.yaml round trip), so its comments and layout survive.
"""
from __future__ import annotations

import io
from pathlib import Path

from ruamel.yaml.comments import CommentedMap

from dnet.errors import DnetError
from dnet.inventory import loads
from dnet.lab.state import LabState
from dnet.yamlrt import flow, roundtrip

EXAMPLE = Path(__file__).resolve().parents[1] / "files" / "example.yml"


def inventory(state: LabState, example: Path | None = None) -> str:
    """Return inventory YAML for the lab (validated before it is returned; ends with a newline)."""
    upstream = state.upstream.address if state.upstream else None
    y = roundtrip()
    if example is not None:
        if not example.exists():
            raise DnetError(f"{example}: no such example inventory")
        data = y.load(example.read_text())
        names = list(data.get("hosts") or {})
        if len(state.nodes) < len(names):
            raise DnetError(f"the example needs {len(names)} hosts; bring the lab up with --nodes {len(names)} or more")
    else:
        data = CommentedMap(version=1, defaults=CommentedMap(), hosts=CommentedMap())
        names = []
    defaults = data.setdefault("defaults", CommentedMap())
    defaults["user"] = "root"
    defaults["port"] = 22
    defaults["identity_file"] = str(state.key)
    defaults["known_hosts"] = str(state.known_hosts)
    if upstream:
        defaults.setdefault("docker", CommentedMap())["dns"] = flow([upstream])
    hosts = data["hosts"]
    extra = [n.name for n in state.nodes[len(names):]]
    for i, (node, name) in enumerate(zip(state.nodes, names + extra, strict=True)):
        if name not in hosts:
            role = "manager" if example is None and i == 0 else "worker"
            hosts[name] = CommentedMap(roles=flow([role]))
        host = hosts[name]
        host.insert(0, "address", node.address) if "address" not in host else host.__setitem__("address", node.address)
        if node.ssh_port != 22:
            host["port"] = node.ssh_port
        elif "port" in host and host["port"] != 22:
            del host["port"]
    tls = (state.dir / "ca.crt").exists()  # the lab made a CA: its upstream serves https too
    if example is None:
        data["swarm"] = CommentedMap(advertise_interface="eth0")
        data["egress"] = ["http://upstream.lab/", *(["https://upstream.lab/"] if tls else [])]
    buf = io.StringIO()
    y.dump(data, buf)
    head = (f"# Inventory for dnet lab '{state.name}' ({state.provider}, {state.subnet}); written by dnet lab up.\n"
            f"# The upstream host {upstream} plays the internet: DNS for *.lab and HTTP.\n")
    if tls:
        head += (f"# It serves HTTPS on 443 with a certificate from the lab's CA ({state.dir / 'ca.crt'}), which the "
                 "nodes trust,\n# and on 8443 with a self-signed one nobody trusts.\n")
    text = head + buf.getvalue().rstrip("\n") + "\n"
    loads(text, f"<inventory for lab {state.name}>")
    return text
