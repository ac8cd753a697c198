"""Apply orchestration with fake transports: order, per-host failure isolation, masked secrets."""
from __future__ import annotations

import json

import paramiko
import pytest

from dnet import converge
from dnet.inventory import hosts, loads
from dnet.plan.diff import diff
from dnet.plan.model import NetworkCreate, NetworkRecreate
from dnet.plan.world import World
from dnet.testing import FakeTransport
from tests.conftest import EXAMPLE
from tests.test_facts_plan import facts

TOKEN = "SWMTKN-1-topsecret"
# Every command the example's cold apply sends (the fake refuses any other).
SENT = [r"^mkdir -p /etc/docker && cat > /etc/docker/daemon.json.dnet", r"^service docker restart",
        r"^docker ps --no-trunc --format '\{\{.ID\}\} \{\{.Label \"com.docker.swarm.task.id\"\}\}'$",
        r"^docker swarm init --advertise-addr eth0",
        r"^docker node update --label-add zone=", r"^docker run -d --name (edge|db) ",
        r"^docker service create --detach --name web ",
        r"^set -e\niptables-restore -w --noflush <<'DNET_RULES'\n\*nat\n:DNET-FWD "]


def session(fail: dict[str, str]) -> tuple[converge.Session, dict[str, FakeTransport]]:
    loaded = loads(EXAMPLE.read_text())
    specs = hosts(loaded.model, paramiko.SSHConfig())
    f = facts("fresh")
    tokens = json.dumps({"JoinTokens": {"Worker": TOKEN, "Manager": TOKEN}}) + json.dumps(
        {"Swarm": {"NodeAddr": "192.168.77.11"}})  # the Engine API's /swarm and /info, one after the other
    common = [(r"http://d/swarm http://d/info", 0, tokens, ""), (r"join-token -q", 0, TOKEN + "\n", ""),
              (r"Swarm.NodeAddr", 0, "192.168.77.11\n", ""),
              (r"Swarm.NodeID", 0, "nodeid\n", ""), (r"docker network create", 0, "netid\n", ""),
              (r"http://localhost/swarm/join$", 0, "200", "")]
    ts = {h: FakeTransport(h, ([(fail[h], 1, "", f"boom {TOKEN}")] if h in fail else []) + common).expect(*SENT)
          for h in specs}
    s = converge.Session(loaded, specs, dict(ts), f, {}, {"dnet/probe:latest": f["node1"].images["dnet/probe:latest"]})
    return s, ts


def plan(s: converge.Session):  # type: ignore[no-untyped-def]
    return diff(World(s.loaded.model, s.specs, s.facts, s.local_images))


def test_apply_runs_every_change_in_phase_order() -> None:
    s, ts = session({})
    outcomes = converge.apply(s, plan(s), lambda m: None)
    assert len(outcomes) == 16 and all(o.status == "ok" for o in outcomes)
    node1 = ts["node1"].commands

    def first(pat: str) -> int:
        return next(i for i, c in enumerate(node1) if pat in c)

    assert first("daemon.json") < first("docker swarm init") < first("docker network create") < \
        first("docker service create")
    assert first("daemon.json") < first("DNET-FWD")  # the forward is in the local lane: after the engine only
    joins = [(c, i) for t in ts.values() for c, i in zip(t.commands, t.stdins, strict=True) if "/swarm/join" in c]
    assert len(joins) == 2 and all(TOKEN in i.decode() and TOKEN not in c for c, i in joins)  # on stdin only


def test_the_local_lane_holds_only_what_needs_nothing_of_the_swarm() -> None:
    s, _ = session({})
    p = plan(s)
    lane = {(c.host, c.kind, c.name) for c in converge.local_lane(s, p.changes)}
    assert lane == {("node2", "network", "localnet"), ("node2", "container", "edge"),
                    ("node1", "forward", "1 forwards")}
    # db is on the overlay backnet, web is a service: both wait for the swarm lane; a network the swarm lane
    # changes keeps its containers there too
    changes = [NetworkRecreate(host=c.host, network=c.network, spec=c.spec, current={})
               if isinstance(c, NetworkCreate) and c.name == "localnet" else c for c in p.changes]
    recreated = converge.local_lane(s, changes)
    assert ("node2", "container", "edge") not in {(c.host, c.kind, c.name) for c in recreated}


def test_a_failed_host_skips_its_later_changes_while_others_finish() -> None:
    s, _ = session({"node3": r"/swarm/join"})
    outcomes = converge.apply(s, plan(s), lambda m: None)
    by = {(o.change.host, o.change.name): o for o in outcomes}
    assert by[("node3", "swarm")].status == "failed"
    assert by[("node3", "db")].status == "skipped"
    assert by[("node1", "node3")].status == "skipped"  # its labels: not on a node that did not join
    assert by[("node1", "node2")].status == "ok"
    assert by[("node2", "edge")].status == "ok" and by[("node1", "web")].status == "ok"
    msg = by[("node3", "swarm")].message
    assert TOKEN not in msg and "***" in msg and "swarm join failed" in msg


def test_failed_init_stops_the_swarm_hosts() -> None:
    s, _ = session({"node1": r"docker swarm init"})
    outcomes = converge.apply(s, plan(s), lambda m: None)
    by = {(o.change.host, o.change.kind, o.change.name): o.status for o in outcomes}
    assert by[("node1", "swarm", "swarm")] == "failed"
    assert by[("node2", "swarm", "swarm")] == "skipped" and by[("node3", "container", "db")] == "skipped"


def test_every_change_class_has_a_task() -> None:
    from dnet.plan import model
    from dnet.tasks import registered

    kinds = {c for c in vars(model).values() if isinstance(c, type) and issubclass(c, model.Change)
             and not c.__subclasses__()}  # the leaves: Change, Removal and Rebuild are bases
    assert kinds and kinds == set(registered())


def test_an_unexpected_command_fails_the_change() -> None:
    s, ts = session({})
    ts["node2"].responses = [r for r in ts["node2"].responses if "docker run" not in r[0]]
    outcomes = converge.apply(s, plan(s), lambda m: None)
    by = {(o.change.host, o.change.name): o for o in outcomes}
    assert by[("node2", "edge")].status == "failed" and "unexpected command: docker run" in by[("node2",
                                                                                                "edge")].message
    assert ts["node2"].unexpected and by[("node3", "db")].status == "ok"


def test_show_commands_lists_what_apply_sends_without_sending_it() -> None:
    s, ts = session({})
    listed = converge.commands(s, plan(s))
    assert all(not t.commands for t in ts.values())  # nothing reached the hosts
    by = {(c.host, c.kind, c.name): cmds for c, cmds in listed}
    assert len(listed) == 16
    join = by[("node2", "swarm", "swarm")]
    assert len(join) == 1 and join[0][1].startswith("command -v curl") and "/swarm/join  # stdin: " in join[0][1]
    assert '"JoinToken": "***"' in join[0][1] and "SWMTKN" not in join[0][1]
    init = [c for _, c in by[("node1", "swarm", "swarm")]]
    assert init[0].startswith("docker swarm init --advertise-addr eth0 --data-path-addr eth0 "
                              "--default-addr-pool 10.220.0.0/16")
    daemon = by[("node1", "daemon", "/etc/docker/daemon.json")]
    assert '# stdin: { "dns": [ "192.168.77.2" ], "mtu": 1450,' in daemon[0][1]
    assert daemon[1][1].startswith("docker ps --no-trunc")  # what runs before the restart, to start it again
    assert daemon[2][1].startswith("service docker restart")
    net = by[("node1", "network", "appnet")]
    assert net[0][1].startswith("docker network create --driver overlay --subnet 10.77.0.0/24 --attachable "
                                "--label dnet.managed=true")
    assert "SWMTKN" not in repr(listed)


def test_plan_json_matches_the_docs() -> None:
    from tests import jsondoc

    s, _ = session({})
    jsondoc.check("plan", {"format_version": 1, **plan(s).public(), "unreachable": {}})
    text = EXAMPLE.read_text().replace("subnet: 10.78.0.0/24", "subnet: 10.79.0.0/24")
    from tests.test_facts_plan import world

    jsondoc.check("plan", {"format_version": 1, **diff(world("applied", text)).public(), "unreachable": {}})


def test_engine_restarts_roll_one_swarm_member_at_a_time_and_never_break_quorum() -> None:
    from dnet.facts import HostFacts, SwarmFact
    from dnet.plan.model import DaemonUpdate

    s, _ = session({})
    roles = {"m1": True, "m2": True, "m3": True, "w1": False, "w2": False}
    s.facts = {h: HostFacts(h, swarm=SwarmFact("active", h, control_available=m)) for h, m in roles.items()}
    changes = [DaemonUpdate(host=h, settings={"mtu": 1400}, current={"mtu": 1450}) for h in roles]
    one = converge.rolling_batches(s, list(changes), 1)
    assert [[c.host for c in b] for b in one] == [["w1"], ["w2"], ["m1"], ["m2"], ["m3"]]
    five = converge.rolling_batches(s, list(changes), 5)
    assert [[c.host for c in b] for b in five] == [["w1", "w2", "m1"], ["m2"], ["m3"]]  # 3 managers: 1 at a time


def test_plan_shows_the_blast_radius_of_an_engine_restart() -> None:
    from tests.test_facts_plan import world

    text = EXAMPLE.read_text().replace("mtu: 1450", "mtu: 1400")
    d = {c.host: c for c in diff(world("applied", text)).changes if c.kind == "daemon"}
    assert "stops and restarts edge" in d["node2"].detail and "moves tasks web." in d["node2"].detail
    assert d["node2"].before()["mtu"] == 1450 and d["node2"].after()["mtu"] == 1400


def test_limit_selects_hosts_groups_and_roles() -> None:
    import pytest

    from dnet.errors import DnetError
    from dnet.inventory.limit import select

    inv = loads(EXAMPLE.read_text()).model
    assert select(inv, "node3") == ["node3"]
    assert select(inv, "edge,manager") == ["node1", "node2"]
    assert select(inv, "workers") == ["node2", "node3"]
    with pytest.raises(DnetError, match="'nod4' is no host, group or role"):
        select(inv, "nod4")


def test_a_limited_plan_changes_only_the_named_hosts() -> None:
    s, _ = session({})
    s.limit = ["node3"]
    full = plan(s)
    kept = converge.limited(s, full)
    assert kept.changes and all(c.acts_on == "node3" for c in kept.changes)
    assert {(c.host, c.kind, c.name) for c in kept.changes} == {
        ("node3", "daemon", "/etc/docker/daemon.json"), ("node3", "swarm", "swarm"), ("node1", "node", "node3"),
        ("node3", "container", "db")}


class Lost(FakeTransport):
    """A transport whose channel dies on one command (as paramiko's SSHException or an OSError would)."""

    def __init__(self, base: FakeTransport, pattern: str, exc: Exception) -> None:
        super().__init__(base.name, base.responses)
        self.pattern, self.exc = pattern, exc

    def run(self, command: str, **kw):  # type: ignore[no-untyped-def]
        import re

        if re.search(self.pattern, command):
            raise self.exc
        return super().run(command, **kw)


def test_any_exception_in_a_change_is_that_changes_failure_never_a_dropped_result() -> None:
    s, ts = session({})
    for host, exc in (("node2", paramiko.SSHException("channel closed")), ("node3", OSError(104, "reset"))):
        s.transports[host] = Lost(ts[host], r"/swarm/join", exc)
    outcomes = converge.apply(s, plan(s), lambda m: None)
    assert len(outcomes) == 16  # nothing dropped
    by = {(o.change.host, o.change.name): o for o in outcomes}
    node2 = by[("node2", "swarm")]
    assert node2.status == "failed" and "SSHException: channel closed" in node2.message
    assert by[("node3", "swarm")].status == "failed" and "reset" in by[("node3", "swarm")].message
    assert by[("node3", "db")].status == "skipped" and by[("node1", "web")].status == "ok"


def test_a_stale_gossip_port_restarts_the_engine_before_the_join_and_keeps_the_host_out_of_the_local_lane() -> None:
    from tests.test_facts_plan import STALE, with_gossip

    s, ts = session({})
    s.facts = with_gossip("fresh", {"node2": STALE})
    p = plan(s)
    assert not any(c.host == "node2" for c in converge.local_lane(s, p.changes))
    outcomes = converge.apply(s, p, lambda m: None)
    assert all(o.status == "ok" for o in outcomes), [o.message for o in outcomes if o.status != "ok"]
    node2 = ts["node2"].commands

    def first(pat: str) -> int:
        return next(i for i, c in enumerate(node2) if pat in c)

    restarts = [i for i, c in enumerate(node2) if c.startswith("service docker restart")]
    assert len(restarts) == 2  # for daemon.json, then to free the gossip port
    assert first("daemon.json") < restarts[0] < restarts[1] < first("/swarm/join") < first("docker run -d --name edge")
    join = next(o for o in outcomes if o.change.host == "node2" and o.change.kind == "swarm")
    assert join.message.startswith("engine restarted to free 7946/tcp") and "joined as worker" in join.message


def test_outcomes_come_phase_by_phase_in_the_order_things_ran() -> None:
    s, _ = session({})
    outcomes = converge.apply(s, plan(s), lambda m: None)
    orders = [o.change.phase for o in outcomes]
    assert orders == sorted(orders)  # engines, then swarm, ..., forwards; each phase as it ran
    assert next(o.change.host for o in outcomes if o.change.kind == "swarm") == "node1"  # init before the joins


def test_apply_waits_for_every_overlay_node_to_know_the_others_and_names_one_that_does_not() -> None:
    loaded = loads(EXAMPLE.read_text())
    specs = hosts(loaded.model, paramiko.SSHConfig())
    f = facts("applied")
    ip = {h: f"192.168.77.1{i + 1}" for i, h in enumerate(sorted(f))}
    for h in f:
        f[h].addresses = {"eth0": [ip[h]]}  # how a missing peer's address is turned back into its name

    def peers(*nodes: str, tasks: tuple[str, ...] = ("node1", "node2", "node3")) -> str:
        """The Engine API's answer for appnet, then backnet: the nodes it knows and web's tasks (one per node)."""
        web = {"Tasks": [{"EndpointIP": f"10.77.0.{i + 2}", "Info": {"Host IP": ip[n]}} for i, n in enumerate(ip)
                         if n in tasks]}
        doc = json.dumps({"Name": "appnet", "Peers": [{"Name": n, "IP": ip[n]} for n in nodes],
                          "Services": {"web": web, "other": {"Tasks": []}}})
        return doc + json.dumps({"Name": "backnet", "Peers": [{"Name": n, "IP": ip[n]} for n in ip]})

    running = json.dumps([{"Status": {"State": "running"}, "NetworksAttachments": [
        {"Network": {"Spec": {"Name": "appnet"}}, "Addresses": [f"10.77.0.{i + 2}/24"]}]} for i in range(3)])
    # the leader (node1) answers with its views and then web's 3 running tasks, in one round trip
    leader = r"networks/appnet\?verbose=true.*/tasks\?filters"
    everyone = {h: FakeTransport(h, [(leader, 0, peers(*ip) + running, ""),
                                     (r"networks/appnet\?verbose=true", 0, peers(*ip), "")]) for h in specs}
    s = converge.Session(loaded, specs, dict(everyone), f, {}, {})
    assert converge.wait_overlays(s, timeout=1) == []
    assert len(everyone["node1"].commands) == 1  # one round trip to the leader per poll
    lagging = dict(everyone, node3=FakeTransport("node3", [(r"networks/appnet", 0, peers("node1", "node3"), "")]))
    s = converge.Session(loaded, specs, dict(lagging), f, {}, {})
    warnings = converge.wait_overlays(s, timeout=1)
    assert len(warnings) == 1 and warnings[0].startswith("overlay appnet: node3 does not know of node2 after 1s"), \
        warnings
    assert len(lagging["node3"].commands) >= 2  # polled again before giving up
    lagging = dict(everyone, node1=FakeTransport("node1", [(leader, 0, peers(*ip, tasks=("node1",)) + running, "")]))
    s = converge.Session(loaded, specs, dict(lagging), f, {}, {})
    assert converge.wait_overlays(s, timeout=0.5) == [
        "overlay appnet: node1 does not know of web's task 10.77.0.3, web's task 10.77.0.4 after "
        "0s: the engines' gossip (7946) has not told it yet; traffic between them fails until it does (run verify to "
        "see which paths)"]
    # node2's task has gone from appnet (so has node2): node1 still lists both, node3 already forgot them.
    # Only what runs and the nodes with endpoints count: nothing is missing.
    two = json.dumps([{"Status": {"State": "running"}, "NetworksAttachments": [
        {"Network": {"Spec": {"Name": "appnet"}}, "Addresses": [f"10.77.0.{i}/24"]}]} for i in (2, 4)])
    left = json.dumps({"Name": "appnet", "Peers": []}) + json.dumps(
        {"Name": "backnet", "Peers": [{"Name": n, "IP": ip[n]} for n in ip]})
    gone = dict(everyone, node1=FakeTransport("node1", [(leader, 0, peers(*ip) + two, "")]),
                node2=FakeTransport("node2", [(r"networks/appnet", 0, left, "")]),
                node3=FakeTransport("node3", [(r"networks/appnet", 0, peers("node1", "node3",
                                                                            tasks=("node1", "node3")), "")]))
    s = converge.Session(loaded, specs, dict(gone), f, {}, {})
    assert converge.wait_overlays(s, timeout=0.5) == []


ATTACH = "docker: Error response from daemon: attaching to network failed, make sure your network options are " \
    "correct and check manager logs: context deadline exceeded."


def test_a_container_whose_overlay_attachment_timed_out_is_started_again() -> None:
    s, ts = session({})
    ts["node3"].responses[:0] = [(r"^docker run -d --name db ", 125, "", ATTACH), (r"^docker start db ", 0, "", "")]
    by = {(o.change.host, o.change.name): o for o in converge.apply(s, plan(s), lambda m: None)}
    assert by[("node3", "db")].status == "ok", by[("node3", "db")].message
    node3 = ts["node3"].commands
    assert [c for c in node3 if c.startswith("docker start db ")] and \
        node3.index(next(c for c in node3 if c.startswith("docker run -d --name db "))) < \
        node3.index(next(c for c in node3 if c.startswith("docker start db ")))


def test_a_container_whose_worker_dropped_the_network_is_run_anew(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen on emulated VMs: the attachment timed out, and every `docker start` then answers "network ... not
    found" (the worker dropped it): a new `docker run` asks the swarm for the attachment again."""
    from dnet.tasks import workload

    monkeypatch.setattr(workload, "START_WAIT", 0.3)
    s, ts = session({})
    node3 = ts["node3"]
    node3.responses[:0] = [(r"^docker run -d --name db ", 125, "", ATTACH),
                           (r"^docker start db ", 1, "", "Error response from daemon: network lq4wbjx54 not found"),
                           (r"^docker rm -f db ", 0, "", "")]
    original = node3.run

    def run(command: str, **kw: object) -> object:
        if command.startswith("docker rm -f db "):  # the new run gets its attachment
            node3.responses[:0] = [(r"^docker run -d --name db ", 0, "", "")]
        return original(command, **kw)  # type: ignore[arg-type]

    node3.run = run  # type: ignore[method-assign,assignment]
    by = {(o.change.host, o.change.name): o for o in converge.apply(s, plan(s), lambda m: None)}
    assert by[("node3", "db")].status == "ok", by[("node3", "db")].message
    order = [c.split(" --")[0].split(" >")[0] for c in node3.commands if c.startswith(("docker run -d --name db",
                                                                                     "docker start db",
                                                                                     "docker rm -f db"))]
    assert order[0] == "docker run -d" and order[-1] == "docker run -d" and "docker rm -f db" in order
    assert order.count("docker run -d") == 2


def test_a_container_that_fails_to_run_for_another_reason_fails_at_once() -> None:
    s, ts = session({})
    ts["node3"].responses[:0] = [(r"^docker run -d --name db ", 125, "", "bind: address already in use")]
    by = {(o.change.host, o.change.name): o for o in converge.apply(s, plan(s), lambda m: None)}
    assert by[("node3", "db")].status == "failed" and "address already in use" in by[("node3", "db")].message
    assert not [c for c in ts["node3"].commands if c.startswith("docker start")]


def test_a_stale_containerd_task_is_deleted_so_the_container_starts_again() -> None:
    """`docker start` answering "task ID: already exists" after an engine restart: dnet deletes containerd's stale
    task (the ctr flags were checked by hand on a lab node's docker.io 20.10) and the next try starts it."""
    from dnet.tasks import Context
    from dnet.tasks.base import retrying
    from dnet.tasks.restart import _start_again

    cid = "bd28577ef177ec3f8985486155084e1de7ae3bc50d55144ad55535699a53eafd"
    stale = FakeTransport("node2", [
        (r"^docker ps -q --no-trunc$", 0, "", ""),
        (r"ctr --address", 0, "", ""),
        (r"^docker start ", 1, "", f"Error response from daemon: task {cid}: already exists\n"
                                   f"Error: failed to start containers: {cid}")])
    original = stale.run

    def run(command: str, **kw: object) -> object:
        if "ctr --address" in command:  # the stale task is gone: from now on the container starts and runs
            stale.responses[:0] = [(r"^docker ps -q --no-trunc$", 0, cid + "\n", ""), (r"^docker start ", 0, "", "")]
        return original(command, **kw)  # type: ignore[arg-type]

    stale.run = run  # type: ignore[method-assign,assignment]
    ctx = Context(loads(EXAMPLE.read_text()).model, {}, facts("applied"), {"node2": stale}, None)
    assert _start_again(ctx, "node2", [cid]) == 1  # after an engine restart
    cleanup = [c for c in stale.commands if "ctr --address" in c]
    assert len(cleanup) == 1 and 'tasks delete --force "$i"' in cleanup[0] and cid in cleanup[0]
    stale.responses = [r for r in stale.responses if r[1] != 0 or "ctr" in r[0]]  # stale again, for a plain start
    stale.commands.clear()
    retrying(ctx, "node2", "docker start edge >/dev/null", "start edge", wait=10)  # apply's start of a container
    assert [c for c in stale.commands if "ctr --address" in c] and stale.commands[-1].startswith("docker start")


def every_change_class() -> list[type]:
    """Every concrete change class (a kind of its own), found by walking the subclasses of Change."""
    from dnet.plan.model import Change

    found, todo = [], list(Change.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.kind:
            found.append(cls)
    return found


def build(cls: type, host: str, target: str) -> object:
    """One change of a class with every required field filled in (target only where the class acts on a node)."""
    import dataclasses
    import typing

    from dnet.plan import desired as d
    from dnet.plan import model
    from dnet.plan.runspec import FileSpec

    inv = loads(EXAMPLE.read_text()).model
    samples: dict[object, object] = {
        d.NetworkSpec: d.network_spec(inv.networks["appnet"]),
        d.ContainerSpec: d.container_spec("edge", inv.containers["edge"], None),
        d.ServiceSpec: d.service_spec("web", inv.services["web"], None),
        FileSpec: FileSpec("db", "db-0123456789ab", "/run/secrets/db", "/x", "0123456789abcdef"),
        str: "x", bool: False}
    hints = typing.get_type_hints(cls, vars(model))
    args: dict[str, object] = {"host": host}
    for f in dataclasses.fields(cls):
        if f.name == "target" and f.default is dataclasses.MISSING:
            args["target"] = target
        elif f.name not in args and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            hint = hints[f.name]
            origin = typing.get_origin(hint)
            args[f.name] = samples.get(hint, {} if origin is dict else () if origin is tuple else
                                       None if type(None) in typing.get_args(hint) else "worker")
    return cls(**args)


def test_limit_keeps_exactly_the_changes_about_the_limited_hosts_for_every_change_class() -> None:
    """--limit node3 keeps every change on node3 and every change a manager makes to node3 (role, availability,
    labels), and nothing else; before, a node's availability change was dropped."""
    import dataclasses

    from dnet.plan.model import Plan

    s, _ = session({})
    s.limit = ["node3"]
    classes = every_change_class()
    assert len(classes) == 30
    wanted, other = [], []
    for cls in classes:
        wanted.append(build(cls, "node3", "node3"))
        if {f.name: f for f in dataclasses.fields(cls)}["target"].default is dataclasses.MISSING:  # acts on a node
            wanted.append(build(cls, "node1", "node3"))  # a manager acting on node3
            other.append(build(cls, "node3", "node2"))  # node3 acting for node2: about node2
        other.append(build(cls, "node1", "node2"))
    kept = converge.limited(s, Plan([*wanted, *other]))  # type: ignore[list-item]
    assert kept.changes == wanted
    node = {(type(c).__name__, c.host) for c in kept.changes if c.kind == "node"}
    assert ("NodeAvailability", "node1") in node and ("NodeLabels", "node1") in node and ("NodeRole", "node1") in node


def test_a_node_update_out_of_sequence_is_read_and_written_again() -> None:
    """The swarm refuses a node update whose node changed meanwhile (a node that just joined reports its status):
    seen once in a full run as a failed label change. The update is sent again; other errors fail at once."""
    import pytest

    from dnet.errors import DnetError
    from dnet.tasks.base import Context, node_update
    from dnet.transport.base import Result

    class Flaky:
        name = "node1"

        def __init__(self, errors: list[str]) -> None:
            self.errors = errors
            self.commands: list[str] = []

        def run(self, command: str, *, check: bool = True, **_: object) -> Result:
            self.commands.append(command)
            err = self.errors.pop(0) if self.errors else ""
            r = Result("node1", command, 1 if err else 0, "", err)
            return r.check() if check else r

    s, _ = session({})
    t = Flaky(["Error response from daemon: rpc error: code = Unknown desc = update out of sequence"] * 2)
    ctx = Context(s.loaded.model, s.specs, {}, {"node1": t}, "node1")  # type: ignore[dict-item]
    node_update(ctx, "node1", "docker node update --label-add a=b n1")
    assert len(t.commands) == 3
    t = Flaky(["Error response from daemon: node n1 not found"])
    ctx = Context(s.loaded.model, s.specs, {}, {"node1": t}, "node1")  # type: ignore[dict-item]
    with pytest.raises(DnetError, match="not found"):
        node_update(ctx, "node1", "docker node update --label-add a=b n1")
    assert len(t.commands) == 1


@pytest.mark.parametrize(("pattern", "hosts"), [
    ("all", ["node1", "node2", "node3"]),
    ("*", ["node1", "node2", "node3"]),
    ("all:!node3", ["node1", "node2"]),
    ("!node3", ["node1", "node2"]),  # exclusions alone start from all, as in Ansible
    ("node*", ["node1", "node2", "node3"]),
    ("node[12]", ["node1", "node2"]),
    ("~node[23]$", ["node2", "node3"]),
    ("workers:&edge", ["node2"]),
    ("!edge:managers", ["node1"]),  # unions first, then exclusions, whatever the order written
    ("node1:node3", ["node1", "node3"]),
    ("node3,node1", ["node1", "node3"]),  # inventory order
])
def test_limit_takes_ansible_host_patterns(pattern: str, hosts: list[str]) -> None:
    from dnet.inventory.limit import select

    assert select(loads(EXAMPLE.read_text()).model, pattern) == hosts


@pytest.mark.parametrize(("pattern", "answer"), [
    ("web*", "--limit: 'web*' matches no host or group of this inventory (hosts: node1, node2, node3; groups: edge)"),
    ("all:!", "--limit 'all:!': & and ! need a pattern after them (e.g. all:!node3, managers:&web*)"),
    ("all:!node*", "--limit 'all:!node*' selects no host"),
    ("~(", "--limit: '~(' is not a regular expression (missing ), unterminated subpattern at position 0)"),
])
def test_limit_patterns_that_select_nothing_say_why(pattern: str, answer: str) -> None:
    from dnet.errors import DnetError
    from dnet.inventory.limit import select

    with pytest.raises(DnetError) as exc:
        select(loads(EXAMPLE.read_text()).model, pattern)
    assert str(exc.value) == answer
