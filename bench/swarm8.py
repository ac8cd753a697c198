"""Cold apply of a swarm of 8 Docker-in-Docker nodes against the same job on 3 nodes.

The job grows with the nodes: 3 managers (1 on the 3-node lab), the rest workers, an attachable overlay, a bridge
on every node, a service with one replica per node (host-mode port 8080), and a container on the last node.
Each size gets a fresh lab per run; figures are medians: cold apply (until every replica runs), no-op apply,
verify, SSH connections per apply.

Run: .venv/bin/python bench/swarm8.py [--runs 3] [--sizes 3,8]. Prints figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import job  # bench/job.py: this script's directory is on the path

from dnet.lab import dind
from dnet.lab.state import LabState

SUBNET = "192.168.80"
DNET = str(Path(sys.executable).with_name("dnet"))


def inventory(state: LabState, path: Path) -> None:
    path.write_text(job.inventory(state, 3 if len(state.nodes) >= 5 else 1, state.nodes[-1].name))


def timed(*args: str) -> tuple[float, dict[str, object]]:
    t0 = time.monotonic()
    r = subprocess.run([DNET, *args, "--json"], capture_output=True, text=True)
    took = time.monotonic() - t0
    if r.returncode not in (0,):
        try:  # what failed, not the tail of a long JSON document
            data = json.loads(r.stdout)
            failed = {"failed": [c for c in data.get("checks", []) if not c.get("ok")],
                      "findings": data.get("findings"), "hints": data.get("hints")}
            shown = json.dumps(failed, indent=1)[-6000:]
        except ValueError:
            shown = r.stdout[-3000:]
        raise SystemExit(f"dnet {' '.join(args)} exited {r.returncode}:\n{shown}\n{r.stderr[-2000:]}")
    return took, json.loads(r.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sizes", default="3,8")
    args = ap.parse_args()
    path = Path("/tmp/dnet-bench-swarm8.yml")
    figures: dict[int, dict[str, list[float]]] = {}
    for rep in range(args.runs):
        for size in (int(x) for x in args.sizes.split(",")):
            name = f"bench8-{size}"
            t0 = time.monotonic()
            state = dind.up(name, size, f"{SUBNET}.0/24", False, lambda m: None)
            up = time.monotonic() - t0
            try:
                inventory(state, path)
                cold, out = timed("apply", "-i", str(path), "--yes")
                changes = len(out["changes"])  # type: ignore[arg-type]
                for w in out.get("warnings") or []:  # type: ignore[attr-defined]
                    print(f"apply warned: {w}", file=sys.stderr)
                if cold > 30:  # a slow apply: say what it waited for
                    print(f"slow cold apply: services {out.get('services')}", file=sys.stderr)
                noop, out2 = timed("apply", "-i", str(path), "--yes")
                assert not out2["changes"], "the second apply changed things"
                ver, res = timed("verify", "-i", str(path))
                summary = res["summary"]
            finally:
                dind.down(name, lambda m: None)
            f = figures.setdefault(size, {})
            for k, v in (("lab up", up), ("cold apply", cold), ("no-op apply", noop), ("verify", ver)):
                f.setdefault(k, []).append(v)
            print(f"run {rep + 1}, {size} nodes: lab up {up:.1f} s, cold apply {cold:.2f} s ({changes} changes), "
                  f"no-op {noop:.2f} s, verify {ver:.2f} s ({summary})", file=sys.stderr)
    print(f"\n{'nodes':>5} {'lab up s':>9} {'cold apply s':>13} {'no-op s':>8} {'verify s':>9}")
    for size, f in figures.items():
        m = {k: statistics.median(v) for k, v in f.items()}
        print(f"{size:>5} {m['lab up']:9.1f} {m['cold apply']:13.2f} {m['no-op apply']:8.2f} {m['verify']:9.2f}")


if __name__ == "__main__":
    main()
