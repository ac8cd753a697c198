"""One run at a time per host: a lock directory under /run on every host a changing run touches.

`mkdir` is atomic, so two runs never both get it; the holder file says who holds it (user, machine and its
machine ID, pid, command, since). A lock left by a dead run on this machine (same hostname and machine ID) is taken
over with a warning; one from another machine is broken only with --break-lock. A takeover is atomic too: the taker
first makes `takeover` inside the old lock (only one can), checks the lock is still the one it judged stale, moves it
aside and makes its own. A run cut short while its commands still ran on a host leaves its lock there, marked, and
only --break-lock takes that over. /run is emptied at boot, so a rebooted host holds no lock; a host where /run is
not writable is refused (dnet never runs there unlocked).
"""
from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from dnet.errors import DnetError
from dnet.runner import parallel
from dnet.transport.base import Transport, quote

LOCK = "/run/dnet.lock"
Log = Callable[[str], None]


def machine_id() -> str:
    """An identity of this machine that differs between machines sharing a hostname: /etc/machine-id, else one made
    once and kept under DNET_HOME (containers often have no machine-id)."""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        with contextlib.suppress(OSError):
            text = Path(path).read_text().strip()
            if text:
                return text
    home = Path(os.environ.get("DNET_HOME") or os.path.expanduser("~/.local/share/dnet"))
    kept = home / "machine-id"
    with contextlib.suppress(OSError):
        return kept.read_text().strip() or _new_id(kept)
    return _new_id(kept)


def _new_id(path: Path) -> str:
    value = uuid.uuid4().hex
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")
    return value


def _me(command: str, run_id: str) -> dict[str, str | int]:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return {"id": run_id, "user": user, "machine": socket.gethostname(), "machine_id": machine_id(),
            "pid": os.getpid(), "command": command, "since": datetime.now(UTC).isoformat(timespec="seconds")}


@dataclass
class Lock:
    """One run's claim on its hosts. The take script can ride along with the facts read (one round trip for
    both: the facts are then read under the lock); `answers` keeps what each host said."""

    command: str
    info: dict[str, str | int] = field(default_factory=dict)
    answers: dict[str, dict[str, str | int] | None] = field(default_factory=dict)  # host -> None (taken) or holder
    path: str = LOCK
    keep: dict[str, str] = field(default_factory=dict)  # host -> why its lock stays when the run ends (cut short)
    seen: dict[str, str] = field(default_factory=dict)  # host -> the holder file's text as last read

    def __post_init__(self) -> None:
        self.info = self.info or _me(self.command, uuid.uuid4().hex)

    def _make(self) -> str:
        body = json.dumps(self.info)
        d = self.path
        return (f"mkdir {quote(d)} 2>/dev/null && printf '%s' {quote(body)} > {quote(d)}/holder && "
                f"echo {quote(str(self.info['id']))} > {quote(d)}/id")

    def take_script(self) -> str:
        """Take the lock, or print its holder; UNLOCKABLE when it can be neither made nor found (a takeover moves
        a lock aside for an instant: tried again twice, a second apart, before saying so)."""
        d = quote(self.path)
        return (f"dnet_try=0; while :; do if {self._make()}; then echo TAKEN; break; "
                f"elif [ -d {d} ]; then cat {d}/holder 2>/dev/null || echo '{{}}'; break; "
                "elif [ $dnet_try -ge 2 ]; then echo UNLOCKABLE; break; fi; dnet_try=$((dnet_try+1)); sleep 1; done")

    def takeover_script(self, seen: str) -> str:
        """Take over the lock whose holder file read `seen`, atomically: only one taker gets `takeover` inside it,
        and it goes on only while the holder file still reads the same (a fresh lock another taker made, or one
        its holder marked since, is left alone)."""
        d = quote(self.path)
        aside = quote(f"{self.path}.stale.") + "$$"
        return (f"if mkdir {d}/takeover 2>/dev/null; then "
                f"if [ \"$(cat {d}/holder 2>/dev/null || echo '{{}}')\" = {quote(seen)} ] && mv {d} {aside}; then "
                f"rm -rf {aside}; if {self._make()}; then echo TAKEN; else cat {d}/holder 2>/dev/null || echo '{{}}'; "
                f"fi; else rmdir {d}/takeover 2>/dev/null; cat {d}/holder 2>/dev/null || echo '{{}}'; fi; "
                f"else {self.take_script()}; fi")  # gone meanwhile (taken over, released): an ordinary take

    def release_script(self) -> str:
        d = quote(self.path)
        return f"[ \"$(cat {d}/id 2>/dev/null)\" = {quote(str(self.info['id']))} ] && rm -rf {d}; true"

    def keep_script(self, why: str) -> str:
        """Leave the lock in place, marked: a run cut short while its commands may still run there."""
        d = quote(self.path)
        held = json.dumps({**self.info, "abandoned": why})
        return (f"[ \"$(cat {d}/id 2>/dev/null)\" = {quote(str(self.info['id']))} ] && "
                f"printf '%s' {quote(held)} > {d}/holder; true")

    def read(self, host: str, out: str) -> None:
        """Record a host's answer to take_script() (and the holder file's text, for a takeover)."""
        self.answers[host] = _holder(out)
        self.seen[host] = out.rstrip("\n")  # as the shell's $(cat holder) reads it

    def take(self, t: Transport) -> dict[str, str | int] | None:
        """Take the lock on one host; None when taken, else the holder's record."""
        self.read(t.name, t.run(self.take_script(), check=False).stdout)
        return self.answers[t.name]


def _holder(out: str) -> dict[str, str | int] | None:
    out = out.strip()
    if out == "TAKEN":
        return None
    if out.endswith("UNLOCKABLE"):  # /run not writable (address: local as a plain user, a read-only /run)
        return {"unlockable": 1}
    try:
        holder = json.loads(out.splitlines()[-1]) if out else {}
    except ValueError:
        holder = {}
    return holder if isinstance(holder, dict) else {}


def _dead_here(holder: dict[str, str | int]) -> bool:
    """The holder ran on this machine (hostname and machine ID) and its process is gone; a lock left on purpose by
    a run cut short mid-command is never taken over silently."""
    if holder.get("machine") != socket.gethostname() or holder.get("machine_id") != machine_id():
        return False
    if holder.get("abandoned"):
        return False
    try:
        os.kill(int(holder.get("pid", 0)), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False


def describe(holder: dict[str, str | int]) -> str:
    if not holder:
        return "an unknown run (no holder record)"
    left = f"; it was cut short and left the lock: {holder['abandoned']}" if holder.get("abandoned") else ""
    return (f"{holder.get('user')}@{holder.get('machine')} pid {holder.get('pid')} ({holder.get('command')}) since "
            f"{holder.get('since')}{left}")


@contextmanager
def hosts_locked(transports: dict[str, Transport], lock: Lock | str, log: Log, break_lock: bool = False
                 ) -> Iterator[None]:
    """Hold the lock on every host for the duration; refuse (DnetError) when another run holds one.

    Hosts whose answer the lock already has (taken with the facts read) cost no round trip; the others are taken
    at once. No run ever waits for a lock, so taking them all at once cannot deadlock: of two runs started
    together, one or both are refused, each saying which run holds what.
    """
    lk = Lock(lock) if isinstance(lock, str) else lock
    missing = [h for h in sorted(transports) if h not in lk.answers]
    unreadable = set()
    for r in parallel(missing, lambda h: lk.take(transports[h])):
        if not r.ok:
            lk.answers[r.host] = {"command": f"could not take the lock: {r.error}"}
            unreadable.add(r.host)
    busy: dict[str, dict[str, str | int]] = {}
    try:
        for h in sorted(transports):
            holder = lk.answers.get(h)
            if holder is not None and holder.get("unlockable"):
                raise DnetError(f"{h}: cannot take dnet's lock: {lk.path} cannot be made there (is /run writable "
                                "for the user dnet runs as? dnet needs root or sudo -n on the host); dnet does not "
                                "change a host without its lock")
            if holder is not None and h not in unreadable and (break_lock or _dead_here(holder)):
                log(f"{h}: breaking the lock of {describe(holder)}")
                lk.read(h, transports[h].run(lk.takeover_script(lk.seen.get(h, "{}")), check=False).stdout)
                holder = lk.answers[h]
            if holder is not None:
                busy[h] = holder
        if busy:
            raise DnetError("another dnet run holds " + "; ".join(f"{h} ({describe(v)})" for h, v in busy.items())
                            + ": wait for it to finish; if that run is dead, pass --break-lock")
        yield
    finally:
        taken = [h for h in sorted(transports) if h in lk.answers and lk.answers[h] is None]
        parallel(taken, lambda h: transports[h].run(lk.keep_script(lk.keep[h]) if h in lk.keep
                                                    else lk.release_script(), check=False))
