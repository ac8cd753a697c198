"""One run at a time per host: a lock directory under /run on every host a changing run touches.

`mkdir` is atomic, so two runs never both get it; the holder file says who holds it (user, machine, pid,
command, since). A lock left by a dead run on this machine is taken over with a warning; one from another
machine is broken only with --break-lock. /run is emptied at boot, so a rebooted host holds no lock.
"""
from __future__ import annotations

import getpass
import json
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dnet.errors import DnetError
from dnet.runner import parallel
from dnet.transport.base import Transport, quote

LOCK = "/run/dnet.lock"
Log = Callable[[str], None]


def _me(command: str, run_id: str) -> dict[str, str | int]:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return {"id": run_id, "user": user, "machine": socket.gethostname(), "pid": os.getpid(), "command": command,
            "since": datetime.now(UTC).isoformat(timespec="seconds")}


@dataclass
class Lock:
    """One run's claim on its hosts. The take script can ride along with the facts read (one round trip for
    both: the facts are then read under the lock); `answers` keeps what each host said."""

    command: str
    info: dict[str, str | int] = field(default_factory=dict)
    answers: dict[str, dict[str, str | int] | None] = field(default_factory=dict)  # host -> None (taken) or holder

    def __post_init__(self) -> None:
        self.info = self.info or _me(self.command, uuid.uuid4().hex)

    def take_script(self) -> str:
        body = json.dumps(self.info)
        return (f"if mkdir {LOCK} 2>/dev/null; then printf '%s' {quote(body)} > {LOCK}/holder; "
                f"echo {quote(str(self.info['id']))} > {LOCK}/id; echo TAKEN; "
                f"elif [ -d {LOCK} ]; then cat {LOCK}/holder 2>/dev/null || echo '{{}}'; else echo UNLOCKABLE; fi")

    def release_script(self) -> str:
        return f"[ \"$(cat {LOCK}/id 2>/dev/null)\" = {self.info['id']} ] && rm -rf {LOCK}; true"

    def read(self, host: str, out: str) -> None:
        """Record a host's answer to take_script()."""
        self.answers[host] = _holder(out)

    def take(self, t: Transport) -> dict[str, str | int] | None:
        """Take the lock on one host; None when taken, else the holder's record."""
        self.read(t.name, t.run(self.take_script(), check=False).stdout)
        return self.answers[t.name]


def _holder(out: str) -> dict[str, str | int] | None:
    out = out.strip()
    if out in ("TAKEN", "UNLOCKABLE"):  # UNLOCKABLE: /run not writable (address: local as a plain user)
        return None
    try:
        holder = json.loads(out.splitlines()[-1]) if out else {}
    except ValueError:
        holder = {}
    return holder if isinstance(holder, dict) else {}


def _dead_here(holder: dict[str, str | int]) -> bool:
    """The holder ran on this machine and its process is gone."""
    if holder.get("machine") != socket.gethostname():
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
    return (f"{holder.get('user')}@{holder.get('machine')} pid {holder.get('pid')} ({holder.get('command')}) since "
            f"{holder.get('since')}")


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
            if holder is not None and h not in unreadable and (break_lock or _dead_here(holder)):
                log(f"{h}: breaking the lock of {describe(holder)}")
                transports[h].run(f"rm -rf {LOCK}", check=False)
                holder = lk.take(transports[h])
            if holder is not None:
                busy[h] = holder
        if busy:
            raise DnetError("another dnet run holds " + "; ".join(f"{h} ({describe(v)})" for h, v in busy.items())
                            + ": wait for it to finish; if that run is dead, pass --break-lock")
        yield
    finally:
        taken = [h for h in sorted(transports) if h in lk.answers and lk.answers[h] is None]
        parallel(taken, lambda h: transports[h].run(lk.release_script(), check=False))
