"""Small trust promises, each proven on its own: values a host reports stay one shell word, the facts script's temp
dir is private, a lab partition is all or nothing."""
from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

from dnet.facts import script
from dnet.trace import Tracer, _overlay
from dnet.verify.model import Instance


class Recording(Tracer):
    """A tracer whose hosts answer nothing; it keeps every command it would send."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def sh(self, host: str, command: str) -> str:
        self.sent.append(command)
        return "" if "vxlan" not in command else "5: vxlan0: <UP> vxlan id 4097 dstport 4789"


def test_trace_quotes_a_network_id_a_host_reported() -> None:
    t = Recording()
    nid = "ab$(id)`x`;rm -rf /tmp/q"  # what a compromised engine could answer for a network's ID
    a, b = Instance("a", "a", "container", "node1"), Instance("b", "b", "container", "node1")
    _overlay(t, a, b, "10.0.9.2", nid)
    assert t.sent and all(shlex.split(c)[1] == f"--net=/var/run/docker/netns/1-{nid[:10]}" for c in t.sent)


def test_the_facts_script_uses_a_private_temp_dir_or_stops(tmp_path: Path) -> None:
    first = script([]).splitlines()[0] + "\nmk"  # defines mk; the engine's sections call it before they start
    assert "mktemp -d" in first and "/tmp/dnet-facts" not in script([])
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "mktemp").write_text("#!/bin/sh\nexit 1\n")
    (fake / "mktemp").chmod(0o755)
    r = subprocess.run(["sh", "-c", first + "\necho went on"], capture_output=True, text=True,
                       env={**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"})
    assert r.returncode == 1 and "went on" not in r.stdout and "mktemp -d failed on this host" in r.stderr
    r = subprocess.run(["sh", "-c", first + '\nstat -c %a "$d"'], capture_output=True, text=True)
    assert r.stdout.strip() == "700"


def test_a_partition_that_fails_on_its_second_node_is_undone_on_the_first() -> None:
    import pytest

    from dnet.errors import DnetError
    from dnet.lab.fault import Faults
    from dnet.lab.state import LabState, Node

    sent: list[tuple[str, str]] = []

    def runner(node: str, command: str) -> str:
        sent.append((node, command))
        if node == "node2" and "-A DNET-FAULT" in command:
            raise DnetError("node2: `iptables ...` exited 4: Resource temporarily unavailable")
        return ""

    state = LabState.__new__(LabState)
    state.name, state.nodes = "t", [Node("node1", "192.168.9.11"), Node("node2", "192.168.9.12")]
    with pytest.raises(DnetError, match="exited 4"):
        Faults(state, runner).partition("node1", "node2")
    undone = [c for n, c in sent if n == "node1" and "-D DNET-FAULT" in c]
    assert undone == ["iptables -t raw -D DNET-FAULT -s 192.168.9.12 -j DROP 2>/dev/null || true",
                      "iptables -t raw -D DNET-FAULT -d 192.168.9.12 -j DROP 2>/dev/null || true"]


def test_a_host_without_an_engine_reads_its_facts_without_a_temp_dir(tmp_path: Path) -> None:
    """Only the engine's sections need files; a bare host's facts print straight to stdout (each file made on a
    container's overlay filesystem costs the host CPU, and a bare host's read made about forty)."""
    from dnet.facts import parse

    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "mktemp").write_text(f"#!/bin/sh\ntouch {tmp_path}/called\nexit 1\n")
    (fake / "mktemp").chmod(0o755)
    r = subprocess.run(["/bin/sh", "-c", script(["dnet/probe:latest"])], capture_output=True, text=True,
                       env={"PATH": str(fake)})  # no docker, no curl
    f = parse("bare", r.stdout)
    assert (r.returncode, f.engine, f.engine_error) == (0, None, "MISSING")
    assert not (tmp_path / "called").exists() and r.stdout.endswith("@@dnet:end\n") and f.mtus.get("lo")
