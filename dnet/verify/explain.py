"""Turn patterns of failures into likely causes."""
from __future__ import annotations

import re
from collections import Counter

from dnet.facts import HostFacts
from dnet.verify.model import Check

KIND = {"refused": "connection refused: nothing listens there (stopped container, wrong port, lost DNAT)",
        "unresolved": "the name did not resolve: Docker's embedded resolver (127.0.0.11) knows workloads on shared "
                      "networks and forwards other names to the engine's DNS servers",
        "timeout": "timed out: packets dropped on the way (firewall, routing, NAT, MTU)",
        "wrong": "wrong answer", "error": "could not probe",
        "tls": "TLS failed: see the detail (certificate not trusted, or handshake failed)"}
TLS_UNTRUSTED = ("tls: certificate not trusted: the server's certificate is not signed by a CA in the host's CA "
                 "certificates (/etc/ssl/certs, package ca-certificates: a TLS-inspecting proxy's CA must be added "
                 "there and update-ca-certificates run), or it does not name the host in the URL, or it expired")
TLS_HANDSHAKE = ("tls: handshake failed: the port does not speak TLS (an http:// server behind an https:// URL?), "
                 "or client and server share no protocol version or cipher")


def hints(checks: list[Check], facts: dict[str, HostFacts], addrs: dict[str, str] | None = None) -> list[str]:
    """Likely causes, most specific first; each also lands on the checks it explains."""
    out: list[str] = []
    failed = [c for c in checks if not c.ok]

    def note(cs: list[Check], key: str, text: str) -> None:  # key: its entry in docs/troubleshooting.md
        out.append(text)
        for c in cs:
            c.tags.setdefault("hint", text)

    mtu = [c for c in failed if c.result == "mtu"]
    if mtu:
        note(mtu, "mtu", mtu_hint(mtu, checks, facts, addrs or {}))
    overlay = [c for c in failed if "pair" in c.tags and c.result != "mtu"]
    if overlay:
        nodes = Counter(n for c in overlay for n in set(c.tags["pair"].split(">")))
        suspect, count = nodes.most_common(1)[0]
        fine = [c for c in checks if "pair" in c.tags and c.ok and suspect not in c.tags["pair"].split(">")
                and c.result != "mtu"]
        if count == len(overlay) and (fine or len(nodes) <= 2):
            note(overlay, "overlay-one-host",
                 f"overlay traffic fails only between {suspect} and other hosts: VXLAN (4789/udp) or gossip "
                          f"(7946) is blocked on {suspect}, or its MTU does not match, or its engine's gossip did "
                          f"not start when it joined (`docker network inspect -v NETWORK` on {suspect} lists no "
                          "peers): restart docker there. Right after tasks started it can also be the engines' "
                          "gossip still spreading them (up to about a minute): run verify again first")
        else:
            note(overlay, "overlay-several-hosts",
                 "overlay traffic fails between several hosts: check 4789/udp and 7946 between all swarm hosts "
                          "and that every host advertises a reachable address")
    ingress = [c for c in failed if c.tags.get("mode") == "ingress"]
    host_mode_ok = any(c.ok for c in checks if c.tags.get("mode") == "host")
    if ingress and (host_mode_ok or not any(f.ipvs for f in facts.values())):
        note(ingress, "ingress-without-ipvs",
             "published ports fail only in ingress mode: the kernel has no IPVS (ip_vs), so the routing "
                      "mesh cannot work; publish with mode: host and use endpoint_mode: dnsrr")
    by_src: dict[str, dict[str, list[Check]]] = {}
    for c in checks:
        if "egress" in c.tags:
            by_src.setdefault(c.src, {}).setdefault(c.tags["egress"], []).append(c)
    dns_broken = [cs for cs in by_src.values()
                  if any(not c.ok for c in cs.get("dns", [])) and all(c.ok for c in cs.get("ip", [None]) if c)]
    if dns_broken:
        cs = [c for group in dns_broken for k in ("dns", "http") for c in group.get(k, []) if not c.ok]
        srcs = sorted({c.src for c in cs})
        note(cs, "egress-dns", f"egress DNS fails from {', '.join(srcs)} while fetching by IP works: the engine's "
                 "DNS servers (dns in /etc/docker/daemon.json) do not answer")
    tls = [c for c in failed if c.result == "tls"]
    untrusted = [c for c in tls if c.detail.startswith("certificate")]
    if untrusted:
        note(untrusted, "tls-untrusted", TLS_UNTRUSTED)
    if len(untrusted) < len(tls):
        handshake = [c for c in tls if c not in untrusted]
        note(handshake, "tls-handshake", TLS_HANDSHAKE)
    leaks = [c for c in failed if c.tags.get("egress") == "internal"]
    if leaks:
        note(leaks, "internal-leak", "a container on internal networks only reached the internet: the network has "
                    "a way out (not internal, or an extra route/NAT rule)")
    isolation = [c for c in failed if c.tags.get("isolation")]
    if isolation:
        note(isolation, "isolation-broken", "containers on different networks of one host reach each other: bridge "
                        "isolation is broken "
                        "(iptables DOCKER-ISOLATION rules missing?)")
    for c in failed:
        c.tags.setdefault("hint", KIND.get(c.result, "") if c.expect else "reachable, but must not be")
    return out


def _sent(c: Check) -> int:
    """The packet size a failed MTU probe sent (from its detail: "1450-byte packets via eth0 ...")."""
    m = re.match(r"(\d+)-byte", c.detail)
    return int(m[1]) if m else 0


def mtu_hint(mtu: list[Check], checks: list[Check], facts: dict[str, HostFacts], addrs: dict[str, str]) -> str:
    """Name the hosts and interfaces on the failing paths, the sizes that passed and failed, and the fix."""
    hosts = Counter(h for c in mtu for h in (c.tags["pair"].split(">") if "pair" in c.tags else [c.where.host]))
    suspect = hosts.most_common(1)[0][0]
    links = []
    for h in sorted(hosts):
        f = facts.get(h)
        iface = f.interface_of(addrs.get(h, "")) if f else None
        if f and iface and iface in f.mtus:
            links.append((h, iface, f.mtus[iface]))
    underlay = ", ".join(f"{h} {i} mtu {m}" for h, i, m in links) or "interfaces not read"
    sizes = sorted({_sent(c) for c in mtu if _sent(c)})
    overhead = 76 if any(c.tags.get("encrypted") for c in mtu) else 50
    overlay = [c for c in mtu if "net" in c.tags]
    path = min((m for _, _, m in links), default=0)
    what = f"{', '.join(map(str, sizes))}-byte packets" if sizes else "full-size packets"
    text = (f"MTU black hole: {what} are lost while 84-byte ones cross, on {len(mtu)} paths, all through "
            f"{suspect}. Underlay: {underlay}.")
    if overlay and path:
        names = sorted({c.tags["net"] for c in overlay})
        nets = f"Overlay {names[0]} needs its" if len(names) == 1 else f"Overlays {', '.join(names)} need their"
        text += (f" {nets} MTU + {overhead} bytes (VXLAN{' + ESP' if overhead == 76 else ''}) on "
                 f"every underlay link. Fix: lower the engine MTU (defaults.docker.mtu) and the overlay's "
                 f"(networks.NAME.mtu) to {path - overhead} or less, or raise the smaller underlay MTU")
    elif path:
        text += f" Fix: raise the smaller underlay MTU to match the others, or lower the others to {path}"
    else:
        text += " Fix: lower the engine and overlay MTU below the path MTU, or raise the underlay MTU"
    low = min(links, key=lambda x: x[2]) if links else None
    return text + (f" ({low[0]} {low[1]} is {low[2]})." if low and path else ".")
