"""Side by side: dnet, pyinfra, Ansible and plain SSH converging the same state on one 3-node lab.

The state: a swarm of 3 (node1 manager), an attachable overlay, a bridge on every node, a 3-replica dnsrr
service with a host-mode port (8080) and a container with a published port (node2:9090). Every tool starts from
the same cold lab (no swarm, no networks, no containers; the image already on every node) and each run is checked:
the service answers on every node, the container answers, and a second run reports no change.

Figures, medians of the repetitions (tools interleaved within each repetition):
  cold      the first run, from the command's start to its exit
  no-op     the second run
  answers   from the cold run's start until every port answers
The floor is the same steps as `ssh host docker ...` commands, one after another, through one multiplexed SSH
connection per host (ControlMaster); "ssh" is the same without multiplexing.

Run: .venv/bin/python bench/compare.py [--runs 3] [--tools dnet,pyinfra,ansible,floor,ssh]
pyinfra and Ansible (with community.docker) are installed from the package index into their own venv the first
time (DNET_BENCH_TOOLS, default /var/cache/dnet-bench/tools). The nodes get python3-docker for Ansible's modules
through a derived node image. Writes bench/results/compare.json. Asserts nothing about time.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import docker
import job  # bench/job.py: this script's directory is on the path

from dnet.errors import DnetError
from dnet.images import PROBE_IMAGE, ensure_probe
from dnet.lab import dind
from dnet.lab.image import build_node_image, node_image_tag
from dnet.lab.state import LabState
from dnet.transport.local import LocalTransport

LAB, SUBNET = "benchcmp", "192.168.81"
HERE = Path(__file__).resolve().parent
TOOLS = Path(os.environ.get("DNET_BENCH_TOOLS", "/var/cache/dnet-bench/tools"))
DNET = str(Path(sys.executable).with_name("dnet"))
NODES = ["node1", "node2", "node3"]
SERVICE = "docker service create --detach --name web --replicas 3 --endpoint-mode dnsrr --network appnet " \
          "--publish published=8080,target=80,mode=host {image} httpd -f -p 80 -h /www"
EDGE = "docker run -d --name edge --network localnet -p 9090:80 {image} httpd -f -p 80 -h /www"


def sh(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)  # type: ignore[call-overload, no-any-return]


def tools_venv() -> Path:
    if not (TOOLS / "bin/ansible-playbook").exists() or not (TOOLS / "bin/pyinfra").exists():
        print(f"installing pyinfra and ansible into {TOOLS} (once)", file=sys.stderr)
        sh([sys.executable, "-m", "venv", str(TOOLS)], check=True)
        sh([str(TOOLS / "bin/pip"), "install", "-q", "pyinfra", "ansible"], check=True)
    return TOOLS


def node_py_image() -> str:
    """The lab node image plus python3-docker (Ansible's docker modules run Python on the node)."""
    base = node_image_tag()
    build_node_image()
    tag = "dnet/node-py:" + base.split(":")[1]
    c = docker.from_env()
    try:
        c.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    print(f"building {tag} (once)", file=sys.stderr)
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "Dockerfile").write_text(
            f"FROM {base}\nRUN apt-get update && apt-get install -y --no-install-recommends python3 python3-docker"
            " && rm -rf /var/lib/apt/lists/*\n")
        r = sh(["docker", "build", "-q", "-t", tag, d])
        if r.returncode:
            raise SystemExit(f"building {tag} failed:\n{r.stderr[-2000:]}")
    return tag


class Lab:
    """One lab, reset to the cold state before every run."""

    def __init__(self, image: str) -> None:
        ensure_probe(LocalTransport("local"))  # one probe image, loaded on every node: the same ID everywhere
        self.state: LabState = dind.up(LAB, 3, f"{SUBNET}.0/24", False, lambda m: None, image=image)
        try:
            self.ip = {n.name: n.address for n in self.state.nodes}
            self.ctr = {n.name: n.container for n in self.state.nodes}
            save = subprocess.Popen(["docker", "save", PROBE_IMAGE], stdout=subprocess.PIPE)
            data = save.communicate()[0]
            for n in NODES:
                subprocess.run(["docker", "exec", "-i", self.ctr[n], "docker", "load", "-q"], input=data,
                               capture_output=True, check=True)
            self.image = self.exec("node1", f"docker image inspect -f '{{{{.Id}}}}' {PROBE_IMAGE}").strip()
        except BaseException:  # never leave the lab behind
            self.down()
            raise

    def exec(self, node: str, cmd: str) -> str:
        return sh(["docker", "exec", self.ctr[node], "sh", "-c", cmd], check=True).stdout

    def reset(self) -> None:
        self.exec("node1", "docker service rm web >/dev/null 2>&1; true")
        clean = ("docker swarm leave --force >/dev/null 2>&1; for i in $(seq 150); do "
                 "[ -z \"$(docker ps -aq)\" ] && break; docker rm -f $(docker ps -aq) >/dev/null 2>&1; sleep 0.2; "
                 "done; "
                 "for i in $(seq 150); do [ -z \"$(docker network ls -q -f name=localnet -f name=appnet)\" ] && break; "
                 "docker network rm localnet appnet >/dev/null 2>&1; sleep 0.2; done; "
                 "docker network prune -f >/dev/null; "
                 # a restarted engine drops stale address pools (seen once in 15 resets: "Pool overlaps")
                 "service docker restart >/dev/null 2>&1; until docker info >/dev/null 2>&1; do sleep 0.2; done")
        done = [subprocess.Popen(["docker", "exec", self.ctr[n], "sh", "-c", clean]) for n in NODES]
        for p in done:
            p.wait()

    def answers(self) -> bool:
        urls = [f"http://{self.ip[n]}:8080/" for n in NODES] + [f"http://{self.ip['node2']}:9090/"]
        for u in urls:
            try:
                with urllib.request.urlopen(u, timeout=1) as r:
                    if r.status != 200:
                        return False
            except OSError:
                return False
        return True

    def check(self) -> None:
        running = self.exec("node1", "docker service ps web -f desired-state=running --format '{{.CurrentState}}'")
        if running.count("Running") != 3:
            raise SystemExit(f"web is not 3/3 running:\n{running}")

    def down(self) -> None:
        dind.down(LAB, lambda m: None)


# --- the tools ------------------------------------------------------------------------------------------------

def write_dnet(lab: Lab, d: Path) -> Path:
    p = d / "dnet.yml"
    p.write_text(job.inventory(lab.state, 1, "node2"))
    return p


def run_dnet(lab: Lab, d: Path) -> tuple[Callable[[], int], Callable[[str], int]]:
    inv = write_dnet(lab, d)

    def go() -> int:
        return sh([DNET, "apply", "-i", str(inv), "--yes", "-q"]).returncode

    def changes(_out: str) -> int:
        r = sh([DNET, "plan", "-i", str(inv), "--json"])
        return len(json.loads(r.stdout)["changes"])

    return go, changes


def write_pyinfra(lab: Lab, d: Path) -> tuple[Path, Path]:
    inv = d / "inventory.py"
    inv.write_text("hosts = [" + ", ".join(
        f"({lab.ip[n]!r}, {{'name': {n!r}, 'ssh_user': 'root', 'ssh_key': {str(lab.state.key)!r}, "
        f"'ssh_known_hosts_file': {str(lab.state.known_hosts)!r}, 'ssh_strict_host_key_checking': 'yes'}})"
        for n in NODES) + "]\n")
    deploy = d / "deploy.py"
    deploy.write_text(f'''
from pyinfra import host, inventory
from pyinfra.operations import docker, python, server

MANAGER = {lab.ip["node1"]!r}
SWARM = "docker info --format '{{{{.Swarm.LocalNodeState}}}}' | grep -qx active"
if host.name == MANAGER:
    server.shell(name="swarm init", commands=[
        f"{{SWARM}} || docker swarm init --advertise-addr eth0 >/dev/null"])
else:
    def join():
        m = inventory.get_host(MANAGER)
        ok, out = m.run_shell_command("docker swarm join-token -q worker")
        token = out.stdout.strip()
        host.run_shell_command(
            f"{{SWARM}} || docker swarm join --token {{token}} --advertise-addr eth0 {{MANAGER}}:2377")
    python.call(name="swarm join", function=join)
if host.name == MANAGER:
    docker.network(name="appnet", network="appnet", driver="overlay", subnet="10.77.0.0/24", attachable=True)
docker.network(name="localnet", network="localnet", driver="bridge", subnet="172.30.0.0/24")
if host.name == MANAGER:
    server.shell(name="service web", commands=[
        "docker service inspect web >/dev/null 2>&1 || " + {SERVICE.format(image=lab.image)!r}])
if host.name == {lab.ip["node2"]!r}:
    docker.container(name="edge", container="edge", image={PROBE_IMAGE!r}, networks=["localnet"],
                     ports=["9090:80"], start=True)
''')
    return inv, deploy


def run_pyinfra(lab: Lab, d: Path) -> tuple[Callable[[], int], Callable[[str], int]]:
    inv, deploy = write_pyinfra(lab, d)
    out: list[str] = []

    def go() -> int:
        r = sh([str(TOOLS / "bin/pyinfra"), "-y", "--parallel", "3", str(inv), str(deploy)], cwd=d)
        out.append(r.stdout + r.stderr)
        return r.returncode

    def changes(_out: str) -> int:
        # the "Grand total" row: hosts, success (changed), error, no change; shell and python.call operations
        # always count as changed, so pyinfra's own figure is not 0 even when nothing changed
        total = [line for line in out[-1].splitlines() if "Grand total" in line]
        if not total:
            raise SystemExit(f"pyinfra printed no results table:\n{out[-1][-2000:]}")
        success = total[-1].split("Grand total")[1].split()[1]
        return 0 if success == "-" else int(success)

    return go, changes


def write_ansible(lab: Lab, d: Path) -> tuple[Path, Path]:
    inv = d / "hosts.ini"
    inv.write_text("[managers]\n" + f"node1 ansible_host={lab.ip['node1']}\n" + "[workers]\n"
                   + "".join(f"{n} ansible_host={lab.ip[n]}\n" for n in NODES[1:])
                   + f"[all:vars]\nansible_user=root\nansible_ssh_private_key_file={lab.state.key}\n"
                   + "ansible_python_interpreter=/usr/bin/python3\n"
                   + f"ansible_ssh_common_args='-o UserKnownHostsFile={lab.state.known_hosts}'\n")
    (d / "ansible.cfg").write_text("[defaults]\nforks = 10\ngathering = explicit\nstdout_callback = default\n"
                                   "[ssh_connection]\npipelining = True\n")
    book = d / "site.yml"
    book.write_text(f"""
- hosts: managers
  tasks:
    - community.docker.docker_swarm: {{state: present, advertise_addr: eth0}}
      register: swarm
- hosts: workers
  tasks:
    - community.docker.docker_swarm:
        state: join
        advertise_addr: eth0
        join_token: "{{{{ hostvars['node1'].swarm.swarm_facts.JoinTokens.Worker }}}}"
        remote_addrs: ["{lab.ip['node1']}:2377"]
- hosts: managers
  tasks:
    - community.docker.docker_network: {{name: appnet, driver: overlay, attachable: true,
        ipam_config: [{{subnet: 10.77.0.0/24}}]}}
- hosts: all
  tasks:
    - community.docker.docker_network: {{name: localnet, driver: bridge, ipam_config: [{{subnet: 172.30.0.0/24}}]}}
- hosts: managers
  tasks:
    - community.docker.docker_swarm_service:
        name: web
        image: "{PROBE_IMAGE}"
        resolve_image: false
        command: [httpd]
        args: [-f, -p, "80", -h, /www]
        replicas: 3
        endpoint_mode: dnsrr
        networks: [appnet]
        publish: [{{published_port: 8080, target_port: 80, mode: host}}]
- hosts: node2
  tasks:
    - community.docker.docker_container:
        name: edge
        image: "{PROBE_IMAGE}"
        command: [httpd, -f, -p, "80", -h, /www]
        networks: [{{name: localnet}}]
        published_ports: ["9090:80"]
        networks_cli_compatible: true
""")
    return inv, book


def run_ansible(lab: Lab, d: Path) -> tuple[Callable[[], int], Callable[[str], int]]:
    inv, book = write_ansible(lab, d)
    out: list[str] = []

    def go() -> int:
        r = sh([str(TOOLS / "bin/ansible-playbook"), "-i", str(inv), str(book)], cwd=d,
               env={**os.environ, "ANSIBLE_CONFIG": str(d / "ansible.cfg")})
        out.append(r.stdout + r.stderr)
        return r.returncode

    def changes(_out: str) -> int:
        return sum(int(w.split("=")[1]) for line in out[-1].splitlines() if " : ok=" in line
                   for w in line.split() if w.startswith("changed="))

    return go, changes


def run_shell(lab: Lab, d: Path, mux: bool) -> tuple[Callable[[], int], Callable[[str], int]]:
    """The steps typed as ssh commands, in order, as an operator would; the no-op run only looks."""
    opts = ["-i", str(lab.state.key), "-o", f"UserKnownHostsFile={lab.state.known_hosts}", "-o", "BatchMode=yes"]
    if mux:
        opts += ["-o", "ControlMaster=auto", "-o", f"ControlPath={d}/%h.sock", "-o", "ControlPersist=60"]
    state = {"cold": True}

    def run(node: str, cmd: str) -> str:
        return sh(["ssh", *opts, f"root@{lab.ip[node]}", cmd], check=True).stdout

    def go() -> int:
        if mux:  # each run starts without a master, as a fresh command would
            for n in NODES:
                sh(["ssh", *opts, "-O", "exit", f"root@{lab.ip[n]}"])
        if not state["cold"]:
            for n in NODES:
                run(n, "docker info --format '{{.Swarm.LocalNodeState}}'; docker network inspect localnet >/dev/null")
            run("node1", "docker network inspect appnet >/dev/null; docker service inspect web >/dev/null")
            run("node2", "docker inspect edge >/dev/null")
            return 0
        state["cold"] = False
        run("node1", "docker swarm init --advertise-addr eth0 >/dev/null")
        token = run("node1", "docker swarm join-token -q worker").strip()
        for n in NODES[1:]:
            run(n, f"docker swarm join --token {token} --advertise-addr eth0 {lab.ip['node1']}:2377 >/dev/null")
        run("node1", "docker network create -d overlay --subnet 10.77.0.0/24 --attachable appnet")
        for n in NODES:
            run(n, "docker network create -d bridge --subnet 172.30.0.0/24 localnet")
        run("node2", EDGE.format(image=PROBE_IMAGE))
        run("node1", SERVICE.format(image=lab.image))
        return 0

    return go, lambda _out: 0


def measure(lab: Lab, name: str, d: Path) -> dict[str, float | int]:
    Maker = Callable[[Lab, Path], tuple[Callable[[], int], Callable[[str], int]]]
    makers: dict[str, Maker] = {"dnet": run_dnet, "pyinfra": run_pyinfra, "ansible": run_ansible,
                                "floor": lambda lab, d: run_shell(lab, d, True),
                                "ssh": lambda lab, d: run_shell(lab, d, False)}
    go, changes = makers[name](lab, d)
    lab.reset()
    try:
        return _measure(lab, name, go, changes)
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"{name}: {shlex.join(exc.cmd)} failed: {exc.stderr}") from None


def _measure(lab: Lab, name: str, go: Callable[[], int], changes: Callable[[str], int]) -> dict[str, float | int]:
    t0 = time.monotonic()
    if go():
        raise SystemExit(f"{name}: the cold run failed")
    cold = time.monotonic() - t0
    while not lab.answers():
        if time.monotonic() - t0 > 120:
            raise SystemExit(f"{name}: the ports did not answer within 120 s")
        time.sleep(0.05)
    answers = time.monotonic() - t0
    lab.check()
    t0 = time.monotonic()
    if go():
        raise SystemExit(f"{name}: the no-op run failed")
    noop = time.monotonic() - t0
    return {"cold": cold, "noop": noop, "answers": answers, "second_run_changes": changes("")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tools", default="dnet,pyinfra,ansible,floor,ssh")
    ap.add_argument("--out", default=str(HERE / "results/compare.json"))
    args = ap.parse_args()
    names = args.tools.split(",")
    if {"pyinfra", "ansible"} & set(names):
        tools_venv()
    try:
        lab = Lab(node_py_image() if "ansible" in names else node_image_tag())
    except DnetError as exc:
        raise SystemExit(f"compare: {exc}") from None
    runs: dict[str, list[dict[str, float | int]]] = {n: [] for n in names}
    try:
        for rep in range(args.runs):
            order = names[rep % len(names):] + names[:rep % len(names)]
            for name in order:
                with tempfile.TemporaryDirectory() as d:
                    r = measure(lab, name, Path(d))
                runs[name].append(r)
                print(f"run {rep + 1} {name}: cold {r['cold']:.2f} s, no-op {r['noop']:.2f} s, answers "
                      f"{r['answers']:.2f} s, changes on the second run: {r['second_run_changes']}", file=sys.stderr)
    finally:
        lab.down()
    med = {n: {k: statistics.median(float(r[k]) for r in rs) for k in ("cold", "noop", "answers")}
           for n, rs in runs.items()}
    floor = med.get("floor")
    print(f"\n{'tool':10} {'cold s':>8} {'no-op s':>8} {'answers s':>10}"
          + ("   vs floor (cold, no-op, answers)" if floor else ""))
    for n, m in med.items():
        ratio = (f"   {m['cold'] / floor['cold']:.2f}x, {m['noop'] / floor['noop']:.2f}x, "
                 f"{m['answers'] / floor['answers']:.2f}x") if floor else ""
        print(f"{n:10} {m['cold']:8.2f} {m['noop']:8.2f} {m['answers']:10.2f}{ratio}")
    versions = {"dnet": sh([DNET, "--version"]).stdout.strip()}
    if {"pyinfra", "ansible"} & set(names):
        versions["pyinfra"] = sh([str(TOOLS / "bin/pyinfra"), "--version"]).stdout.strip()
        versions["ansible"] = sh([str(TOOLS / "bin/ansible"), "--version"]).stdout.splitlines()[0]
    Path(args.out).write_text(json.dumps({
        "date": time.strftime("%Y-%m-%d"), "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                                        "kernel": platform.release()},
        "versions": versions, "runs": runs, "medians": med}, indent=2) + "\n")
    print(f"\nwritten: {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
