"""Apply orchestration with fake transports: order, per-host failure isolation, masked secrets."""
from __future__ import annotations

import paramiko

from dnet import converge
from dnet.inventory import hosts, loads
from dnet.plan.diff import World, diff
from dnet.testing import FakeTransport
from tests.conftest import EXAMPLE
from tests.test_facts_plan import facts

TOKEN = "SWMTKN-1-topsecret"


def session(fail: dict[str, str]) -> tuple[converge.Session, dict[str, FakeTransport]]:
    loaded = loads(EXAMPLE.read_text())
    specs = hosts(loaded.model, paramiko.SSHConfig())
    f = facts("fresh")
    common = [(r"join-token -q", 0, TOKEN + "\n", ""), (r"Swarm.NodeAddr", 0, "192.168.77.11\n", ""),
              (r"Swarm.NodeID", 0, "nodeid\n", ""), (r"docker network create", 0, "netid\n", "")]
    ts = {h: FakeTransport(h, ([(fail[h], 1, "", f"boom {TOKEN}")] if h in fail else []) + common) for h in specs}
    s = converge.Session(loaded, specs, dict(ts), f, {}, {"dnet/probe:latest": f["node1"].images["dnet/probe:latest"]})
    return s, ts


def plan(s: converge.Session):  # type: ignore[no-untyped-def]
    return diff(World(s.loaded.model, s.specs, s.facts, s.local_images))


def test_apply_runs_every_change_in_phase_order() -> None:
    s, ts = session({})
    outcomes = converge.apply(s, plan(s), lambda m: None)
    assert len(outcomes) == 16 and all(o.status == "ok" for o in outcomes)
    node1 = ts["node1"].commands
    first = lambda pat: next(i for i, c in enumerate(node1) if pat in c)
    assert first("daemon.json") < first("docker swarm init") < first("docker network create") < \
        first("docker service create") < first("DNET-FWD")
    joins = [c for t in ts.values() for c in t.commands if "swarm join --token" in c]
    assert len(joins) == 2 and all(TOKEN in c for c in joins)


def test_a_failed_host_skips_its_later_changes_while_others_finish() -> None:
    s, _ = session({"node3": r"docker swarm join"})
    outcomes = converge.apply(s, plan(s), lambda m: None)
    by = {(o.change.host, o.change.name): o for o in outcomes}
    assert by[("node3", "swarm")].status == "failed"
    assert by[("node3", "db")].status == "skipped"
    assert by[("node2", "edge")].status == "ok" and by[("node1", "web")].status == "ok"
    msg = by[("node3", "swarm")].message
    assert TOKEN not in msg and "***" in msg and "exited 1" in msg


def test_failed_init_stops_the_swarm_hosts() -> None:
    s, _ = session({"node1": r"docker swarm init"})
    outcomes = converge.apply(s, plan(s), lambda m: None)
    by = {(o.change.host, o.change.kind, o.change.name): o.status for o in outcomes}
    assert by[("node1", "swarm", "swarm")] == "failed"
    assert by[("node2", "swarm", "swarm")] == "skipped" and by[("node3", "container", "db")] == "skipped"
