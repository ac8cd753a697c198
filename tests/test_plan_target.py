"""--target, --set and saved plans without hosts: what a target keeps and leaves, overrides checked like the file,
and a saved plan's drift found section by section."""
from __future__ import annotations

import json
from pathlib import Path

import paramiko
import pytest

from dnet.errors import DnetError
from dnet.facts import HostFacts, parse
from dnet.inventory import hosts, load, loads
from dnet.inventory.override import override
from dnet.plan import saved
from dnet.plan.diff import diff
from dnet.plan.target import narrow
from dnet.plan.target import parse as parse_targets
from dnet.plan.world import World
from tests.conftest import EXAMPLE, ROOT

NODES = ["node1", "node2", "node3"]


def facts(kind: str) -> dict[str, HostFacts]:
    return {n: parse(n, (ROOT / "tests" / "data" / f"{kind}-{n}.txt").read_text()) for n in NODES}


def plan_of(kind: str, text: str, targets: list[str]) -> tuple[list[tuple[str, str, str, str]], list[str]]:
    inv = loads(text).model
    f = facts(kind)
    probe: dict[str, str | None] = {"dnet/probe:latest": f["node1"].images["dnet/probe:latest"]}
    world = World(inv, hosts(inv, paramiko.SSHConfig()), f, probe)
    p = narrow(diff(world), parse_targets(targets, inv), inv)
    return ([(c.host, c.kind, c.name, str(c.action)) for c in p.ordered()],
            sorted(f"{c.host} {c.kind} {c.action}" for c in p.untargeted))


def test_a_service_target_leaves_a_pending_engine_restart_alone() -> None:
    text = EXAMPLE.read_text().replace("    replicas: 3", "    replicas: 2").replace("    mtu: 1450", "    mtu: 1400")
    kept, left = plan_of("applied", text, ["service.web"])
    assert [k[:3] for k in kept] == [("node1", "service", "web")]
    assert left == ["node1 daemon update", "node2 daemon update", "node3 daemon update"]


def test_on_fresh_hosts_a_service_brings_what_it_strictly_needs() -> None:
    kept, left = plan_of("fresh", EXAMPLE.read_text(), ["service.web"])
    kinds = {(k, n) for _, k, n, _ in kept}
    assert ("service", "web") in kinds and ("swarm", "swarm") in kinds
    assert {("network", "appnet"), ("network", "backnet")} <= kinds
    assert ("network", "localnet") not in kinds and ("container", "edge") not in kinds
    assert not any(k == "daemon" for _, k, _, _ in kept)  # a restart is never what a resource "needs"
    assert "node1 daemon update" in left and "node1 forward rewrite" in left
    kept, _ = plan_of("fresh", EXAMPLE.read_text(), ["container.edge"])
    assert {(h, k, n) for h, k, n, _ in kept} == {("node2", "container", "edge"), ("node2", "network", "localnet")} | {
        (h, k, n) for h, k, n, _ in kept if k == "image"}


def test_targets_are_checked_against_the_inventory() -> None:
    inv = load(EXAMPLE).model
    with pytest.raises(DnetError, match=r"--target service\.wbe: the inventory declares no service 'wbe'; did you "
                                        r"mean service\.web\? \(services: web\)"):
        parse_targets(["service.wbe"], inv)
    with pytest.raises(DnetError, match=r"--target servce\.web: write KIND\.NAME, KIND one of .* \(did you mean "
                                        r"service\.web\?\)"):
        parse_targets(["servce.web"], inv)
    with pytest.raises(DnetError, match=r"write KIND\.NAME"):
        parse_targets(["web"], inv)


def test_set_overrides_are_validated_like_the_file() -> None:
    loaded = load(EXAMPLE)
    new, changed = override(loaded, {"services.web.replicas": "1"})
    assert new.model.services["web"].replicas == 1 and changed == {"services.web.replicas": "3 -> 1"}
    with pytest.raises(DnetError, match=r"services\.web\.replicas: Input should be a valid integer"):
        override(loaded, {"services.web.replicas": "$(reboot)"})
    with pytest.raises(DnetError, match=r"the inventory has no 'nope' there \(it has: web\)"):
        override(loaded, {"services.nope.replicas": "1"})
    with pytest.raises(DnetError, match="is no mapping"):
        override(loaded, {"services.web.replicas.x": "1"})


def test_a_saved_plan_names_what_drifted(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yml"
    inv.write_text(EXAMPLE.read_text().replace("    replicas: 3", "    replicas: 2"))
    model = load(inv).model
    f = facts("applied")
    world = World(model, hosts(model, paramiko.SSHConfig()), f, {})
    plan = diff(world)
    out = tmp_path / "plan.json"
    saved.save(str(out), str(inv), {"targets": []}, f, plan)
    assert out.stat().st_mode & 0o777 == 0o600
    data = saved.read(str(out))
    assert saved.drift(data, str(inv), f, plan) == []
    moved = facts("applied")
    moved["node2"].containers[0].running = not moved["node2"].containers[0].running
    assert saved.drift(data, str(inv), moved, plan) == ["node2: its containers changed since the plan was saved"]
    inv.write_text(inv.read_text() + "\n")
    assert saved.drift(data, str(inv), f, plan)[0] == f"the inventory {inv} changed since the plan was saved"
    other = diff(World(load(EXAMPLE).model, hosts(model, paramiko.SSHConfig()), f, {}))
    assert any(line.startswith("no longer planned: node1: service web ")
               for line in saved.drift(data, str(inv), f, other))
    out.write_text(json.dumps({"format": "other"}))
    with pytest.raises(DnetError, match="not a dnet plan file"):
        saved.read(str(out))


@pytest.mark.parametrize(("args", "says"), [
    (("--set", "services.web.replicas=$(reboot)"),
     "error: set services.web.replicas: the inventory would not be valid: services.web.replicas: Input should be a "
     "valid integer\n"),
    (("--set", "services.web.replicas"), "Error: --set services.web.replicas: write --set PATH=VALUE, e.g. "
                                          "services.web.replicas=2"),
    (("--target", "service.web;reboot"), "error: --target service.web;reboot: the inventory declares no service "
                                         "'web;reboot' (services: web)\n"),
])
def test_hostile_set_and_target_values_are_refused_before_anything_changes(tmp_path: Path, args: tuple[str, ...],
                                                                          says: str) -> None:
    import subprocess
    import sys

    inv = tmp_path / "inv.yml"
    inv.write_text("version: 1\nhosts:\n  me: {address: local, roles: [manager]}\nservices:\n  web: {image: x, "
                   "replicas: 2}\n")
    r = subprocess.run([sys.executable, "-m", "dnet", "plan", "-i", str(inv), "-q", *args], capture_output=True,
                       text=True, cwd=ROOT, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode in (1, 2) and "Traceback" not in r.stderr
    assert says in r.stderr, r.stderr
