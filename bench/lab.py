"""Benchmark labs: node image build time and `lab up` of 3 nodes with the image cached.

Run: .venv/bin/python bench/lab.py [--rebuild] [--runs N]. Prints figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import time

from dnet.images import PROBE_IMAGE, ensure_probe
from dnet.lab import dind
from dnet.lab.image import build_node_image
from dnet.transport.local import LocalTransport


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rebuild", action="store_true", help="also time a forced node image build")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    subprocess.run(["docker", "rmi", "-f", PROBE_IMAGE], capture_output=True)
    t0 = time.monotonic()
    ensure_probe(LocalTransport("local"))
    print(f"probe image assembled on this machine: {time.monotonic() - t0:.2f} s")
    if args.rebuild:
        print(f"node image build (debootstrap + import): {build_node_image(force=True):.1f} s")
    else:
        build_node_image()
    ups, downs = [], []
    for i in range(args.runs):
        name = f"bench{i}"
        t0 = time.monotonic()
        dind.up(name, 3, "192.168.95.0/24", False, lambda m: None)
        ups.append(time.monotonic() - t0)
        t0 = time.monotonic()
        dind.down(name, lambda m: None)
        downs.append(time.monotonic() - t0)
    print(f"lab up, 3 nodes, image cached: median {statistics.median(ups):.2f} s  (runs: "
          + ", ".join(f"{u:.2f}" for u in ups) + ")")
    print(f"lab down: median {statistics.median(downs):.2f} s")


if __name__ == "__main__":
    main()
