"""Prove the network: derive checks from the inventory, probe them in parallel, explain failures."""
from __future__ import annotations

import time
from collections.abc import Callable

from dnet.inventory.resolve import address_of
from dnet.inventory.schema import URL_RE
from dnet.session import Session
from dnet.transport.base import quote
from dnet.verify import explain, probe
from dnet.verify.derive import derive
from dnet.verify.model import Check

Log = Callable[[str], None]


def egress_addresses(s: Session) -> dict[str, str]:
    """Resolve each egress host once, on a reachable host with its own resolver (not the containers')."""
    names = sorted({URL_RE.match(u)["host"] for u in s.loaded.model.egress})  # type: ignore[index]
    out: dict[str, str] = {}
    if not names or not s.transports:
        return out
    t = next(iter(s.transports.values()))
    script = "; ".join(f"echo {quote(n)} $(getent ahostsv4 {quote(n)} | head -1)" for n in names)  # one round trip
    for line in t.run(script, check=False).stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            out[parts[0]] = parts[1]
    return out


def verify(s: Session, log: Log) -> tuple[list[Check], list[str], float]:
    """Derive, probe and explain; return checks, hints and seconds spent."""
    start = time.monotonic()
    checks = derive(s.loaded.model, s.specs, s.facts, egress_addresses(s))
    log(f"{len(checks)} checks derived; probing")
    probe.run(checks, s.transports, log)
    hints = explain.hints(checks, s.facts, {h: address_of(spec) for h, spec in s.specs.items()})
    return checks, hints, time.monotonic() - start
