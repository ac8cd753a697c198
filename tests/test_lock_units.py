"""The hosts' lock with fake transports: taken with the facts read, refused when held, released when left."""
from __future__ import annotations

import json
from pathlib import Path

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


def test_a_stale_lock_is_taken_over_by_exactly_one_of_many_takers(tmp_path: Path) -> None:
    """Real shells racing for one stale lock: each round exactly one taker gets it, and the lock then holds the
    winner's id (an `rm -rf` then `mkdir` takeover lets two runs in: the second removes the first's fresh lock)."""
    from dnet.runner import parallel
    from dnet.transport.local import LocalTransport

    t = LocalTransport("me")
    path = str(tmp_path / "dnet.lock")
    for _ in range(15):
        stale = Lock("dnet apply", path=path)
        assert stale.take(t) is None
        takers = [Lock(f"dnet run {i}", path=path) for i in range(8)]
        for lk in takers:
            lk.answers["me"] = stale.info
        for lk in takers:
            lk.info["takeover"] = lk.takeover_script(json.dumps(stale.info))
        results = parallel(takers, lambda lk: lk.read("me", t.run(str(lk.info["takeover"])).stdout),
                           name=lambda lk: lk.command, workers=8)
        assert all(r.ok for r in results)
        winners = [lk for lk in takers if lk.answers["me"] is None]
        assert len(winners) == 1, [lk.answers["me"] for lk in takers]
        assert (tmp_path / "dnet.lock" / "id").read_text().strip() == winners[0].info["id"]
        losers = [lk.answers["me"] for lk in takers if lk is not winners[0]]
        assert all(isinstance(h, dict) and not h.get("unlockable") for h in losers), losers  # refused, by name
        assert not list(tmp_path.glob("dnet.lock.stale.*"))
        t.run(winners[0].release_script())
        assert not (tmp_path / "dnet.lock").exists()


def test_a_host_where_the_lock_cannot_be_made_is_refused() -> None:
    from dnet.transport.local import LocalTransport

    lock = Lock("dnet apply", path="/proc/dnet.lock")  # never writable, even for root
    t = LocalTransport("me")
    with pytest.raises(DnetError, match=r"me: cannot take dnet's lock: /proc/dnet.lock cannot be made there"), \
            hosts_locked({"me": t}, lock, lambda m: None):
        pass


def test_only_a_dead_run_of_this_very_machine_is_taken_over_silently(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from dnet import lock as lockmod

    monkeypatch.setattr(lockmod, "machine_id", lambda: "aaaa")
    dead: dict[str, str | int] = {"id": "x", "machine": socket.gethostname(), "machine_id": "aaaa",
                                  "pid": 2 ** 22 + 12345}
    assert lockmod._dead_here(dead)
    assert not lockmod._dead_here({**dead, "machine_id": "bbbb"})  # another machine with the same hostname
    assert not lockmod._dead_here({k: v for k, v in dead.items() if k != "machine_id"})  # who knows which machine
    assert not lockmod._dead_here({**dead, "abandoned": "step 2 (restart) was running there"})
    assert lockmod.machine_id() == "aaaa"
    monkeypatch.undo()
    assert lockmod.machine_id() == lockmod.machine_id() != ""  # stable between calls
