"""Connections that outlive a run: the holder on a real 2-node lab (handshakes, trust, close, interrupt, refusal)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dnet.transport import held, wire
from tests.conftest import ROOT
from tests.lablib import dnet, node_sh

pytestmark = pytest.mark.lab
SUBNET = "192.168.102.0/24"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    name = "ph" + uuid.uuid4().hex[:6]
    inv = tmp_path_factory.mktemp("persist") / "lab.yml"
    r = dnet("lab", "up", "--name", name, "--nodes", "2", "--subnet", SUBNET, "-o", str(inv))
    assert r.returncode == 0, r.stderr
    try:
        yield name, inv
    finally:
        dnet("lab", "down", "--name", name)


@pytest.fixture
def own_holder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A holder of this test's own (counts start at zero), stopped after it."""
    runtime = tmp_path / "run"
    monkeypatch.setenv("DNET_RUNTIME_DIR", str(runtime))
    yield runtime
    held.close()


def lab_known_hosts(lab: str, tmp_path: Path) -> tuple[Path, str, str]:
    """The lab's known_hosts file, its text, and the base64 of an ed25519 key no node has."""
    known = Path(os.environ.get("DNET_HOME", os.path.expanduser("~/.local/share/dnet"))) / "labs" / lab / \
        "known_hosts"
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    return known, known.read_text(), other.with_suffix(".pub").read_text().split()[1]


def sessions(lab: str, node: str) -> int:
    """Established SSH connections the node's sshd serves (its per-connection processes)."""
    out = node_sh(lab, node, "ss -Htn state established '( sport = :22 )' | wc -l")
    return int(out.strip())


def test_a_second_run_opens_no_new_connection(lab: tuple[str, Path], own_holder: Path) -> None:
    name, inv = lab
    before = {n: sessions(name, n) for n in ("node1", "node2")}
    for _ in range(3):
        r = dnet("plan", "-i", str(inv), "-q")
        assert r.returncode == 0, r.stderr
    stats = held.stats()
    assert stats is not None and stats["opened"] == 2 and stats["held"] == 2, stats
    assert {n: sessions(name, n) - before[n] for n in ("node1", "node2")} == {"node1": 1, "node2": 1}
    assert (own_holder / "holder.sock").is_socket()
    assert oct(os.stat(own_holder).st_mode & 0o777) == "0o700"
    assert oct(os.stat(own_holder / "holder.sock").st_mode & 0o777) == "0o600"

    r = dnet("ssh-close", "--json")
    assert json.loads(r.stdout) == {"closed": 2, "running": True, "openssh_masters": 0}
    assert not (own_holder / "holder.sock").exists()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(sessions(name, n) != before[n] for n in ("node1", "node2")):
        time.sleep(0.1)
    assert {n: sessions(name, n) for n in ("node1", "node2")} == before
    assert json.loads(dnet("ssh-close", "--json").stdout) == {"closed": 0, "running": False, "openssh_masters": 0}
    assert dnet("ssh-close").stdout.strip() == "no connection holder was running"


def test_persist_zero_connects_directly(lab: tuple[str, Path], own_holder: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DNET_PERSIST", "0")
    r = dnet("plan", "-i", str(lab[1]), "-q")
    assert r.returncode == 0, r.stderr
    assert not (own_holder / "holder.sock").exists()
    monkeypatch.setenv("DNET_PERSIST", "soon")
    r = dnet("plan", "-i", str(lab[1]), "-q")
    assert r.returncode == 1
    assert "DNET_PERSIST='soon' is not a number of seconds" in r.stderr


def test_a_held_connection_is_dropped_when_its_host_key_is_no_longer_trusted(
        lab: tuple[str, Path], own_holder: Path, tmp_path: Path) -> None:
    """Held connections were verified when opened; a known_hosts that no longer vouches for the key ends them."""
    name, inv = lab
    assert dnet("plan", "-i", str(inv), "-q").returncode == 0
    known, saved, fake = lab_known_hosts(name, tmp_path)
    lines = [(f"{ln.split()[0]} ssh-ed25519 {fake}" if ln.split()[1] == "ssh-ed25519" else ln)
             for ln in saved.splitlines() if ln.strip()]
    try:
        known.write_text("\n".join(lines) + "\n")
        r = dnet("plan", "-i", str(inv), "-q")
        assert r.returncode == 1
        out = r.stdout + r.stderr
        assert "node1 (root@192.168.102." in out and "the host key CHANGED (got ssh-ed25519 SHA256:" in out, out
        assert "refusing to connect" in out
    finally:
        known.write_text(saved)
    assert dnet("plan", "-i", str(inv), "-q").returncode == 0


def test_a_host_that_restarted_is_reached_again(lab: tuple[str, Path], own_holder: Path) -> None:
    name, inv = lab
    assert dnet("plan", "-i", str(inv), "-q").returncode == 0
    node = f"dnet-lab-{name}-node2"  # every session ends; a new daemon listens
    subprocess.run(["docker", "exec", node, "pkill", "-x", "sshd"], check=True)
    subprocess.run(["docker", "exec", node, "/usr/sbin/sshd", "-o", "HostKey=/etc/ssh/ssh_host_ed25519_key"],
                   check=True)
    r = dnet("exec", "-i", str(inv), "--json", "--", "hostname")
    assert r.returncode == 0, r.stderr
    assert {h: v["rc"] for h, v in json.loads(r.stdout)["hosts"].items()} == {"node1": 0, "node2": 0}
    stats = held.stats()
    assert stats is not None and stats["opened"] == 3, stats  # node2 once more, node1 reused


def test_an_interrupted_run_closes_its_commands_channel(lab: tuple[str, Path], own_holder: Path) -> None:
    name, inv = lab
    marker = f"sleep 3{uuid.uuid4().int % 1000 + 100}"
    proc = subprocess.Popen([sys.executable, "-m", "dnet", "exec", "-i", str(inv), "--limit", "node1", "--", marker],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and marker not in node_sh(name, "node1", "ps -eo args", check=False):
        time.sleep(0.2)
    chans = sessions(name, "node1")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130 or "interrupted" in err, err
    # the holder closed the channel: the next run on the same held connection still works at once
    r = dnet("exec", "-i", str(inv), "--limit", "node1", "--", "true")
    assert r.returncode == 0, r.stderr
    assert sessions(name, "node1") == chans
    node_sh(name, "node1", f"pkill -f '{marker}' || true", check=False)


def test_another_user_cannot_reach_the_holder(lab: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the holder's own folder (mode 0700) stands between another user and the socket here: the folder
    around it is open to all."""
    parent = Path(tempfile.mkdtemp(prefix="dnet-open-"))
    parent.chmod(0o755)
    runtime = parent / "run"
    monkeypatch.setenv("DNET_RUNTIME_DIR", str(runtime))
    try:
        assert dnet("plan", "-i", str(lab[1]), "-q").returncode == 0
        probe = ("import socket,sys\ns=socket.socket(socket.AF_UNIX)\ntry:\n s.connect(sys.argv[1]); "
                 "print('connected')\nexcept OSError as e: print(e.errno)")
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c",
                            probe, str(runtime / "holder.sock")], capture_output=True, text=True, check=True)
        assert r.stdout.strip() == "13"  # EACCES
        assert held.stats() is not None  # the owner still reaches it
    finally:
        held.close()
        shutil.rmtree(parent, ignore_errors=True)


def test_a_runtime_folder_others_can_enter_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    monkeypatch.setenv("DNET_RUNTIME_DIR", str(shared))
    with pytest.raises(Exception, match=r"is not a private directory of this user \(owner uid 0, mode 755\); "
                                        r"remove it so dnet can make its own"):
        wire.socket_path()


def test_facts_of_a_host_whose_engine_is_stopped_start_no_docker_process(lab: tuple[str, Path]) -> None:
    """Each docker CLI run costs the host ~40 ms of CPU (and a Go runtime's threads): with the engine stopped, the
    facts read used to start a dozen of them (107 new pids here); it now asks `docker version` at most, and not even
    that when the socket is gone."""
    from dnet.facts import parse, script

    name, _ = lab
    node_sh(name, "node2", "service docker stop >/dev/null 2>&1; while [ -S /var/run/docker.sock ]; do sleep 0.1; "
                           "done")
    try:
        # the pid namespace is the node's own, and with dockerd stopped nothing else in it starts processes
        counted = ("read -r a b c d p </proc/loadavg; (run() {\n" + script(["dnet/probe:latest"]) +
                   "\n}; run) >/tmp/facts.out 2>&1; read -r a b c d q </proc/loadavg; echo $((q - p))")
        pids = int(node_sh(name, "node2", counted).strip())
        out = node_sh(name, "node2", "cat /tmp/facts.out")
        f = parse("node2", out)
        assert f.engine is None
        assert f.engine_error == ("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker "
                                  "daemon running?")
        assert f.mtus.get("eth0") and any(r.startswith(SUBNET) for r in f.routes), (f.mtus, f.routes)
        assert pids <= 20, pids
    finally:
        node_sh(name, "node2", "service docker start >/dev/null 2>&1; for i in $(seq 100); do docker info "
                               ">/dev/null 2>&1 && break; sleep 0.2; done")


@pytest.fixture
def openssh(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """DNET_TRANSPORT=openssh with a runtime folder short enough for ssh's control sockets."""
    runtime = Path(tempfile.mkdtemp(prefix="dnet-o"))
    monkeypatch.setenv("DNET_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("DNET_TRANSPORT", "openssh")
    yield runtime / "ssh"
    dnet("ssh-close")
    shutil.rmtree(runtime, ignore_errors=True)


def test_openssh_transport_applies_and_keeps_one_master_per_host(lab: tuple[str, Path], openssh: Path) -> None:
    """The same job through `ssh` with ControlPersist: a swarm formed (join tokens on stdin), a no-op after, and
    one master connection per host serving every later run."""
    name, inv = lab
    before = {n: sessions(name, n) for n in ("node1", "node2")}
    r = dnet("apply", "-i", str(inv), "--yes", "--json")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    token_free = r.stdout + r.stderr
    assert "SWMTKN" not in token_free
    for _ in range(2):
        r = dnet("plan", "-i", str(inv), "--detailed-exitcode", "-q")
        assert r.returncode == 0, r.stdout + r.stderr
    assert len([p for p in openssh.iterdir() if p.is_socket()]) == 2
    assert {n: sessions(name, n) - before[n] for n in ("node1", "node2")} == {"node1": 1, "node2": 1}
    r = dnet("exec", "-i", str(inv), "--json", "--", "docker info --format '{{.Swarm.LocalNodeState}}'")
    assert {h: v["stdout"] for h, v in json.loads(r.stdout)["hosts"].items()} == {"node1": "active\n",
                                                                                   "node2": "active\n"}
    monkeypatch_env = {**os.environ, "DNET_TRANSPORT": "paramiko"}
    r = subprocess.run([sys.executable, "-m", "dnet", "plan", "-i", str(inv), "--detailed-exitcode", "-q"],
                       capture_output=True, text=True, cwd=ROOT, env=monkeypatch_env)
    assert r.returncode == 0, r.stdout + r.stderr  # both transports read the same hosts the same way
    assert json.loads(dnet("ssh-close", "--json").stdout)["openssh_masters"] == 2
    assert not [p for p in openssh.iterdir() if p.is_socket()]


def test_the_inventory_can_ask_for_openssh_per_host(lab: tuple[str, Path], openssh: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """`transport:` in the inventory beats DNET_TRANSPORT: node1 says openssh, defaults say paramiko."""
    _, inv = lab
    monkeypatch.delenv("DNET_TRANSPORT")
    text = inv.read_text()
    assert "defaults:\n" in text
    mixed = tmp_path / "mixed.yml"
    mixed.write_text(text.replace("defaults:\n", "defaults:\n  transport: paramiko\n", 1))
    r = dnet("show", "-i", str(mixed), "--json")
    node1_text = mixed.read_text()
    show = json.loads(r.stdout)["hosts"]
    assert {h: (v["transport"], v["sources"]["transport"]) for h, v in show.items()} == {
        "node1": ("paramiko", "defaults"), "node2": ("paramiko", "defaults")}
    # node1 alone on openssh: one master socket, for node1's address
    lines = node1_text.splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.strip().startswith("node1:"))
    indent = len(lines[at + 1]) - len(lines[at + 1].lstrip())
    lines.insert(at + 1, " " * indent + "transport: openssh")
    mixed.write_text("\n".join(lines) + "\n")
    r = dnet("plan", "-i", str(mixed), "--detailed-exitcode", "-q")
    assert r.returncode in (0, 2), r.stdout + r.stderr
    masters = [p for p in openssh.iterdir() if p.is_socket()]
    assert len(masters) == 1, masters
    assert json.loads(dnet("ssh-close", "--json").stdout)["openssh_masters"] == 1


def test_openssh_transport_verifies_host_keys(lab: tuple[str, Path], openssh: Path, tmp_path: Path) -> None:
    name, inv = lab
    known, saved, fake = lab_known_hosts(name, tmp_path)
    try:
        known.write_text("".join(f"{ln.split()[0]} ssh-ed25519 {fake}\n" for ln in saved.splitlines()
                                 if ln.strip() and ln.split()[1] == "ssh-ed25519"))
        r = dnet("plan", "-i", str(inv), "-q")
        out = r.stdout + r.stderr
        assert r.returncode == 1 and "node1 (root@192.168.102." in out, out
        assert "cannot connect: the host key CHANGED; refusing to connect" in out, out
        known.write_text("")
        r = dnet("plan", "-i", str(inv), "-q")
        out = r.stdout + r.stderr
        assert r.returncode == 1 and "its host key is not in known_hosts" in out, out
        r = dnet("plan", "-i", str(inv), "-q", "--accept-new-host-keys")
        assert r.returncode == 0, r.stdout + r.stderr
        assert len(known.read_text().splitlines()) >= 2  # recorded, as OpenSSH's accept-new does
    finally:
        known.write_text(saved)


def test_a_bad_transport_name_is_one_clear_error(lab: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DNET_TRANSPORT", "telnet")
    r = dnet("plan", "-i", str(lab[1]), "-q")
    assert r.returncode == 1
    assert "DNET_TRANSPORT='telnet' is not a transport; use paramiko (the default) or openssh" in r.stderr


def test_a_run_through_the_holder_imports_no_ssh_library(lab: tuple[str, Path], own_holder: Path,
                                                        tmp_path: Path) -> None:
    code = ("import sys\nfrom dnet.cli.main import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print(sorted({m.split('.')[0] for m in sys.modules if m.startswith(('paramiko', 'fabric', 'invoke'))}),"
            " file=sys.stderr)")
    env = {**os.environ, "DNET_SSH_CONFIG": str(tmp_path / "none")}  # an ssh_config would need paramiko to read
    for _ in range(2):  # the first starts the holder; both leave the handshakes to it
        r = subprocess.run([sys.executable, "-c", code, "plan", "-i", str(lab[1]), "-q"], capture_output=True,
                           text=True, cwd=ROOT, env=env)
        assert r.stderr.splitlines()[-1] == "[]", r.stdout + r.stderr
    stats = held.stats()
    assert stats is not None and stats["opened"] == 2


def test_a_held_connection_that_cannot_open_a_channel_is_replaced_and_the_command_runs_once(
        lab: tuple[str, Path]) -> None:
    """The channel fails before anything runs (a host that died since the last use): the holder connects afresh
    and runs the command there, once."""
    import socket as so

    from dnet.lab.state import LabState, host_spec
    from dnet.transport import holder
    from dnet.transport.ssh import NotStarted

    name, _ = lab
    state = LabState.load(name)
    spec = host_spec(state, state.nodes[0])
    h = holder.Holder(60)
    req = {"op": "run", "spec": {f: getattr(spec, f) for f in holder.SPEC_FIELDS}, "accept_new": False,
           "command": "echo ran >> /tmp/ran-once; cat /tmp/ran-once | wc -l", "timeout": 30,
           "env": {k: os.environ.get(k) for k in wire.ENV_KEYS}}
    first = h.get(req, check_alive=True)
    calls: list[int] = []

    def broken(timeout: float | None = None) -> object:
        calls.append(1)
        raise NotStarted("node1: the SSH connection was lost")

    first._session = broken  # this connection can no longer open a channel
    node_sh(name, "node1", "rm -f /tmp/ran-once")
    a, b = so.socketpair()
    with a, b:
        reply = h.answer(req, a)
    assert calls == [1] and reply["code"] == 0 and reply["stdout"].strip() == "1", reply
    assert h.opened == 2 and h.get(req, check_alive=False) is not first
    h.close_all()
