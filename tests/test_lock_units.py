"""The hosts' lock with fake transports: taken with the facts read, refused when held, released when left."""
from __future__ import annotations

import json

import pytest

from dnet.errors import DnetError
from dnet.facts import MARK, script
from dnet.lock import LOCK, Lock, hosts_locked
from dnet.session import _read
from dnet.testing import FakeTransport

HOLDER = {"id": "abc", "user": "ops", "machine": "laptop", "pid": 42, "command": "dnet apply", "since": "x"}


def facts_output(first: str) -> str:
    """What the facts script prints on a host without an engine, with `first`'s output."""
    return "".join(f"\n{MARK}{name}\n" for name in ("os", "init")) + "debian\n" + \
        f"\n{MARK}docker\nMISSING\n\n{MARK}first\n{first}\n\n{MARK}end\n"


def test_the_lock_rides_with_the_facts_read_and_is_released() -> None:
    lock = Lock("dnet apply")
    free = FakeTransport("a", [(r"mkdir /run/dnet.lock", 0, facts_output("TAKEN"), ""), (r"rm -rf", 0, "", "")])
    held = FakeTransport("b", [(r"mkdir /run/dnet.lock", 0, facts_output(json.dumps(HOLDER)), ""),
                               (r"rm -rf", 0, "", "")])
    for t in (free, held):
        f = _read(t, [], True, lock)
        assert f is not None and f.engine is None and len(t.commands) == 1  # one round trip: lock and facts
    assert lock.answers == {"a": None, "b": HOLDER}
    with pytest.raises(DnetError) as exc, hosts_locked({"a": free, "b": held}, lock, lambda m: None):
        pass
    assert "another dnet run holds b (ops@laptop pid 42 (dnet apply) since x)" in str(exc.value)
    assert "--break-lock" in str(exc.value)
    assert [c for c in free.commands[1:] if LOCK in c] == [lock.release_script()]  # released what it took
    assert len(held.commands) == 1  # never touched another run's lock


def test_break_lock_takes_over_and_a_failed_facts_read_leaves_no_lock() -> None:
    lock = Lock("dnet apply")
    held = FakeTransport("b", [(r"^rm -rf /run/dnet.lock$", 0, "", ""), (r"^if mkdir", 0, "TAKEN\n", ""),
                               (r"cat /run/dnet.lock/id", 0, "", "")])
    lock.read("b", json.dumps(HOLDER))
    logged: list[str] = []
    with hosts_locked({"b": held}, lock, logged.append, break_lock=True):
        assert lock.answers["b"] is None
    assert logged == ["b: breaking the lock of ops@laptop pid 42 (dnet apply) since x"]
    assert held.commands[-1] == lock.release_script()

    broken = FakeTransport("c", [(r"mkdir /run/dnet.lock", 0, "cut off", ""), (r"rm -rf", 0, "", "")])
    with pytest.raises(DnetError):
        _read(broken, [], True, lock)
    assert broken.commands[-1] == lock.release_script() and "c" not in lock.answers


def test_the_lock_is_taken_before_the_facts_are_read() -> None:
    text = script([], Lock("dnet apply").take_script())
    assert text.index("mkdir /run/dnet.lock") < text.index("/etc/os-release")
