"""Evidence for explaining failures (verify's findings, and doctor's): one batched read per host.

Facts say what dnet manages; evidence is what else on a host can break a path: forwarding, NAT, filter rules,
whether the engine's DNS servers answer.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from dnet.facts import MARK, sections
from dnet.images import PROBE_IMAGE
from dnet.transport.base import Transport

FILTER_CHAINS = ("INPUT", "FORWARD", "DOCKER-USER")


@dataclass
class Rule:
    """One iptables filter rule that drops or rejects traffic."""

    chain: str
    text: str
    protocol: str = ""  # "" matches every protocol
    port: int | None = None  # destination port, None for every port
    table: str = "filter"

    def command(self) -> str:
        """The rule as the command that adds it."""
        return f"iptables {'' if self.table == 'filter' else f'-t {self.table} '}{self.text}"

    def delete(self) -> str:
        """The command that removes it."""
        return self.command().replace(" -A ", " -D ", 1)

    def matches(self, protocol: str, port: int | None) -> bool:
        return (not self.protocol or self.protocol == protocol) and (self.port is None or self.port == port)


@dataclass
class HostEvidence:
    """What one host says about forwarding, NAT, filtering and DNS."""

    host: str
    ip_forward: bool | None = None
    drops: list[Rule] = field(default_factory=list)
    masquerade: list[str] = field(default_factory=list)  # source subnets with a MASQUERADE rule in POSTROUTING
    dns: dict[str, bool] = field(default_factory=dict)  # daemon DNS server -> answers a query from this host

    def masqueraded(self, subnet: str) -> bool:
        return subnet in self.masquerade


def script(dns_servers: list[str], name: str) -> str:
    """The one command that prints every piece of evidence, section by section."""
    dns = " ".join(shlex.quote(s) for s in dns_servers)
    probe = shlex.quote(PROBE_IMAGE)
    return f"""S() {{ printf '\\n{MARK}%s\\n' "$1"; }}
S ip_forward; cat /proc/sys/net/ipv4/ip_forward 2>/dev/null
S filter; iptables -w -S 2>/dev/null
S raw; iptables -w -t raw -S 2>/dev/null
S nat; iptables -w -t nat -S POSTROUTING 2>/dev/null
S dns; for s in {dns}; do if timeout 8 docker run --rm --network host --entrypoint nslookup {probe} \
{shlex.quote(name)} "$s" >/dev/null 2>&1; then echo "$s yes"; else echo "$s no"; fi; done
S end
"""


DROP = re.compile(r"^-A (\S+) (.*)-j (DROP|REJECT)")


def parse(host: str, text: str) -> HostEvidence:
    """Turn the evidence script's output into HostEvidence (pure)."""
    sec = sections(text)
    ev = HostEvidence(host)
    fwd = sec.get("ip_forward", "").strip()
    ev.ip_forward = None if fwd not in ("0", "1") else fwd == "1"
    for table in ("filter", "raw"):  # raw: drops before conntrack and Docker's NAT (also where lab faults go)
        for line in sec.get(table, "").splitlines():
            m = DROP.match(line.strip())
            if not m or (table == "filter" and m[1] not in FILTER_CHAINS):
                continue
            if " -i docker0 ! -o docker0" in line or "-m conntrack --ctstate INVALID" in line or \
                    "-m policy --dir in --pol none" in line:
                continue  # docker's own: isolation, and the guard that drops unencrypted VXLAN of encrypted overlays
            proto = re.search(r"-p (tcp|udp|icmp)\b", line)
            port = re.search(r"--dport (\d+)\b", line)
            ev.drops.append(Rule(m[1], line.strip(), proto[1] if proto else "", int(port[1]) if port else None,
                                 table))
    for line in sec.get("nat", "").splitlines():
        m = re.match(r"^-A POSTROUTING -s (\S+) .*-j MASQUERADE", line.strip())
        if m:
            ev.masquerade.append(m[1])
    for line in sec.get("dns", "").splitlines():
        parts = line.split()
        if len(parts) == 2:
            ev.dns[parts[0]] = parts[1] == "yes"
    return ev


def gather(t: Transport, dns_servers: list[str], name: str) -> HostEvidence:
    """Read a host's evidence in one command."""
    return parse(t.name, t.run(script(dns_servers, name), check=False, timeout=60).stdout)
