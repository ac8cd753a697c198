"""Apply, re-apply, change, fail and destroy on a real 3-node lab; results checked with plain docker."""
from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dnet.facts import parse, script
from tests import jsondoc
from tests.lablib import dnet, dnet_json, example_lab, http_get, node_sh, write

pytestmark = pytest.mark.lab
NET = "192.168.97"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    with example_lab("c", NET, tmp_path_factory.mktemp("converge")) as (name, inv):
        yield name, inv


def test_apply_builds_the_example(lab: tuple[str, Path]) -> None:
    name, inv = lab
    plan = json.loads(dnet("plan", "-i", str(inv), "--json", "--show-commands").stdout)
    jsondoc.check("plan-show-commands", plan, ("unreachable",))
    assert all(c["commands"] for c in plan["changes"]) and "SWMTKN" not in json.dumps(plan)
    sample = "nohup sh -c 'for i in $(seq 600); do ps -eo args; sleep 0.05; done' > /tmp/ps.log 2>&1 &"
    node_sh(name, "node2", sample)  # every process's command line while node2 joins
    code, out = dnet_json("apply", "-i", str(inv), "--yes")
    assert code == 0, json.dumps(out)[-3000:]
    jsondoc.check("apply", out, ("services", "unreachable"))
    assert out["summary"]["failed"] == 0 and out["summary"]["changed"] == 16
    assert out["services"] == {"web": "3/3"}
    nodes = node_sh(name, "node1", "docker node ls --format '{{.Hostname}} {{.ManagerStatus}} {{.Status}}'")
    assert sorted(nodes.split("\n")[:-1]) == ["node1 Leader Ready", "node2  Ready", "node3  Ready"]
    labels = node_sh(name, "node1", "docker node inspect node2 --format '{{json .Spec.Labels}}'")
    assert json.loads(labels)["zone"] == "b"
    subnets = node_sh(name, "node1", "docker network inspect appnet backnet --format "
                                     "'{{.Name}} {{(index .IPAM.Config 0).Subnet}} {{.Internal}} {{.Labels}}'")
    assert "appnet 10.77.0.0/24 false" in subnets and "backnet 10.78.0.0/24 true" in subnets
    assert "dnet.managed:true" in subnets
    assert "172.30.0.0/24" in node_sh(name, "node2", "docker network inspect localnet")
    daemon = json.loads(node_sh(name, "node3", "cat /etc/docker/daemon.json"))
    assert daemon["mtu"] == 1450 and daemon["dns"] == [f"{NET}.2"]
    web = node_sh(name, "node3", "docker run --rm --network appnet dnet/probe:latest fetch http://web/")
    assert web.strip() == "dnet probe ok"
    assert http_get(f"http://{NET}.12:8080/").strip() == "dnet probe ok"  # published port, host mode
    assert http_get(f"http://{NET}.11:8443/").strip() == "dnet probe ok"  # forward node1:8443 -> node2:9090
    token = node_sh(name, "node1", "docker swarm join-token -q worker").strip()
    seen = node_sh(name, "node2", "cat /tmp/ps.log; rm -f /tmp/ps.log")
    assert "/swarm/join" in seen and token not in seen  # the join ran while sampled, its token never in argv
    svc_image = node_sh(name, "node1",
                        "docker service inspect web --format '{{.Spec.TaskTemplate.ContainerSpec.Image}}'")
    # each node assembled its own probe (its own ID): the service names it by tag, never resolved in a registry
    assert svc_image.strip() == "dnet/probe:latest", svc_image
    ids = {node_sh(name, n, "docker image inspect -f '{{.Id}}' dnet/probe:latest").strip()
           for n in ("node1", "node2", "node3")}
    assert len(ids) == 3, ids


def test_second_apply_changes_nothing(lab: tuple[str, Path]) -> None:
    code, out = dnet_json("apply", "-i", str(lab[1]), "--yes")
    assert code == 0 and out["changes"] == [] and out["summary"] == {"changed": 0, "failed": 0}
    assert dnet("plan", "-i", str(lab[1]), "--detailed-exitcode", "-q").returncode == 0


def test_subnet_change_names_disconnects_and_reconnects(lab: tuple[str, Path], tmp_path: Path) -> None:
    name, inv = lab
    changed = write(tmp_path / "inv.yml", inv.read_text().replace("subnet: 10.78.0.0/24", "subnet: 10.79.0.0/24"))
    r = dnet("plan", "-i", changed, "--detailed-exitcode", "--json")
    assert r.returncode == 2
    jsondoc.check("plan", json.loads(r.stdout), ("unreachable",))
    c, svc = json.loads(r.stdout)["changes"]
    assert c["before"]["subnet"] == "10.78.0.0/24" and c["after"]["subnet"] == "10.79.0.0/24"
    assert (c["name"], c["action"]) == ("backnet", "recreate")
    assert (svc["name"], svc["action"]) == ("web", "recreate")
    assert "container db@node3" in c["detail"] and "service web" in c["detail"]
    code, out = dnet_json("apply", "-i", changed, "--yes")
    assert code == 0, json.dumps(out)[-3000:]
    ip = node_sh(name, "node3", "docker inspect db --format '{{.NetworkSettings.Networks.backnet.IPAddress}}'")
    assert ip.startswith("10.79.0.")
    nets = node_sh(name, "node1", "docker service inspect web --format '{{json .Spec.TaskTemplate.Networks}}'")
    assert len(json.loads(nets)) == 2
    assert dnet("plan", "-i", changed, "--detailed-exitcode", "-q").returncode == 0
    assert dnet_json("apply", "-i", str(inv), "--yes")[0] == 0  # back to the original


def test_unreachable_host_is_a_clean_error_and_a_rerun_converges(lab: tuple[str, Path], tmp_path: Path) -> None:
    name, inv = lab
    more = inv.read_text().replace("containers:", "containers:\n  extra2: {host: node2, image: dnet/probe:latest}\n"
                                                 "  extra3: {host: node3, image: dnet/probe:latest}", 1)
    changed = write(tmp_path / "more.yml", more)
    subprocess.run(["docker", "exec", f"dnet-lab-{name}-node3", "pkill", "-x", "sshd"], check=True)
    try:
        r = dnet("apply", "-i", changed, "--yes", "--json")
        assert r.returncode == 1 and "Traceback" not in r.stderr
        out = json.loads(r.stdout)
        assert "node3" in out["unreachable"] and "cannot connect" in out["unreachable"]["node3"]
        assert [(c["host"], c["name"], c["status"]) for c in out["changes"]] == [("node2", "extra2", "ok")]
    finally:
        subprocess.run(["docker", "exec", f"dnet-lab-{name}-node3", "/usr/sbin/sshd", "-o",
                        "HostKey=/etc/ssh/ssh_host_ed25519_key"], check=True)
    code, out = dnet_json("apply", "-i", changed, "--yes")
    assert code == 0 and [(c["host"], c["name"]) for c in out["changes"]] == [("node3", "extra3")]
    assert dnet_json("apply", "-i", str(inv), "--yes")[0] == 0  # prunes extra2/extra3


def test_failed_command_names_host_command_and_output(lab: tuple[str, Path], tmp_path: Path) -> None:
    name, inv = lab
    node_sh(name, "node2", "docker run -d --name squatter -p 9191:80 dnet/probe:latest")
    try:
        extra = ("containers:\n  clash: {host: node2, image: dnet/probe:latest, ports: ['9191:80']}\n"
                 "  fine3: {host: node3, image: dnet/probe:latest}")
        more = inv.read_text().replace("containers:", extra, 1)
        changed = write(tmp_path / "clash.yml", more)
        code, out = dnet_json("apply", "-i", changed, "--yes")
        assert code == 1
        status = {c["name"]: c for c in out["changes"]}
        assert status["fine3"]["status"] == "ok" and status["clash"]["status"] == "failed"
        msg = status["clash"]["message"]
        assert msg.startswith("node2: `docker run -d --name clash") and "exited 125" in msg
        assert "port is already allocated" in msg or "address already in use" in msg
    finally:
        node_sh(name, "node2", "docker rm -f squatter clash", check=False)
    assert dnet_json("apply", "-i", str(inv), "--yes")[0] == 0


def test_limit_touches_only_the_named_hosts(lab: tuple[str, Path], tmp_path: Path) -> None:
    name, inv = lab
    text = inv.read_text().replace("    networks: [localnet]\n", "    networks: [localnet]\n    aliases: [edgex]\n", 1)
    text = text.replace("    networks: [backnet]\n", "    networks: [backnet]\n    aliases: [dbx]\n", 1)
    changed = write(tmp_path / "limit.yml", text)
    plan = json.loads(dnet("plan", "-i", changed, "--json").stdout)
    assert {c["host"] for c in plan["changes"]} == {"node2", "node3"}
    code, out = dnet_json("apply", "-i", changed, "--yes", "--limit", "node3")
    assert code == 0, out
    assert [(c["host"], c["name"]) for c in out["changes"]] == [("node3", "db")]
    aliases = node_sh(name, "node3", "docker inspect db --format '{{json .NetworkSettings.Networks.backnet.Aliases}}'")
    assert "dbx" in aliases
    assert "edgex" not in node_sh(name, "node2", "docker inspect edge --format "
                                                "'{{json .NetworkSettings.Networks.localnet.Aliases}}'")
    assert dnet("plan", "-i", changed, "--limit", "node3", "--detailed-exitcode", "-q").returncode == 0
    assert dnet("plan", "-i", changed, "--detailed-exitcode", "-q").returncode == 2  # node2 still pending
    assert dnet("plan", "-i", changed, "--limit", "node9").returncode == 2  # a usage error
    assert dnet_json("apply", "-i", str(inv), "--yes")[0] == 0


def test_tunnel_reaches_a_port_nobody_published(lab: tuple[str, Path]) -> None:
    import signal
    import sys

    from tests.conftest import ROOT

    _, inv = lab
    # db publishes nothing and sits on an internal network; with OpenSSH the channels still go over SSH (they once
    # went to the target's address from this machine)
    for transport, target in (("paramiko", "web:80"), ("paramiko", "db:5432"), ("paramiko", "node2:9090"),
                              ("openssh", "db:5432"), ("openssh", "node2:9090")):
        proc = subprocess.Popen([sys.executable, "-m", "dnet", "tunnel", "-i", str(inv), target], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "DNET_TRANSPORT": transport})
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            why = first + (proc.stderr.read() if proc.stderr and proc.poll() is not None else "")
            assert first.startswith("127.0.0.1:"), why
            port = int(first.split()[0].split(":")[1])
            assert http_get(f"http://127.0.0.1:{port}/").strip() == "dnet probe ok"
            assert http_get(f"http://127.0.0.1:{port}/").strip() == "dnet probe ok"  # a second connection too
        finally:
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0 and "tunnel closed" in out
    for node in ("node1", "node2", "node3"):  # every probe container of the tunnels into containers is gone
        assert node_sh(lab[0], node, "docker ps -aq --filter label=dnet.tunnel").strip() == "", node


def test_a_tunnel_outlives_a_failed_connection_and_caps_how_many_it_carries(lab: tuple[str, Path]) -> None:
    import signal
    import socket
    import sys
    import time

    from tests.conftest import ROOT

    _, inv = lab
    for target, connections in (("node2:9", 2), ("node2:9090", 17)):  # 9: nothing listens there
        proc = subprocess.Popen([sys.executable, "-m", "dnet", "tunnel", "-i", str(inv), target], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        held: list[socket.socket] = []
        try:
            assert proc.stdout is not None
            port = int(proc.stdout.readline().split()[0].split(":")[1])
            for _ in range(connections):
                held.append(socket.create_connection(("127.0.0.1", port), timeout=10))
                time.sleep(0.2)
            held[-1].settimeout(10)
            assert held[-1].recv(10) == b""  # closed by the tunnel: no channel (port 9), or over the cap
            assert proc.poll() is None  # the tunnel goes on
        finally:
            for c in held:
                c.close()
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0 and "tunnel closed" in out, err
        if target == "node2:9":
            assert err.count("could not open 192.168.97.12:9 for a connection") == 2 or \
                err.count("could not open 127.0.0.1:9 for a connection") == 2, err
        else:
            assert "refused a connection from 127.0.0.1:" in err and "16 are open, the most one tunnel carries" in err


def test_trace_follows_vxlan_across_hosts_and_dnat_of_a_published_port(lab: tuple[str, Path]) -> None:
    _, inv = lab
    code, out = dnet_json("trace", "-i", str(inv), "db", "web:80")
    jsondoc.check("trace", out)
    assert code == 0 and out["reached"], out
    vxlan = [h for h in out["hops"] if h["what"].startswith("VXLAN")]
    assert vxlan and re.search(rf"VNI \d+ to {NET}\.1[12] \(node[12]\)", vxlan[0]["what"]), out["hops"]
    assert "listens on 80/tcp" in out["hops"][-1]["what"]
    code, out = dnet_json("trace", "-i", str(inv), "operator", "node2:8080")
    assert code == 0 and any(h["what"].endswith("DNAT") and "--dport 8080" in h["evidence"] for h in out["hops"])
    assert out["hops"][-1]["what"].startswith("to web.")
    code, out = dnet_json("trace", "-i", str(inv), "operator", "node1:8443")  # the forward, followed to edge
    assert code == 0 and "forwarded on to node2" in json.dumps(out) and out["hops"][-1]["what"].startswith("to edge")


def test_a_plain_container_labelled_as_a_task_is_no_task(lab: tuple[str, Path]) -> None:
    """Any docker user can put swarm's task labels on a container; only the manager's task list makes a task."""
    name, inv = lab
    node_sh(name, "node3", "docker run -d --name impostor --label com.docker.swarm.service.name=web --label "
                           "com.docker.swarm.task.id=impostor1 --label com.docker.swarm.task.name=web.9.impostor1 "
                           "dnet/probe:latest httpd -f -p 80 -h /www >/dev/null")
    try:
        r = dnet("trace", "-i", str(inv), "web.9", "db:5432")
        assert r.returncode == 1 and "web.9: no running container, task or service of that name" in r.stderr, \
            r.stdout + r.stderr
        code, out = dnet_json("trace", "-i", str(inv), "web.1", "db:5432")  # the real tasks still are
        assert code == 0, out
    finally:
        node_sh(name, "node3", "docker rm -f impostor >/dev/null")


def test_a_run_holding_the_hosts_lock_keeps_others_out(lab: tuple[str, Path]) -> None:
    name, inv = lab
    holder = '{"id": "abc", "user": "ops", "machine": "laptop", "pid": 42, "command": "dnet apply", "since": "x"}'
    node_sh(name, "node2", f"mkdir /run/dnet.lock && echo '{holder}' > /run/dnet.lock/holder")
    r = dnet("apply", "-i", str(inv), "--yes")
    assert r.returncode == 1 and "another dnet run holds node2 (ops@laptop pid 42 (dnet apply)" in r.stderr, r.stderr
    assert "--break-lock" in r.stderr
    assert node_sh(name, "node1", "ls /run | grep -c dnet.lock || true").strip() == "0"  # released what it took
    r = dnet("apply", "-i", str(inv), "--yes", "--break-lock")
    assert r.returncode == 0, r.stderr[-2000:]
    for n in ("node1", "node2", "node3"):
        assert node_sh(name, n, "ls /run | grep -c dnet.lock || true").strip() == "0"


def test_a_swarm_node_the_inventory_drops_is_reported_then_pruned(lab: tuple[str, Path], tmp_path: Path) -> None:
    import yaml

    name, inv = lab
    data = yaml.safe_load(inv.read_text())
    del data["hosts"]["node3"], data["containers"]["db"]
    data["checks"] = [c for c in data["checks"] if "db" not in (c["from"], c["to"].split(":")[0])]
    smaller = write(tmp_path / "two.yml", yaml.safe_dump(data))
    plan = json.loads(dnet("plan", "-i", smaller, "--json").stdout)
    assert any(w.startswith("swarm node node3 (") and "--prune-nodes" in w for w in plan["warnings"])
    assert not any(c["kind"] == "node" and c["action"] == "remove" for c in plan["changes"])
    code, out = dnet_json("apply", "-i", smaller, "--yes", "--prune-nodes")
    assert code == 0, out
    assert ("node1", "node", "node3", "remove", "ok") in [(c["host"], c["kind"], c["name"], c["action"], c["status"])
                                                          for c in out["changes"]]
    nodes = node_sh(name, "node1", "docker node ls --format '{{.Hostname}}'").split()
    assert sorted(nodes) == ["node1", "node2"]


def test_destroy_removes_only_what_dnet_made(lab: tuple[str, Path]) -> None:
    name, inv = lab
    node_sh(name, "node2", "docker network create theirs >/dev/null && docker run -d --name theirs-ctr "
                           "--network theirs dnet/probe:latest >/dev/null")
    code, out = dnet_json("destroy", "-i", str(inv), "--yes", "--leave-swarm")
    assert code == 0, json.dumps(out)[-3000:]
    jsondoc.check("destroy", out, ("services", "unreachable"))
    for node in ("node1", "node2", "node3"):
        left = node_sh(name, node, "docker ps -aq --filter label=dnet.managed=true; "
                                   "docker network ls -q --filter label=dnet.managed=true; "
                                   "iptables -t nat -S | grep DNET || true")
        assert left.strip() == "", (node, left)
        assert node_sh(name, node, "docker info --format '{{.Swarm.LocalNodeState}}'").strip() == "inactive"
    assert node_sh(name, "node2", "docker inspect -f '{{.State.Running}}' theirs-ctr").strip() == "true"
    assert node_sh(name, "node2", "docker network inspect theirs -f '{{.Name}}'").strip() == "theirs"


def test_engine_is_installed_on_a_bare_host(tmp_path: Path) -> None:
    from dnet.lab import dind
    from dnet.lab.state import LabState

    name = f"e{uuid.uuid4().hex[:6]}"
    r = dnet("lab", "up", "--name", name, "--nodes", "1", "--bare", "--subnet", "192.168.99.0/24",
             "-o", str(tmp_path / "bare.yml"))
    assert r.returncode == 0, r.stderr
    try:
        state = LabState.load(name)
        inv = write(tmp_path / "inv.yml", f"""version: 1
defaults:
  identity_file: {state.key}
  known_hosts: {state.known_hosts}
  docker: {{dns: [192.168.99.2], mtu: 1400}}
hosts:
  solo: {{address: 192.168.99.11}}
networks:
  lan: {{driver: bridge, subnet: 172.31.5.0/24}}
containers:
  app: {{host: solo, image: dnet/probe:latest, networks: [lan], ports: ["8088:80"]}}
""")
        assert "MISSING" in node_sh(name, "node1", "command -v docker || echo MISSING")
        plan = json.loads(dnet("plan", "-i", inv, "--json").stdout)
        assert ("engine", "install") in {(c["kind"], c["action"]) for c in plan["changes"]}
        code, out = dnet_json("apply", "-i", inv, "--yes")
        assert code == 0, json.dumps(out)[-3000:]
        assert http_get("http://192.168.99.11:8088/").strip() == "dnet probe ok"
        assert json.loads(node_sh(name, "node1", "cat /etc/docker/daemon.json"))["mtu"] == 1400
        # the sections a host without an engine skips are read again once there is one
        f = parse("solo", node_sh(name, "node1", script([])))
        assert "docker.io" in f.packages and f.daemon.get("mtu") == 1400 and f.engine, (f.packages, f.daemon)
        assert dnet("plan", "-i", inv, "--detailed-exitcode", "-q").returncode == 0
    finally:
        dind.down(name, lambda m: None)


def test_autolocked_manager_key_is_kept_and_restarts_unlock_it(tmp_path: Path) -> None:
    from dnet.lab.state import LabState

    name = f"k{uuid.uuid4().hex[:6]}"
    r = dnet("lab", "up", "--name", name, "--nodes", "1", "--subnet", "192.168.87.0/24", "-o", str(tmp_path / "l.yml"))
    assert r.returncode == 0, r.stderr
    key_file = tmp_path / "keys" / "unlock.key"
    try:
        state = LabState.load(name)

        def inv(mtu: int, key: bool = True) -> str:
            keyline = f"\n  unlock_key_file: {key_file}" if key else ""
            return write(tmp_path / "inv.yml", f"""version: 1
defaults:
  identity_file: {state.key}
  known_hosts: {state.known_hosts}
  docker: {{dns: [192.168.87.2], mtu: {mtu}}}
hosts:
  node1: {{address: 192.168.87.11, roles: [manager]}}
swarm:
  advertise_interface: eth0
  autolock: true{keyline}
""")
        r = dnet("apply", "-i", inv(1450), "--yes")
        assert r.returncode == 0, r.stderr[-2000:]
        real = node_sh(name, "node1", "docker swarm unlock-key -q").strip()
        assert key_file.read_text().strip() == real and oct(key_file.stat().st_mode & 0o777) == "0o600"
        assert real not in r.stdout + r.stderr
        # Without the key at hand, a locked manager is not restarted.
        pid = node_sh(name, "node1", "pidof dockerd").strip()
        r = dnet("apply", "-i", inv(1400, key=False), "--yes")
        assert r.returncode == 1 and "autolocked swarm" in r.stdout and "Nothing was changed on it" in r.stdout
        assert node_sh(name, "node1", "pidof dockerd").strip() == pid
        assert json.loads(node_sh(name, "node1", "cat /etc/docker/daemon.json"))["mtu"] == 1450  # untouched
        # With it: restarted, unlocked, active again.
        r = dnet("apply", "-i", inv(1400), "--yes")
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        assert node_sh(name, "node1", "pidof dockerd").strip() != pid
        assert node_sh(name, "node1", "docker info --format '{{.Swarm.LocalNodeState}}'").strip() == "active"
        assert real not in r.stdout + r.stderr
    finally:
        dnet("lab", "down", "--name", name)
