"""Runbooks without hosts: validation at FILE:LINE:COL, binding parameters and targets, shipped runbooks."""
from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

import pytest

from dnet.errors import DnetError, InventoryError
from dnet.inventory import load as load_inventory
from dnet.runbook import bind, load
from dnet.runbook.actions import ACTIONS
from tests.conftest import EXAMPLE, ROOT

INV = load_inventory(EXAMPLE).model
SHIPPED = sorted((ROOT / "playbooks").glob("*.yml"))


def problems(tmp_path: Path, text: str) -> list[str]:
    f = tmp_path / "book.yml"
    f.write_text(text)
    with pytest.raises(InventoryError) as exc:
        load(f)
    return [str(p).replace(str(f), "book.yml") for p in exc.value.problems]


def test_every_shipped_runbook_is_valid_binds_to_the_example_and_is_packaged() -> None:
    names = {p.stem for p in SHIPPED}
    assert {"add-node", "drain-node", "remove-node", "rolling-engine-restart", "rotate-join-tokens",
            "upgrade-engine", "maintenance", "scale-service", "replace-manager"} <= names
    given = {"node": "node3", "service": "web", "replicas": "2", "dead": "node2", "replacement": "node3"}
    for path in SHIPPED:
        lr = load(path)
        _, steps = bind(lr, INV, {k: v for k, v in given.items() if k in lr.book.params})
        assert steps and all(s.targets or s.step.kind == "pause"
                             or (s.step.action and ACTIONS[s.step.action].swarm_wide) for s in steps), path
        assert filecmp.cmp(path, ROOT / "dnet" / "files" / "runbooks" / path.name, shallow=False), path.name
    assert not list((ROOT / "playbooks").glob("*.sh"))  # developer scripts live in scripts/


def test_unknown_action_is_named_with_a_suggestion(tmp_path: Path) -> None:
    got = problems(tmp_path, "name: x\nsteps:\n  - name: a\n    action: drian\n    hosts: node1\n")
    assert got == ["book.yml:4:5: unknown action 'drian'; did you mean 'drain'?"]


def test_structural_problems_all_at_once(tmp_path: Path) -> None:
    got = problems(tmp_path, "name: x\nsteps:\n  - name: a\n    shell: 'true'\n    action: drain\n"
                             "  - name: a\n    action: fail-if\n    with: {condition: sometimes}\n"
                             "  - name: c\n    shell: 'echo {{ nope }}'\n"
                             "  - name: d\n    python: missing.py:main\n"
                             "  - name: e\n    action: drain\n")
    text = "\n".join(got)
    assert "book.yml:3:5: step 'a' needs exactly one of action, shell, python, pause (it has action, shell)" in text
    assert "book.yml:6:5: step name 'a' is used by step 1 too" in text
    assert "book.yml:8:23: step 2.with.condition: unknown condition 'sometimes'; conditions: no-tasks, " in text
    assert "book.yml:9:5: step 'c' uses {{ nope }} but the runbook declares no such parameter" in text
    assert "book.yml:12:5: python: no file 'missing.py' next to the runbook" in text
    assert "book.yml:13:5: action 'drain' needs 'hosts'" in text


def test_unknown_keys_and_bad_yaml(tmp_path: Path) -> None:
    got = problems(tmp_path, "name: x\nstepz: []\n")
    assert "book.yml:2:1: unknown key 'stepz' in top level; did you mean 'steps'?" in got
    assert problems(tmp_path, "name: x\nsteps:\n  - name: a\n    shell: [unclosed\n")[0].startswith(
        "book.yml:5:1: YAML syntax error")


def test_parameters_are_typed_required_and_checked_against_the_inventory(tmp_path: Path) -> None:
    f = tmp_path / "book.yml"
    f.write_text("name: x\nparams:\n  node: {type: host}\n  n: {type: int, default: 2}\nsteps:\n"
                 "  - name: a\n    action: wait-until\n    hosts: '{{ node }}'\n    serial: '{{ n }}'\n"
                 "    with: {condition: no-tasks, timeout: '{{ n }}'}\n")
    lr = load(f)
    with pytest.raises(InventoryError, match=r"book.yml:3:3: parameter 'node' is required: pass -p node=VALUE"):
        bind(lr, INV, {})
    with pytest.raises(DnetError, match="node must be one of the inventory's hosts"):
        bind(lr, INV, {"node": "node9"})
    with pytest.raises(DnetError, match="n must be a whole number"):
        bind(lr, INV, {"node": "node2", "n": "two"})
    with pytest.raises(DnetError, match="has no such parameter"):
        bind(lr, INV, {"node": "node2", "m": "1"})
    params, steps = bind(lr, INV, {"node": "node2", "n": "3"})
    assert params == {"node": "node2", "n": 3} and steps[0].targets == ["node2"] and steps[0].serial == 3
    assert steps[0].args is not None and steps[0].args.model_dump()["timeout"] == 3


def test_targets_are_hosts_groups_roles_or_all(tmp_path: Path) -> None:
    f = tmp_path / "book.yml"
    f.write_text("name: x\nsteps:\n  - {name: a, shell: 'true', hosts: edge}\n  - {name: b, shell: 'true', hosts: "
                 "workers}\n  - {name: c, shell: 'true', hosts: all}\n  - {name: d, shell: 'true', hosts: nodeX}\n")
    with pytest.raises(InventoryError) as exc:
        bind(load(f), INV, {})
    assert [str(p).split(": ", 1)[0].rsplit(":", 2)[1:] for p in exc.value.problems] == [["6", "30"]]
    assert "'nodeX' is no host, group or role" in str(exc.value)
    f.write_text(f.read_text().replace("nodeX", "'node1,edge'"))
    _, steps = bind(load(f), INV, {})
    assert [s.targets for s in steps] == [["node2"], ["node2", "node3"], ["node1", "node2", "node3"],
                                          ["node1", "node2"]]


def test_cli_reports_runbook_problems_without_a_traceback(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yml"
    inv.write_text("version: 1\nhosts:\n  me: {address: local}\n")
    book = tmp_path / "book.yml"
    book.write_text("name: x\nsteps:\n  - name: a\n    action: reboot\n    hosts: me\n")
    r = subprocess.run([sys.executable, "-m", "dnet", "run", str(book), "-i", str(inv), "--dry-run"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.startswith(f"{book}:4:5: unknown action 'reboot'")
    assert "Traceback" not in r.stderr and r.stdout == ""
    r = subprocess.run([sys.executable, "-m", "dnet", "run", "no-such-book", "-i", str(inv)], capture_output=True,
                       text=True, cwd=tmp_path)
    assert r.returncode == 1 and "no runbook 'no-such-book'" in r.stderr and "drain-node" in r.stderr
    r = subprocess.run([sys.executable, "-m", "dnet", "run", "drain-node", "-i", str(inv), "-p", "node=me"],
                       capture_output=True, text=True, cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and "pass --yes" in r.stderr


def test_facts_are_read_only_when_a_step_needs_them(tmp_path: Path) -> None:
    """Shell steps need no facts: a run of shell steps reads none; a step that asks (an action, a Python step
    reading ctx.facts) reads them once, after the steps before it changed the hosts."""
    import paramiko

    from dnet.inventory import hosts
    from dnet.runbook.audit import Audit
    from dnet.runbook.context import RunContext
    from dnet.runbook.run import execute
    from dnet.session import Session
    from dnet.testing import FakeTransport

    loaded = load_inventory(EXAMPLE)
    facts = {n: (ROOT / "tests" / "data" / f"applied-{n}.txt").read_text() for n in ("node1", "node2", "node3")}
    ts = {h: FakeTransport(h, [("@@dnet:", 0, facts[h], ""), (r"^uptime$", 0, "up\n", "")]) for h in facts}
    s = Session(loaded, hosts(loaded.model, paramiko.SSHConfig()), dict(ts))
    book = tmp_path / "book.yml"
    book.write_text("name: b\nsteps:\n  - {name: one, shell: uptime, hosts: all}\n"
                    "  - {name: two, shell: uptime, hosts: node1}\n"
                    "  - {name: three, python: step.py:check, hosts: node2}\n")
    (tmp_path / "step.py").write_text("def check(ctx):\n    assert ctx.facts['node1'].is_manager\n"
                                      "    assert ctx.facts['node2'].swarm_state == 'active'\n")
    lr = load(book)
    _, steps = bind(lr, loaded.model, {})
    rc = RunContext(s, {}, False, lambda m: None, stale=True)
    def read() -> int:
        return sum("@@dnet:" in c for t in ts.values() for c in t.commands)

    result = execute(lr, steps[:2], rc, Audit(tmp_path / "audit.log", "b", str(book), {}, False), lambda t, s: None)
    assert result.failed_at is None and read() == 0
    result = execute(lr, steps, rc, Audit(tmp_path / "audit.log", "b", str(book), {}, False), lambda t, s: None, 3)
    assert result.failed_at is None, result.reason
    assert read() == 3  # once per host, for step three only


def test_runbook_engine_restart_restarts_one_autolocked_manager_at_a_time(tmp_path: Path) -> None:
    """A locked manager waits for its key after a restart: apply rolls them one at a time, and so must the runbook's
    engine-restart, whatever `serial` says (seen: serial 2 on five autolocked managers had two engines down)."""
    import paramiko

    from dnet.facts import HostFacts, SwarmFact
    from dnet.inventory import hosts
    from dnet.runbook.actions import ACTIONS
    from dnet.runbook.context import RunContext
    from dnet.runbook.model import RestartArgs
    from dnet.session import Session
    from dnet.testing import FakeTransport

    names = [f"m{i}" for i in range(1, 6)]
    inv = tmp_path / "inv.yml"
    inv.write_text("version: 1\nhosts:\n" + "".join(f"  {n}: {{address: 127.0.0.{i + 2}, roles: [manager]}}\n"
                                        for i, n in enumerate(names)))
    loaded = load_inventory(inv)
    s = Session(loaded, hosts(loaded.model, paramiko.SSHConfig()), {n: FakeTransport(n) for n in names})
    s.facts = {n: HostFacts(n, swarm=SwarmFact("active", n, control_available=True, autolock=True)) for n in names}
    logged: list[str] = []
    rc = RunContext(s, {}, True, logged.append)
    ACTIONS["engine-restart"].run(rc, names, RestartArgs(verify=False), 2)
    assert [m for m in logged if "batch" in m] == [f"  batch {i}/5: m{i}" for i in range(1, 6)]
