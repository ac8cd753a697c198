"""Benchmark converge on a fresh 3-node lab: cold apply, no-op apply, plan, SSH connections opened,
and the same steps typed as plain sequential `ssh host docker ...` commands.

Run: .venv/bin/python bench/converge.py [--runs N]. Prints figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

from dnet import converge
from dnet.inventory import load
from dnet.lab import dind, output
from dnet.transport import connections_opened

SUBNET = "192.168.98"


def lab_inventory(name: str, path: Path) -> None:
    state = dind.up(name, 3, f"{SUBNET}.0/24", False, lambda m: None)
    path.write_text(output.inventory(state, output.EXAMPLE))


def dnet_apply(path: Path) -> tuple[float, int, int]:
    before = connections_opened()
    t0 = time.monotonic()
    s = converge.open_session(load(path), False, lambda m: None)
    try:
        plan = converge.make_plan(s)
        outcomes = converge.apply(s, plan, lambda m: None)
        if any(c.kind == "service" for c in plan.changes):
            converge.wait_services(s)
    finally:
        s.close()
    bad = [o for o in outcomes if o.status != "ok"]
    if bad:
        raise SystemExit(f"apply failed: {bad[0].message}")
    return time.monotonic() - t0, len(outcomes), connections_opened() - before


def dnet_plan(path: Path) -> float:
    t0 = time.monotonic()
    s = converge.open_session(load(path), False, lambda m: None)
    try:
        converge.make_plan(s)
    finally:
        s.close()
    return time.monotonic() - t0


def plain_ssh(name: str) -> float:
    """The example's steps as an operator would type them: one ssh per step, in order."""
    key = Path.home() / ".local/share/dnet/labs" / name
    ssh = ["ssh", "-i", str(key / "id_ed25519"), "-o", f"UserKnownHostsFile={key / 'known_hosts'}",
           "-o", "BatchMode=yes"]
    ip = {n: f"{SUBNET}.{10 + i}" for i, n in enumerate(["node1", "node2", "node3"], 1)}
    body = json.dumps({"dns": [f"{SUBNET}.2"], "mtu": 1450,
                       "default-address-pools": [{"base": "10.210.0.0/16", "size": 24}]})
    daemon = (f"echo '{body}' > /etc/docker/daemon.json && service docker restart >/dev/null && "
              "until docker info >/dev/null 2>&1; do sleep 0.2; done")
    steps = [(n, daemon) for n in ip]
    steps += [("node1", "docker swarm init --advertise-addr eth0 --data-path-addr eth0 "
                        "--default-addr-pool 10.220.0.0/16 >/dev/null")]
    t0 = time.monotonic()

    def run(host: str, cmd: str) -> str:
        return subprocess.run([*ssh, f"root@{ip[host]}", cmd], capture_output=True, text=True, check=True).stdout

    for host, cmd in steps:
        run(host, cmd)
    token = run("node1", "docker swarm join-token -q worker").strip()
    for n in ("node2", "node3"):
        run(n, f"docker swarm join --token {token} --advertise-addr eth0 {ip['node1']}:2377 >/dev/null")
    for n, zone in (("node1", "a"), ("node2", "b"), ("node3", "b")):
        run("node1", f"docker node update --label-add zone={zone} {n}")
    run("node1", "docker network create -d overlay --subnet 10.77.0.0/24 --attachable appnet")
    run("node1", "docker network create -d overlay --subnet 10.78.0.0/24 --attachable --internal backnet")
    run("node2", "docker network create -d bridge --subnet 172.30.0.0/24 localnet")
    run("node2", "docker run -d --name edge --network localnet -p 9090:80 dnet/probe:latest httpd -f -p 80 -h /www")
    run("node3", "docker run -d --name db --network backnet dnet/probe:latest httpd -f -p 5432 -h /www")
    # by tag: each node assembles its own probe image, so node1's image ID is unknown on the others
    run("node1", "docker service create --detach --name web --replicas 3 --endpoint-mode dnsrr --network appnet "
                 "--network backnet --publish published=8080,target=80,mode=host --no-resolve-image "
                 "dnet/probe:latest httpd -f -p 80 -h /www")
    run("node1", "iptables -t nat -N DNET-FWD; iptables -t nat -I PREROUTING -m addrtype --dst-type LOCAL -j DNET-FWD; "
                 f"iptables -t nat -A DNET-FWD -p tcp --dport 8443 -j DNAT --to-destination {ip['node2']}:9090; "
                 f"iptables -t nat -A POSTROUTING -p tcp -d {ip['node2']} --dport 9090 -j MASQUERADE; "
                 f"iptables -I FORWARD -p tcp -d {ip['node2']} --dport 9090 -j ACCEPT")
    run("node1", "for i in $(seq 240); do docker service ls --format '{{.Replicas}}' | grep -q '^3/3' && exit 0; "
                 "sleep 0.5; done; docker service ps --no-trunc web >&2; exit 1")
    return time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    path = Path("/tmp/dnet-bench-converge.yml")
    cold, noop, plan, conns, base = [], [], [], [], []
    for i in range(args.runs):
        name = f"benchc{i}"
        lab_inventory(name, path)
        try:
            t, _, c = dnet_apply(path)
            cold.append(t)
            conns.append(c)
            t, n2, _ = dnet_apply(path)
            noop.append(t)
            assert n2 == 0, "second apply changed things"
            plan.append(dnet_plan(path))
        finally:
            dind.down(name, lambda m: None)
        lab_inventory(name, path)
        try:
            base.append(plain_ssh(name))
        finally:
            dind.down(name, lambda m: None)

    def fmt(xs: list[float]) -> str:
        return f"median {statistics.median(xs):.2f} s (runs: {', '.join(f'{x:.2f}' for x in xs)})"

    print(f"cold apply of inventories/example.yml on 3 nodes: {fmt(cold)}")
    print(f"no-op re-apply: {fmt(noop)}")
    print(f"plan: {fmt(plan)}")
    print(f"SSH connections per apply: {conns} (hosts: 3)")
    print(f"same steps as plain sequential ssh commands: {fmt(base)}")
    print(f"cold apply / plain ssh: {statistics.median(cold) / statistics.median(base):.2f}x")


if __name__ == "__main__":
    main()
