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


def _take(t: Transport, info: dict[str, str | int]) -> dict[str, str | int] | None:
    """Take the lock on one host; None when taken, else the holder's record."""
    body = json.dumps(info)
    r = t.run(f"if mkdir {LOCK} 2>/dev/null; then printf '%s' {quote(body)} > {LOCK}/holder; "
              f"echo {quote(str(info['id']))} > {LOCK}/id; echo TAKEN; "
              f"elif [ -d {LOCK} ]; then cat {LOCK}/holder 2>/dev/null || echo '{{}}'; else echo UNLOCKABLE; fi",
              check=False)
    out = r.stdout.strip()
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
def hosts_locked(transports: dict[str, Transport], command: str, log: Log, break_lock: bool = False
                 ) -> Iterator[None]:
    """Hold the lock on every host for the duration; refuse (DnetError) when another run holds one."""
    info = _me(command, uuid.uuid4().hex)
    taken: list[str] = []

    def one(h: str) -> dict[str, str | int] | None:
        t = transports[h]
        holder = _take(t, info)
        if holder is not None and (break_lock or _dead_here(holder)):
            log(f"{h}: breaking the lock of {describe(holder)}")
            t.run(f"rm -rf {LOCK}", check=False)
            holder = _take(t, info)
        return holder

    busy: dict[str, dict[str, str | int]] = {}
    for h in sorted(transports):  # one order for every run: of two runs started together, one gets them all
        try:
            holder = one(h)
        except DnetError as exc:
            holder = {"command": f"could not take the lock: {exc}"}
        if holder is None:
            taken.append(h)
        else:
            busy[h] = holder
            break
    try:
        if busy:
            raise DnetError("another dnet run holds " + "; ".join(f"{h} ({describe(v)})" for h, v in busy.items())
                            + ": wait for it to finish; if that run is dead, pass --break-lock")
        yield
    finally:
        release = f"[ \"$(cat {LOCK}/id 2>/dev/null)\" = {info['id']} ] && rm -rf {LOCK}; true"
        parallel(taken, lambda h: transports[h].run(release, check=False))
