"""Run checks: one probe container per source, in that source's network namespace; hosts in parallel."""
from __future__ import annotations

import shlex
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from dnet.images import PROBE_IMAGE, ensure_probe
from dnet.runner import forks, parallel
from dnet.transport.base import Result, Transport, quote
from dnet.verify.model import Check, Where

# What every verb shares inside the probe: r prints "@@ ID RESULT DETAIL", cls names a failure from its message.
PRELUDE = r"""
r() { printf '@@ %s %s %s\n' "$1" "$2" "$(printf '%s' "$3" | tr '\n' ' ' | cut -c1-240)"; }
cls() { case "$2" in *refused*) r "$1" refused "$2";; *"bad address"*) r "$1" unresolved "$2";;
  *"server returned error"*) r "$1" wrong "$2";; *) r "$1" timeout "${2:-no answer within the timeout}";; esac; }
"""

Operator = Callable[[list[str]], tuple[str, str]]  # the verb's arguments -> (result, detail)


@dataclass(frozen=True)
class Verb:
    """A probe verb: a check's action is [verb, *arguments]; adding a verb is one entry in VERBS.

    `shell` defines a function of the verb's name, run inside the probe container (`NAME ID ARG...`, printing one
    result with r); `operator` runs it from this machine instead (only towards inventory hosts); a verb may have
    both. `facts` decides it from what was already read (checks whose `where` is ("local",)). `negative_wait`
    bounds a must-not-reach check, which passes on silence (seconds; None: the verb's own)."""

    name: str
    doc: str
    shell: str = ""
    operator: Operator | None = None
    facts: Operator | None = None  # decided from the facts already read: nothing is sent anywhere
    negative_wait: float | None = None


def _connect_args(args: list[str]) -> tuple[str, str]:
    return _connect(args[0], int(args[1]))


def _count(args: list[str]) -> tuple[str, str]:
    have, want = int(args[0]), int(args[1])
    return ("ok" if have == want else "wrong"), f"{have}/{want} running"


def _same(args: list[str]) -> tuple[str, str]:
    """A forward and its target give the same answer."""
    a = _http_head(args[0], int(args[1]))
    z = _http_head(args[2], int(args[3]))
    if a[0] != "ok":
        return a
    if z[0] != "ok":
        return "wrong", f"the forward answers but its target does not: {z[1]}"
    if a[1] != z[1]:
        return "wrong", f"forward said {a[1]!r}, target said {z[1]!r}"
    return "ok", f"same answer: {a[1]}"


# openssl s_client, not busybox wget: wget's TLS checks no certificate. Its wait is 12 s: a handshake costs seconds
# of CPU on a slow host (several, seen on emulated VMs with checks running side by side). The request goes on
# stdin; -quiet keeps the connection open until the server closes it. A failure is classed by openssl's message.
TLS = r"""
tls() { command -v openssl >/dev/null || { r "$1" error "tls: the probe has no openssl (install openssl on the host)"
    return; }
  u=${2#https://}; hp=${u%%/*}; p=${u#"$hp"}; [ -n "$p" ] || p=/
  h=${hp%:*}; port=${hp##*:}; [ "$port" = "$hp" ] && port=443
  case "$h" in *[!0-9.]*) v="-verify_hostname";; *) v="-verify_ip";; esac
  o=$(printf 'GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$p" "$hp" | timeout "${T:-12}" \
    openssl s_client -quiet -connect "${3:-$h}:$port" -servername "$h" $v "$h" -verify_return_error \
    -CAfile /etc/ssl/certs/ca-certificates.crt 2>&1); rc=$?
  s=$(printf '%s\n' "$o" | grep -m1 '^HTTP/[0-9.]* [0-9]' | tr -d '\r')
  case "$s" in
    "HTTP/"*" "[23]*) r "$1" ok "$s"; return;;
    "HTTP/"*) r "$1" wrong "server said: $s"; return;; esac
  e=$(printf '%s\n' "$o" | grep -m1 -iE 'verify error|refused|errno|BIO_lookup|alert|wrong version|eof|ssl|error')
  case "$o" in
    *"verify error"*|*"certificate verify failed"*) r "$1" tls "certificate not trusted: $e";;
    *refused*|*"errno=111"*) r "$1" refused "$hp refused";;
    *BIO_lookup*|*"not known"*|*"nodename nor servname"*) r "$1" unresolved "$h: $e";;
    *alert*|*"wrong version"*|*"unexpected eof"*|*"packet length"*|*handshake*|*SSL*|*ssl*)
      if [ $rc -ge 124 ] && [ -z "$e" ]; then r "$1" timeout "no answer within ${T:-12}s"
      else r "$1" tls "handshake failed: $e"; fi;;
    *) if [ $rc -ge 124 ]; then r "$1" timeout "no answer within ${T:-12}s"; else r "$1" timeout "${e:-no answer}"; fi;;
  esac; }"""

# A must-not-reach check passes on silence, so its wait is on verify's critical path. Waits that still cover one
# lost packet: a SYN is sent again after 1 s, a DNS query after 1 s (answers on a working path take milliseconds).
VERBS: dict[str, Verb] = {v.name: v for v in [
    Verb("tcp", "connect to ADDRESS PORT", r"""
tcp() { o=$(nc -w "${T:-2}" "$2" "$3" </dev/null 2>&1) && r "$1" ok "connected" || cls "$1" "$o"; }""",
         operator=_connect_args, negative_wait=2),
    Verb("dns", "resolve NAME, optionally to one of EXPECTED (comma-separated)", r"""
dns() { o=$(timeout "${T:-4}" nslookup "$2" 2>&1)
  ips=$(printf '%s\n' "$o" | sed -n 's/^Address: \([0-9.]*\)$/\1/p' | tr '\n' ' ')
  if [ -z "$ips" ]; then r "$1" unresolved "$(printf '%s' "$o" | tail -2)"; return; fi
  if [ -z "$3" ]; then r "$1" ok "$ips"; return; fi
  for w in $(printf '%s' "$3" | tr ',' ' '); do case " $ips" in *" $w "*) r "$1" ok "$ips"; return;; esac; done
  r "$1" wrong "resolved to $ips, expected one of $3"; }""", negative_wait=2),
    Verb("http", "GET URL (https: over TLS, checked against the host's CA certificates; ADDRESS: connect there, "
                 "keeping the URL's name for TLS)", r"""
http() { case "$2" in https://*) tls "$@"; return;; esac
  o=$(timeout "${T:-5}" wget -qO- "$2" 2>&1); rc=$?
  if [ $rc = 0 ]; then r "$1" ok "$(printf '%s' "$o" | head -c 60)"
  elif [ $rc -ge 124 ]; then r "$1" timeout "no answer within ${T:-5}s"; else cls "$1" "$o"; fi; }""",
         negative_wait=3),
    Verb("tls", "GET an https URL (used by http)", TLS),
    Verb("ping", "one ICMP echo to ADDRESS", r"""
ping() { o=$(command ping -c1 -W2 "$2" 2>&1) && r "$1" ok "reply" || r "$1" timeout "no reply"; }"""),
    Verb("mtu", "full-size packets with DF set reach ADDRESS (or the path says its MTU)", r"""
mtu() { dev=$(ip route get "$2" 2>/dev/null | sed -n 's/.* dev \([^ ]*\).*/\1/p' | head -1)
  m=$(cat "/sys/class/net/$dev/mtu" 2>/dev/null)
  if [ -z "$m" ]; then r "$1" error "no route to $2 from here"; return; fi
  o=$(dfping -n -c1 -W2 -M do -s $((m - 28)) "$2" 2>&1) && { r "$1" ok "$m-byte packets via $dev cross"; return; }
  p=$(printf '%s' "$o" | sed -n 's/.*mtu *= *\([0-9]*\).*/\1/p' | head -1)
  if [ -n "$p" ]; then r "$1" ok "$m-byte packets via $dev: path MTU $p reported back, so PMTU discovery works"
    return; fi
  # small packets after the big ones, as a new flow too: an older flow's NAT entry must not pass for a working path
  if ! dfping -n -c1 -W2 -s 56 "$2" >/dev/null 2>&1; then r "$1" timeout "small packets get no reply either"; return; fi
  r "$1" mtu "$m-byte packets via $dev (mtu $m) are lost without an answer, 84-byte ones cross"; }"""),
    Verb("arp", "ADDRESS answers ARP on the local segment", r"""
arp() { command ping -c1 -W1 "$2" >/dev/null 2>&1; o=$(ip neigh show "$2" 2>&1)
  case "$o" in *lladdr*) r "$1" ok "$o";; *) r "$1" wrong "no neighbour entry for $2 (${o:-empty})";; esac; }"""),
    Verb("same", "FORWARD_ADDRESS PORT and TARGET_ADDRESS PORT give the same HTTP answer", operator=_same),
    Verb("count", "RUNNING equals WANTED (a service's tasks, as the facts show them)", facts=_count),
]}
LIB = PRELUDE + "\n".join(v.shell.strip("\n") for v in VERBS.values() if v.shell) + "\n"
NEGATIVE_WAIT = {v.name: v.negative_wait for v in VERBS.values() if v.negative_wait}

Log = Callable[[str], None]


def _silence(c: Check) -> float:
    """How long a check waits when it passes: a must-not-reach check passes on silence."""
    return 0.0 if c.expect else float(NEGATIVE_WAIT.get(str(c.action[0]), 0))


def _twins(checks: list[Check]) -> dict[str, str]:
    """Each check's id -> the id of the first check in the list that does exactly the same (it runs once)."""
    first: dict[tuple[str, ...], str] = {}
    return {c.id: first.setdefault((*map(str, c.action), str(_silence(c))), c.id) for c in checks}


def script(checks: list[Check]) -> str:
    """The probe script for one source: every check in the background at once, a repeated one only once."""
    lines = [LIB]
    twins = _twins(checks)
    for c in checks:
        if twins[c.id] != c.id:
            continue
        line = " ".join([shlex.quote(c.action[0]), c.id, *map(shlex.quote, c.action[1:])])
        wait = None if c.expect else NEGATIVE_WAIT.get(c.action[0])
        lines.append(f"(T={wait}; {line}) &" if wait else line + " &")
    lines.append("wait")
    return "\n".join(lines)


def parse(output: str, checks: list[Check]) -> None:
    """Fill in each check's result from probe output; checks with no line are errors."""
    seen: dict[str, tuple[str, str]] = {}
    for line in output.splitlines():
        parts = line.split(" ", 3)
        if len(parts) >= 3 and parts[0] == "@@":
            seen[parts[1]] = (parts[2], parts[3] if len(parts) > 3 else "")
    twins = _twins(checks)
    for c in checks:
        c.result, c.detail = seen.get(twins[c.id], ("error", "the probe printed no result"))


def _probe(where: Where, checks: list[Check], run_id: str, n: int, detach: bool) -> str:
    net = f"container:{where.container}" if where.kind == "ctr" else "host"
    # detached, its output is read back with docker logs: json-file can always be read, whatever the host's default
    how = ["-d", "--log-driver", "json-file"] if detach else ["--rm"]
    return quote("docker", "run", *how, "--name", f"dnet-probe-{run_id}-{n}", "--label", "dnet.managed=true",
                 "--label", f"dnet.probe={run_id}", "--network", net, "--entrypoint", "sh", PROBE_IMAGE,
                 "-c", script(checks))


def _failed(t: Transport, checks: list[Check], r: Result) -> None:
    for c in checks:
        c.result, c.detail = "error", f"probe failed on {t.name}: {(r.stderr or '').strip()[-200:]}"


def _run_remote(t: Transport, where: Where, checks: list[Check], run_id: str, n: int, started: bool) -> None:
    """Probe from one source; `started`: its container runs already (detached), so only its output is collected."""
    if started:
        name = f"dnet-probe-{run_id}-{n}"
        # logs' own status: when it cannot read them, its error is what the checks report
        r = t.run(f"docker logs -f {quote(name)}; s=$?; docker rm -f {quote(name)} >/dev/null 2>&1; exit $s",
                  check=False, timeout=60)
    else:
        r = t.run(_probe(where, checks, run_id, n, False), check=False, timeout=60)
    parse(r.stdout, checks)
    if not r.ok and not r.stdout.strip():
        _failed(t, checks, r)


def _start(t: Transport, where: Where, checks: list[Check], run_id: str, n: int) -> bool:
    """Start a source's probe detached; False (its checks failed) when it could not start."""
    r = t.run(_probe(where, checks, run_id, n, True), check=False, timeout=60)
    if not r.ok:
        _failed(t, checks, r)
    return r.ok


def operator(c: Check) -> None:
    """Run a check from this machine (only ever towards inventory hosts)."""
    verb = VERBS.get(c.action[0])
    if verb is None or verb.operator is None:
        c.result, c.detail = "error", f"the verb {c.action[0]!r} does not run from this machine"
        return
    c.result, c.detail = verb.operator([str(x) for x in c.action[1:]])


def _connect(host: str, port: int) -> tuple[str, str]:
    try:
        with socket.create_connection((host, port), timeout=3):
            return "ok", "connected"
    except ConnectionRefusedError:
        return "refused", f"{host}:{port} refused"
    except TimeoutError:
        return "timeout", f"{host}:{port} timed out"
    except OSError as exc:
        return "timeout", f"{host}:{port}: {exc}"


def _http_head(host: str, port: int) -> tuple[str, str]:
    try:
        with socket.create_connection((host, port), timeout=3) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            s.settimeout(3)
            data = b""
            while chunk := s.recv(4096):
                data += chunk
            body = data.split(b"\r\n\r\n", 1)[-1].decode(errors="replace").strip()
            status = data.split(b"\r\n", 1)[0].decode(errors="replace")
            return "ok", f"{status} {body[:40]}".strip()
    except ConnectionRefusedError:
        return "refused", f"{host}:{port} refused"
    except OSError as exc:
        return "timeout", f"{host}:{port}: {exc}"


def run(checks: list[Check], transports: dict[str, Transport], log: Log) -> None:
    """Run every check; probe containers are removed even when interrupted."""
    run_id = uuid.uuid4().hex[:8]
    groups: dict[Where, list[Check]] = {}
    for c in checks:
        decide = VERBS[c.action[0]].facts if c.action[0] in VERBS else None
        if c.where.kind == "local" and decide is not None:  # decided from the facts already read
            c.result, c.detail = decide([str(x) for x in c.action[1:]])
        elif c.where.kind == "missing":
            c.result = "error"
            c.detail = f"{c.where.container} is not running on {c.where.host}, so nothing can be probed from it"
        elif c.where.remote and c.where.host not in transports:
            c.result, c.detail = "error", f"host {c.where.host} is unreachable"
        else:
            groups.setdefault(c.where, []).append(c)
    hosts = sorted({w.host for w in groups if w.remote})
    for r in parallel(hosts, lambda h: ensure_probe(transports[h])):  # made on each host: no engine here
        if not r.ok:
            for w, cs in groups.items():
                if w.remote and w.host == r.host:
                    for c in cs:
                        c.result, c.detail = "error", f"probe image unavailable on {r.host}: {r.error}"
    todo = [(w, cs) for w, cs in groups.items() if all(c.result == "pending" for c in cs)]
    done = [0]
    # A source that waits out silence is verify's critical path: its probe starts first, on engines nobody else
    # loads yet, and the other sources run during its wait.
    slow = [(n, (w, cs)) for n, (w, cs) in enumerate(todo) if w.remote and max(map(_silence, cs)) > 1]
    started: set[int] = set()

    def start(item: tuple[int, tuple[Where, list[Check]]]) -> None:
        n, (where, cs) = item
        if _start(transports[where.host], where, cs, run_id, n):
            started.add(n)

    def work(item: tuple[int, tuple[Where, list[Check]]]) -> None:
        n, (where, cs) = item
        if where.kind == "operator":
            parallel(cs, operator, name=lambda c: c.id, wait_on_interrupt=True)
        elif n in started or all(c.result == "pending" for c in cs):
            _run_remote(transports[where.host], where, cs, run_id, n, n in started)
        done[0] += 1
        src = where.container[:12] if where.kind == "ctr" else where.host or where.kind
        log(f"probed {done[0]}/{len(todo)} sources ({len(cs)} checks from {src})")

    try:
        parallel(slow, start, workers=forks(24), wait_on_interrupt=True)
        parallel(list(enumerate(todo)), work, workers=forks(24), wait_on_interrupt=True)  # cleanup must see them all
    finally:
        cleanup = f"docker ps -aq --filter label=dnet.probe={run_id} | xargs -r docker rm -f >/dev/null 2>&1; true"
        parallel(hosts, lambda h: transports[h].run(cleanup, check=False, timeout=30))
