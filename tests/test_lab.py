"""Real-engine lab tests: bring up Docker-in-Docker nodes, log in over SSH, tear down exactly."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dnet.errors import DnetError
from dnet.facts import parse, script
from dnet.images import PROBE_IMAGE, ensure_probe
from dnet.inventory import load
from dnet.lab import dind
from dnet.lab.state import LabState, host_spec
from dnet.transport.local import LocalTransport
from dnet.transport.ssh import SSHTransport
from tests import jsondoc
from tests.conftest import ROOT

pytestmark = pytest.mark.lab
SUBNET = "192.168.91.0/24"


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=600)


def dnet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dnet", *args], capture_output=True, text=True, cwd=ROOT, timeout=900)


@pytest.fixture(scope="module")
def sentinel() -> Iterator[tuple[str, str]]:
    """A container and a network made outside dnet; lab down must leave them alone."""
    ensure_probe(LocalTransport("local"))
    tag = uuid.uuid4().hex[:6]
    net, ctr = f"sentinel-net-{tag}", f"sentinel-ctr-{tag}"
    sh("docker", "network", "create", net)
    sh("docker", "run", "-d", "--name", ctr, "--network", net, PROBE_IMAGE)
    yield ctr, net
    sh("docker", "rm", "-f", ctr, check=False)
    sh("docker", "network", "rm", net, check=False)


@pytest.fixture(scope="module")
def lab(sentinel: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    name = f"t{uuid.uuid4().hex[:6]}"
    inv = str(tmp_path_factory.mktemp("lab") / "lab.yml")
    r = dnet("lab", "up", "--name", name, "--subnet", SUBNET, "--with-example", "-o", inv)
    assert r.returncode == 0, r.stderr
    yield name, inv
    dnet("lab", "down", "--name", name)


def test_inventory_is_valid_and_pairs_the_example(lab: tuple[str, str]) -> None:
    inv = load(lab[1]).model
    assert [h.address for h in inv.hosts.values()] == ["192.168.91.11", "192.168.91.12", "192.168.91.13"]
    assert inv.defaults.docker.dns == ["192.168.91.2"] and "web" in inv.services and "appnet" in inv.networks


def test_status_json_matches_the_docs(lab: tuple[str, str]) -> None:
    out = json.loads(dnet("lab", "status", "--name", lab[0], "--json").stdout)
    jsondoc.check("lab-status", out)
    assert sorted(n["node"] for n in out["nodes"]) == ["node1", "node2", "node3", "upstream"]


def test_every_node_answers_over_ssh_with_its_own_engine(lab: tuple[str, str]) -> None:
    state = LabState.load(lab[0])
    seen = set()
    for n in state.nodes:
        t = SSHTransport(host_spec(state, n))
        try:
            assert t.run("hostname").stdout.strip() == n.name
            info = json.loads(t.run("docker info --format '{{json .}}'").stdout)
            seen.add(info["ID"])
            assert info["Name"] == n.name
            assert t.run(f"docker image inspect {PROBE_IMAGE} --format ok").stdout.strip() == "ok"
        finally:
            t.close()
    assert len(seen) == 3  # three distinct engines


def test_a_connection_sends_each_packet_at_once(lab: tuple[str, str]) -> None:
    """TCP_NODELAY: with Nagle's algorithm a command's end of input waited for the host's delayed ACK (40 ms per
    command, seen as 47 ms for `true` against 6 ms with it)."""
    state = LabState.load(lab[0])
    t = SSHTransport(host_spec(state, state.nodes[0]))
    try:
        transport = t.conn.client.get_transport()
        assert transport is not None
        assert transport.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert t.run("true").ok
    finally:
        t.close()


def test_upstream_resolves_and_serves_from_node_and_container(lab: tuple[str, str]) -> None:
    state = LabState.load(lab[0])
    t = SSHTransport(host_spec(state, state.nodes[1]))
    try:
        assert t.run("dig +short upstream.lab").stdout.strip() == "192.168.91.2"
        assert t.run("curl -sf http://upstream.lab/").stdout.strip() == "dnet upstream ok"
        r = t.run(f"docker run --rm {PROBE_IMAGE} sh -c 'nslookup upstream.lab >/dev/null && wget -qO- http://upstream.lab/'")
        assert r.stdout.strip() == "dnet upstream ok"
    finally:
        t.close()


def test_engine_restarts_after_daemon_json_change(lab: tuple[str, str]) -> None:
    state = LabState.load(lab[0])
    t = SSHTransport(host_spec(state, state.nodes[2]))
    try:
        t.run("""echo '{"dns": ["192.168.91.2"], "mtu": 1450}' > /etc/docker/daemon.json && service docker restart""")
        t.run("for i in $(seq 60); do docker info >/dev/null 2>&1 && exit 0; sleep 0.5; done; exit 1")
        assert t.run("docker info --format '{{.ServerVersion}}'").stdout.strip()
    finally:
        t.close()


def test_a_taken_name_and_a_clashing_subnet_are_refused(lab: tuple[str, str]) -> None:
    r = dnet("lab", "up", "--name", lab[0], "--subnet", "192.168.92.0/24")
    assert r.returncode == 1 and "exists already" in r.stderr and "Traceback" not in r.stderr
    r = dnet("lab", "up", "--name", "other" + lab[0], "--subnet", "192.168.91.128/25")
    assert r.returncode == 1 and "clashes with" in r.stderr
    assert not dind.status("other" + lab[0])


def test_ssh_with_a_wrong_host_key_is_refused(lab: tuple[str, str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    state = LabState.load(lab[0])
    n = state.nodes[0]
    other = state.known_hosts.read_text().splitlines()[1].split()[1:]  # node2's key for node1's address
    bad = tmp_path / "known_hosts"
    bad.write_text(f"{n.address} {other[0]} {other[1]}\n")
    spec = host_spec(state, n)
    from dataclasses import replace

    with pytest.raises(DnetError, match="CHANGED"):
        SSHTransport(replace(spec, known_hosts=str(bad)))
    with pytest.raises(DnetError, match="not in known_hosts"):
        SSHTransport(replace(spec, known_hosts=str(tmp_path / "empty")))
    with pytest.raises(DnetError, match=r"ssh-ed25519 SHA256:[A-Za-z0-9+/]{43} is not"):
        SSHTransport(replace(spec, known_hosts=str(tmp_path / "empty")))


def test_accept_new_host_keys_records_the_key(lab: tuple[str, str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    state = LabState.load(lab[0])
    n = state.nodes[2]
    known = tmp_path / "known_hosts"
    spec = replace(host_spec(state, n), known_hosts=str(known))
    t = SSHTransport(spec, accept_new_host_keys=True)
    t.close()
    recorded = known.read_text().split()
    assert recorded[0] == n.address and recorded[1:] == state.known_hosts.read_text().splitlines()[2].split()[1:]
    t = SSHTransport(spec)  # now known: verified without the flag
    assert t.run("hostname").stdout.strip() == n.name
    t.close()


def test_proxyjump_through_another_node(lab: tuple[str, str], tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from dnet.inventory import hosts as resolve
    from dnet.inventory import loads

    state = LabState.load(lab[0])
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Host behind\n  HostName 192.168.91.13\n  ProxyJump root@192.168.91.11\n"
                   f"  IdentityFile {state.key}\n")
    monkeypatch.setenv("DNET_SSH_CONFIG", str(cfg))
    inv = loads(f"version: 1\ndefaults: {{known_hosts: {state.known_hosts}}}\nhosts:\n  behind: {{}}\n").model
    spec = resolve(inv)["behind"]
    assert (spec.hostname, spec.proxy_jump) == ("192.168.91.13", "root@192.168.91.11")
    t = SSHTransport(spec)
    try:
        assert t.run("hostname").stdout.strip() == "node3"
        assert "192.168.91.11" in t.run("echo $SSH_CONNECTION").stdout  # it came through node1
    finally:
        t.close()


def test_ssh_config_files_dnet_was_not_pointed_at_add_no_gateway(lab: tuple[str, str], tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Fabric on its own reads ~/.ssh/config and builds gateways whose host keys nobody checks; dnet's connections
    read only the ssh_config dnet resolved (here DNET_SSH_CONFIG, empty), so this dead ProxyJump is never used."""
    from dnet.inventory import hosts as resolve
    from dnet.inventory import loads

    state = LabState.load(lab[0])
    inv = loads(f"version: 1\ndefaults: {{known_hosts: {state.known_hosts}, identity_file: {state.key}}}\n"
                "hosts:\n  n3: {address: 192.168.91.13}\n").model  # the lab's paths, before HOME moves
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text("Host *\n  ProxyJump root@127.0.0.1:1\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("DNET_SSH_CONFIG", str(tmp_path / "empty"))
    t = SSHTransport(resolve(inv)["n3"])
    try:
        assert t.run("hostname").stdout.strip() == "node3"
    finally:
        t.close()


def test_two_hop_proxyjump_from_an_included_config(lab: tuple[str, str], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from dnet.inventory import hosts as resolve
    from dnet.inventory import loads

    state = LabState.load(lab[0])
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "lab.conf").write_text(
        f"Host hop1\n  HostName 192.168.91.11\n  User root\n  IdentityFile {state.key}\n"
        f"Host hop2\n  HostName 192.168.91.12\n  User root\n  IdentityFile {state.key}\n"
        f"Host far\n  HostName 192.168.91.13\n  ProxyJump hop1,hop2\n  IdentityFile {state.key}\n")
    cfg = tmp_path / "ssh_config"
    cfg.write_text("Include conf.d/*.conf\n")  # paramiko alone ignores Include
    monkeypatch.setenv("DNET_SSH_CONFIG", str(cfg))
    inv = loads(f"version: 1\ndefaults: {{known_hosts: {state.known_hosts}}}\nhosts:\n  far: {{}}\n").model
    spec = resolve(inv)["far"]
    assert (spec.hostname, spec.proxy_jump) == ("192.168.91.13", "hop1,hop2")
    t = SSHTransport(spec)
    try:
        assert t.run("hostname").stdout.strip() == "node3"
        assert t.run("echo $SSH_CONNECTION").stdout.split()[0] == "192.168.91.12"  # the last hop was node2
    finally:
        t.close()


def test_down_removes_exactly_the_lab(sentinel: tuple[str, str], lab: tuple[str, str]) -> None:
    name = lab[0]
    assert dnet("lab", "down", "--name", name).returncode == 0
    for kind in ("ps -a", "volume ls", "network ls"):
        out = sh("docker", *kind.split(), "-q", "--filter", f"label=dnet.lab={name}").stdout
        assert out.strip() == "", kind
    ctr, net = sentinel
    assert sh("docker", "inspect", "-f", "{{.State.Running}}", ctr).stdout.strip() == "true"
    assert sh("docker", "network", "inspect", net).returncode == 0


def test_bare_nodes_have_no_engine() -> None:
    name = f"b{uuid.uuid4().hex[:6]}"
    try:
        state = dind.up(name, 1, "192.168.93.0/24", True, lambda m: None)
        t = SSHTransport(host_spec(state, state.nodes[0]))
        try:
            assert t.run("command -v dockerd", check=False).code != 0
            assert t.run("command -v apt-get").ok
            # a host without an engine reads its facts with a handful of processes: no engine sections, no dpkg
            # (nothing installed), no daemon.json, no gossip check (only an answering engine can be listening), and
            # no temp dir (mktemp, cat, rm): a subshell, iptables-save, grep and ip (8 before the temp dir went)
            counted = ("read -r a b c d p </proc/loadavg; (run() {\n" + script(["dnet/probe:latest"]) +
                       "\n}; run) >/tmp/facts.out 2>&1; read -r a b c d q </proc/loadavg; echo $((q - p))")
            pids = int(t.run(counted).stdout.strip())
            f = parse("node1", t.run("cat /tmp/facts.out").stdout)
            got = (f.engine, f.engine_error, f.packages, f.daemon_raw.strip(), f.gossip_listener)
            assert got == (None, "MISSING", {}, "", ""), f
            assert f.addresses.get("eth0") == ["192.168.93.11"] and f.mtus.get("eth0"), (f.addresses, f.mtus)
            assert pids <= 5, pids
        finally:
            t.close()
    finally:
        dind.down(name, lambda m: None)


def test_vagrant_validate() -> None:
    r = subprocess.run(["vagrant", "validate"], cwd=ROOT / "vagrant", capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def test_vagrant_up_with_the_docker_provider(tmp_path) -> None:  # type: ignore[no-untyped-def]
    name = f"v{uuid.uuid4().hex[:6]}"
    inv = str(tmp_path / "v.yml")
    r = dnet("lab", "up", "--provider", "vagrant", "--name", name, "--nodes", "2", "--subnet", "192.168.94.0/24",
             "-o", inv)
    try:
        assert r.returncode == 0, r.stderr
        state = LabState.load(name)
        t = SSHTransport(host_spec(state, state.nodes[1]))
        try:
            assert t.run("hostname").stdout.strip() == "node2"
            assert "192.168.94.12" in t.run("ip -4 -o addr").stdout
            assert t.run("ping -c1 -W2 192.168.94.11").ok  # private addresses carry node-to-node traffic
            assert t.run("docker info --format '{{.ServerVersion}}'").stdout.strip()
        finally:
            t.close()
        assert load(inv).model.hosts["node1"].address == "192.168.94.11"
        # each machine's SSH port is the one dnet chose (Vagrant's own collision fix races in parallel ups)
        chosen = dict(kv.split("=") for kv in (state.dir / "ssh-ports").read_text().strip().split(","))
        assert sorted(chosen) == ["node1", "node2", "upstream"]
        for machine, port in chosen.items():
            mapped = sh("docker", "port", f"dnet-vagrant-{name}-{machine}", "22").stdout.strip()
            assert mapped == f"127.0.0.1:{port}", (machine, mapped)
    finally:
        assert dnet("lab", "down", "--name", name).returncode == 0
    assert sh("docker", "ps", "-aq", "--filter", f"label=dnet.lab={name}").stdout.strip() == ""
