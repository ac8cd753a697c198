"""Benchmark verify: time for the example on a fresh, applied 3-node lab, and how it scales with parallelism.

Run: .venv/bin/python bench/verify.py [--runs N]. Prints figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from dnet import converge
from dnet.inventory import load
from dnet.lab import dind, output
from dnet.verify import verify

SUBNET = "192.168.89"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    path = Path("/tmp/dnet-bench-verify.yml")
    state = dind.up("benchv", 3, f"{SUBNET}.0/24", False, lambda m: None)
    try:
        path.write_text(output.inventory(state, output.EXAMPLE))
        s = converge.open_session(load(path), False, lambda m: None)
        try:
            converge.apply(s, converge.make_plan(s), lambda m: None)
            converge.wait_services(s)
        finally:
            s.close()
        times, counts, sources = [], [], []
        for _ in range(args.runs):
            t0 = time.monotonic()
            s = converge.open_session(load(path), False, lambda m: None)
            try:
                checks = verify(s, lambda m: None).checks
            finally:
                s.close()
            times.append(time.monotonic() - t0)
            counts.append(len(checks))
            sources.append(len({c.where for c in checks}))
            failed = sum(not c.ok for c in checks)
            if failed:
                print(f"warning: {failed} checks failed")
        print(f"verify of inventories/example.yml on 3 nodes: median {statistics.median(times):.2f} s "
              f"(runs: {', '.join(f'{t:.2f}' for t in times)})")
        print(f"checks: {counts[0]} from {sources[0]} probe sources (one probe container per source, all in parallel);"
              f" {statistics.median(times) / counts[0] * 1000:.0f} ms per check on average")
    finally:
        dind.down("benchv", lambda m: None)


if __name__ == "__main__":
    main()
