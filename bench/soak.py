"""Soak: apply, verify and a no-op apply, round after round in one process, printing what could leak.

Per round: seconds, containers and networks on every host, the SSH connections this process holds (sockets to
port 22 in /proc/self/net/tcp) and has opened so far, open file descriptors and dnet's resident memory. Nothing
should grow after the first round.

Run: .venv/bin/python bench/soak.py [--rounds N] [-i INVENTORY]
Without -i it brings up a 3-node lab with the example (and takes it down after). Prints figures and a verdict
line; exits 1 when a count grew from round 2 to the last round, or a round failed. Not part of the test suite.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from dnet import api
from dnet.inventory import Loaded
from dnet.transport import connections_opened

SUBNET = "192.168.82.0/24"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def ssh_sockets() -> int:
    """TCP sockets of this process's network namespace to a remote port 22, established (state 01)."""
    count = 0
    for line in Path("/proc/self/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        if parts[2].endswith(":0016") and parts[3] == "01":
            count += 1
    return count


def host_counts(inv: Loaded) -> tuple[int, int]:
    """Containers and networks over all hosts, read with dnet's own transport."""
    from dnet.session import open_session

    s = open_session(inv, False, lambda m: None)
    try:
        ctrs = nets = 0
        for t in s.transports.values():
            out = t.run("docker ps -aq | wc -l; docker network ls -q | wc -l").stdout.split()
            ctrs, nets = ctrs + int(out[0]), nets + int(out[1])
        return ctrs, nets
    finally:
        s.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("-i", "--inventory")
    args = ap.parse_args()
    lab = None
    if args.inventory:
        inv_path = Path(args.inventory)
    else:
        lab = api.lab_up(f"soak{uuid.uuid4().hex[:4]}", example=True, subnet=SUBNET)
        inv_path = lab.inventory
    inv = api.load(inv_path)
    rows: list[dict[str, Any]] = []
    failed = False
    try:
        print("round  seconds  containers  networks  ssh-open  ssh-opened  fds  rss-MB  checks", flush=True)
        for n in range(1, args.rounds + 1):
            t0 = time.monotonic()
            applied = api.apply(inv)
            report = api.verify(inv)
            again = api.apply(inv)
            seconds = time.monotonic() - t0
            ctrs, nets = host_counts(inv)
            row = {"round": n, "seconds": round(seconds, 1), "containers": ctrs, "networks": nets,
                   "ssh_open": ssh_sockets(), "ssh_opened": connections_opened(),
                   "fds": len(os.listdir("/proc/self/fd")), "rss_mb": round(rss_mb(), 1),
                   "checks": f"{len(report.passed)}/{len(report.checks)}"}
            rows.append(row)
            print(f"{n:5}  {row['seconds']:7}  {ctrs:10}  {nets:8}  {row['ssh_open']:8}  {row['ssh_opened']:10}  "
                  f"{row['fds']:3}  {row['rss_mb']:6}  {row['checks']}", flush=True)
            if not applied.ok or not again.ok or again.changes:
                print(f"round {n}: apply failed or the second apply changed something: {again.changes}")
                failed = True
                break
    finally:
        if lab:
            api.lab_down(lab.name)
    grew = [k for k in ("containers", "networks", "ssh_open", "fds") if len(rows) > 2 and rows[-1][k] > rows[1][k]]
    mem = rows[-1]["rss_mb"] - rows[1]["rss_mb"] if len(rows) > 2 else 0.0
    print(json.dumps({"rounds": rows, "grew": grew, "rss_growth_mb": round(mem, 1)}))
    if failed:
        verdict = "FAILED"
    elif len(rows) < 3:
        verdict = f"ok ({len(rows)} rounds: growth is judged from round 2 to the last, so run 3 or more)"
    else:
        verdict = f"grew: {', '.join(grew)}" if grew else f"no growth after round 2 (rss {mem:+.1f} MB)"
    print(f"verdict: {verdict}")
    return 1 if failed or grew else 0


if __name__ == "__main__":
    sys.exit(main())
