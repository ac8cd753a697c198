"""Scale: `dnet plan` and a one-step runbook across 10, 100 and 300 SSH hosts on this one machine.

Each host is a minimal container that runs only sshd (the lab's bare node image, no engine: facts find no Docker
and plan proposes installing it), on a Docker network of the benchmark's own (10.251.0.0/22), made and removed
here. The hosts share this machine's CPUs with dnet, so they are kept light: sshd without PAM (which sets up
nothing in a container and cost ~30 ms of CPU per session). The machine-busy column says how much of the CPUs
everything together used. Per size and --forks: wall time, CPU time (user + system) and peak memory of the dnet
process, medians of --runs runs. Prints a table and writes bench/results/scale.json. Asserts nothing.

Per --transports: `direct` (DNET_PERSIST=0: each run opens its own connections), `held` (a fresh connection holder:
the first run after `dnet ssh-close`) and `again` (the same command right after, within the persist time: no
handshake); `openssh` and `openssh-again` are the same two with DNET_TRANSPORT=openssh (ssh's own ControlPersist
masters instead of the holder). What outlives the run (the holder, or the ssh masters) is counted apart (keeper-cpu,
keeper-MB: the holder's peak resident size, or the masters' proportional set size together) and with dnet's in the
operator's CPU total (operator-cpu).

`pyinfra` (when installed, as bench/compare.py installs it) runs its one-command `exec -- cat /proc/uptime` on the
same hosts with `--parallel` set to the forks: the yardstick for the operator's CPU.

Run: .venv/bin/python bench/scale.py [--sizes 10,100,300] [--forks 16,64] [--runs 3]
     [--transports direct,held,openssh,pyinfra] [--out FILE]
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dnet.lab.image import build_node_image, node_image_tag

NETWORK, SUBNET, LABEL = "dnet-scale", "10.251.0.0/22", "dnet.scale=1"
ROOT = Path(__file__).resolve().parent.parent
SSHD = ("mkdir -p /run/sshd /root/.ssh && cp /keys/authorized_keys /root/.ssh/ && cp /keys/host_key /etc/ssh/k && "
        "chmod 600 /etc/ssh/k && exec /usr/sbin/sshd -D -e -h /etc/ssh/k -o StrictModes=no "
        "-o PermitRootLogin=prohibit-password -o MaxStartups=1000 -o UsePAM=no")


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout


def hosts_up(count: int, keys: Path) -> list[str]:
    """Start `count` sshd containers; return their addresses once every one accepts TCP on port 22."""
    image = node_image_tag(bare=True)
    build_node_image(bare=True, log=lambda m: None)
    hosts_down()  # what an interrupted earlier run left (only the benchmark's own, by its label)
    if not subprocess.run(["docker", "network", "ls", "-q", "-f", f"label={LABEL}", "-f", f"name=^{NETWORK}$"],
                          capture_output=True, text=True).stdout.strip():
        docker("network", "create", "--label", LABEL, "--subnet", SUBNET, NETWORK)
    addrs = [str(a) for a in list(ipaddress.ip_network(SUBNET).hosts())[10:10 + count]]

    def start(i_addr: tuple[int, str]) -> None:
        i, addr = i_addr
        docker("run", "-d", "--name", f"dnet-scale-{i}", "--label", LABEL, "--network", NETWORK, "--ip", addr,
               "-v", f"{keys}:/keys:ro", "--entrypoint", "sh", image, "-c", SSHD)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(start, enumerate(addrs)))
    deadline = time.monotonic() + 120
    waiting = set(addrs)
    while waiting and time.monotonic() < deadline:
        for a in list(waiting):
            if subprocess.run(["timeout", "1", "bash", "-c", f"exec 3<>/dev/tcp/{a}/22"],
                              capture_output=True).returncode == 0:
                waiting.discard(a)
        time.sleep(0.5)
    if waiting:
        raise SystemExit(f"{len(waiting)} hosts never answered on port 22")
    return addrs


def hosts_down() -> None:
    ids = docker("ps", "-aq", "--filter", f"label={LABEL}").split()
    if ids:
        docker("rm", "-f", *ids)
    for _ in range(50):  # the engine releases 300 endpoints a moment after the containers are gone
        if subprocess.run(["docker", "network", "rm", NETWORK], capture_output=True).returncode == 0 or \
                not subprocess.run(["docker", "network", "ls", "-q", "-f", f"label={LABEL}"], capture_output=True,
                                   text=True).stdout.strip():
            return
        time.sleep(0.2)
    # After removing a few hundred containers at once the engine may count endpoints that no longer exist (a
    # Docker bug; only a dockerd restart clears it). Their addresses are free, so the next run reuses the network.
    print(f"note: the engine keeps {NETWORK} (the benchmark's own network) busy with endpoints of removed "
          "containers; the next run reuses it, a dockerd restart removes it", file=sys.stderr)


def busy() -> float:
    """CPU seconds the whole machine has spent busy (every process: dnet, the hosts' sshd, the engine)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def holder_cpu() -> tuple[float, int]:
    """CPU seconds the running connection holder has used and connections it opened since it started (0 when none
    runs)."""
    from dnet.transport import held

    stats = held.stats()
    if not stats:
        return 0.0, 0
    fields = Path(f"/proc/{stats['pid']}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), int(stats["opened"])


def masters() -> dict[int, float]:
    """CPU seconds of each running ssh master of dnet's OpenSSH transport (they outlive the run, as the holder does,
    so the run's own rusage misses them)."""
    from dnet.transport.openssh import control_dir

    where, tick, found = str(control_dir()), os.sysconf("SC_CLK_TCK"), {}
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and where.encode() in (proc / "cmdline").read_bytes():
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                found[int(proc.name)] = (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            continue
    return found


def keeper(mode: str) -> tuple[float, int]:
    """CPU seconds used so far by what keeps connections between runs, and how many connections it opened."""
    if mode.startswith("openssh"):
        m = masters()
        return sum(m.values()), len(m)
    return holder_cpu() if mode in ("held", "again") else (0.0, 0)


def keeper_mb(mode: str) -> float:
    """Memory of what keeps connections between runs, MB: the holder's peak resident size, or the ssh masters'
    proportional set size summed (each master's shared libraries counted once across them)."""
    pids: list[int] = []
    if mode.startswith("openssh"):
        pids = list(masters())
    elif mode in ("held", "again"):
        from dnet.transport import held

        stats = held.stats()
        if stats:
            status = Path(f"/proc/{stats['pid']}/status").read_text()
            return int(status.split("VmHWM:")[1].split()[0]) / 1024
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/smaps_rollup").read_text().split("Pss:")[1].split()[0])
        except (OSError, IndexError):
            continue
    return total / 1024


def measure(args: list[str], forks: int, mode: str = "direct") -> tuple[float, float, float, int, float]:
    """Wall seconds, CPU seconds and peak RSS (MB) of one dnet process (or pyinfra's), its exit code, and the CPU
    seconds the whole machine was busy meanwhile (with the hosts on this machine: are the CPUs what limits)."""
    env = {**os.environ, "DNET_FORKS": str(forks), "DNET_PERSIST": "0" if mode == "direct" else "300",
           "DNET_TRANSPORT": "openssh" if mode.startswith("openssh") else "paramiko"}
    argv = args if mode == "pyinfra" else [sys.executable, "-m", "dnet", *args]
    b0 = busy()
    t0 = time.monotonic()
    p = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    code = os.waitstatus_to_exitcode(status)
    p.returncode = code
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, code, busy() - b0


def close_holder() -> None:
    from dnet.transport import held, openssh

    held.close()
    openssh.close_all()


def row(n: int, forks: int, name: str, mode: str,
        got: list[tuple[float, float, float, int, float, float, int, float]]) -> dict[str, object]:
    """One line of the table (medians of the runs) and its JSON."""
    wall, cpu, rss = (statistics.median(x[i] for x in got) for i in range(3))
    code = max(x[3] for x in got)
    machine, holder = statistics.median(x[4] for x in got), statistics.median(x[5] for x in got)
    operator = statistics.median(x[1] + x[5] for x in got)
    opened = max(x[6] for x in got)
    kept = max(x[7] for x in got)
    print(f"{n:4}  {forks:5}  {name:7}  {mode:13}  {wall:6.2f}  {cpu:5.2f}  {holder:10.2f}  {operator:12.2f}  "
          f"{opened:10}  {rss:7.0f}  {kept:9.0f}  {code:4}  {machine:6.2f}", flush=True)
    return {"hosts": n, "forks": forks, "command": name, "transport": mode, "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2), "keeper_cpu_s": round(holder, 2), "operator_cpu_s": round(operator, 2),
            "keeper_handshakes": opened, "peak_mb": round(rss), "keeper_mb": round(kept),
            "exit": code, "machine_busy_s": round(machine, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,100,300")
    ap.add_argument("--forks", default="16,64")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--transports", default="direct,held")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "scale.json"))
    a = ap.parse_args()
    pyinfra = Path(os.environ.get("DNET_BENCH_TOOLS", "/var/cache/dnet-bench/tools")) / "bin" / "pyinfra"
    sizes = [int(x) for x in a.sizes.split(",")]
    forks = [int(x) for x in a.forks.split(",")]
    transports = a.transports.split(",")
    work = Path(tempfile.mkdtemp(prefix="dnet-scale-"))
    os.environ["DNET_RUNTIME_DIR"] = str(work / "run")  # a holder of the benchmark's own
    keys = work / "keys"
    keys.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "id")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / "host_key")], check=True)
    (keys / "authorized_keys").write_text((work / "id.pub").read_text())
    hosts_down()
    t0 = time.monotonic()
    addrs = hosts_up(max(sizes), keys)
    print(f"{len(addrs)} sshd hosts up in {time.monotonic() - t0:.0f}s", flush=True)
    host_key = (keys / "host_key.pub").read_text().split()[:2]
    (work / "known_hosts").write_text("".join(f"{x} {host_key[0]} {host_key[1]}\n" for x in addrs))
    (work / "noop.yml").write_text("name: noop\ndescription: one trivial step on every host\n"
                                   "steps:\n  - name: uptime\n    shell: cat /proc/uptime\n    hosts: all\n")
    results = []
    try:
        print(f"size  forks  command  transport      wall-s  cpu-s  keeper-cpu  operator-cpu  keeper-ssh  peak-MB  "
              f"keeper-MB  exit  machine-busy-s (of {os.cpu_count()} CPUs x wall)", flush=True)
        for n in sizes:
            inv = work / f"inv{n}.yml"
            inv.write_text(f"version: 1\ndefaults:\n  identity_file: {work / 'id'}\n  known_hosts: "
                           f"{work / 'known_hosts'}\nhosts:\n" +
                           "".join(f"  h{i}: {{address: {x}}}\n" for i, x in enumerate(addrs[:n])))
            (work / f"pyinfra{n}.py").write_text("hosts = [" + ", ".join(
                f"({x!r}, {{'ssh_user': 'root', 'ssh_key': {str(work / 'id')!r}, 'ssh_known_hosts_file': "
                f"{str(work / 'known_hosts')!r}, 'ssh_strict_host_key_checking': 'yes'}})" for x in addrs[:n]) + "]\n")
            for f in forks:
                jobs = [("plan", ["plan", "-i", str(inv)]),
                        ("run", ["run", str(work / "noop.yml"), "-i", str(inv), "--yes"])]
                if "pyinfra" in transports and pyinfra.exists():
                    jobs.append(("exec", [str(pyinfra), "-y", "--parallel", str(f), str(work / f"pyinfra{n}.py"),
                                          "exec", "--", "cat", "/proc/uptime"]))
                for name, args in jobs:
                    modes = ["pyinfra"] if name == "exec" else \
                        [m for t in transports if t != "pyinfra" for m in (["held", "again"] if t == "held" else
                                                                            ["openssh", "openssh-again"]
                                                                            if t == "openssh" else [t])]
                    for mode in modes:
                        got = []
                        for _ in range(a.runs):
                            if mode in ("held", "openssh"):
                                close_holder()
                            cpu0, opened0 = keeper(mode)
                            m = measure(args, f, mode)
                            cpu1, opened1 = keeper(mode)
                            got.append((*m, cpu1 - cpu0, opened1 - opened0, keeper_mb(mode)))
                        results.append(row(n, f, name, mode, got))
    finally:
        close_holder()
        hosts_down()
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": f"{os.cpu_count()} CPUs", "runs": a.runs, "results": results}, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
