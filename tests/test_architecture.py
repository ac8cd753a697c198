"""The shape that keeps dnet a one-place-addition codebase: no import cycles, and each registry complete (every
runbook action and condition documented, dry-runnable and tested; every lab provider behind the interface; every
probe verb a check uses in the verb table)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import paramiko
import pytest

from dnet.inventory import hosts
from dnet.inventory import load as load_inventory
from dnet.runbook.actions import ACTIONS
from dnet.runbook.conditions import CONDITIONS, ConditionArgs
from tests.conftest import EXAMPLE, ROOT

PACKAGE = ROOT / "dnet"


def imports() -> dict[str, set[str]]:
    """Every dnet module and the dnet modules it imports, wherever the import stands (functions included)."""
    mods = {}
    for p in PACKAGE.rglob("*.py"):
        name = ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        mods[name] = p
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for a in node.names:
                    full = f"{node.module}.{a.name}"
                    graph[m].add(full if full in mods else node.module)
            elif isinstance(node, ast.Import):
                graph[m] |= {a.name for a in node.names}
    return {m: {d for d in deps if d in mods and d != m} for m, deps in graph.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_module_of_dnet_imports_itself_round_a_circle() -> None:
    graph = imports()
    assert len(graph) > 80 and "dnet.plan.world" in graph["dnet.plan.diff"]
    assert cycles(graph) == []
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # the walker finds one


def test_verify_and_doctor_do_not_reach_into_apply_for_the_leader() -> None:
    graph = imports()
    assert "dnet.converge" not in graph["dnet.verify"]


def test_every_runbook_action_and_condition_is_documented() -> None:
    page = (ROOT / "docs" / "reference" / "runbooks.md").read_text()
    for name, a in ACTIONS.items():
        assert f"`{name}`" in page and a.doc, name
    for name, c in CONDITIONS.items():
        assert f"`{name}`" in page and c.doc, name


def _tested(name: str) -> bool:
    """Named in a test, or in a shipped runbook that the lab tests run."""
    texts = [p.read_text() for p in (ROOT / "tests").glob("test_*.py")]
    shipped = {p.stem: p.read_text() for p in (PACKAGE / "files" / "runbooks").glob("*.yml")}
    run = {stem for stem in shipped if any(f'"{stem}"' in t for t in texts)}
    forms = (f"action: {name}", f"condition: {name}", f"when: {name}\n", f"when: not {name}\n")
    return any(f in t for f in forms for t in texts) or any(f in shipped[s] for f in forms for s in run)


@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_every_action_is_tested(name: str) -> None:
    assert _tested(name), f"no test runs action {name}"


@pytest.mark.parametrize("name", sorted(CONDITIONS))
def test_every_condition_is_tested(name: str) -> None:
    assert _tested(name), f"no test uses condition {name}"


# What an action may read in a dry run; anything else the fake refuses, and the action fails.
READS = [(r"^docker node inspect ", 0, "ready\n", ""), (r"^docker info --format", 0, "active false\n", ""),
         (r"^docker ps -q --filter label=com.docker.swarm.task.id", 0, "0\n", ""),
         (r"^docker service ls ", 0, "", ""), (r"http://d/tasks|docker service ps", 0, "", "")]


@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_every_action_has_a_dry_run_that_changes_nothing(name: str) -> None:
    from dnet.runbook.context import RunContext
    from dnet.session import Session
    from dnet.testing import FakeTransport

    loaded = load_inventory(EXAMPLE)
    facts = {n: (ROOT / "tests" / "data" / f"applied-{n}.txt").read_text() for n in ("node1", "node2", "node3")}
    ids = "\n".join(sorted({i for f in facts.values() for i in re.findall(r'"NodeID":"([a-z0-9]+)"', f)}))
    ts = {h: FakeTransport(h, [("@@dnet:", 0, facts[h], ""), (r"^docker node ls -q", 0, ids, ""), *READS])
          for h in facts}
    s = Session(loaded, hosts(loaded.model, paramiko.SSHConfig()), dict(ts))
    logged: list[str] = []
    rc = RunContext(s, {}, True, logged.append, stale=True)
    a = ACTIONS[name]
    args = ConditionArgs.model_validate({"condition": "node-ready"}) if a.args is ConditionArgs else \
        a.args.model_validate({}) if a.args else None
    target = ["node1"] if name == "force-new-cluster" else ["node3"]  # it acts on a surviving manager only
    outcomes = a.run(rc, [] if a.swarm_wide else target, args, 1)
    assert outcomes and all(status == "ok" for _, status, _ in outcomes), outcomes
    assert not any(t.unexpected for t in ts.values()), {h: t.unexpected for h, t in ts.items()}


def test_every_lab_provider_is_behind_the_interface() -> None:
    import importlib

    from dnet.lab.provider import PROVIDERS, get

    for name, module in PROVIDERS.items():
        p = get(name)
        assert p is importlib.import_module(module).PROVIDER and p.name == name
        for method in ("up", "down", "status"):
            assert callable(getattr(p, method)), (name, method)


def test_every_verb_a_check_uses_is_in_the_verb_table() -> None:
    from dnet.verify import probe
    from dnet.verify.derive import derive
    from tests.test_facts_plan import facts

    inv = load_inventory(EXAMPLE).model
    checks = derive(inv, hosts(inv, paramiko.SSHConfig()), facts("applied"), {})
    used = {c.action[0] for c in checks}
    assert used and used <= set(probe.VERBS), used - set(probe.VERBS)
    for v in probe.VERBS.values():
        assert v.doc and (v.shell or v.operator or v.facts), v.name
        if v.shell:
            assert v.shell.lstrip().startswith(f"{v.name}() {{") and f"\n{v.name}() {{" in probe.LIB, v.name


def test_where_to_add_names_each_registry() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text()
    for where in ("dnet/plan/model.py", "dnet/runbook/actions.py", "dnet/runbook/conditions.py", "dnet/doctor.py",
                  "dnet/lab/provider.py", "dnet/verify/probe.py", "dnet/execute.py", "tests/test_architecture.py"):
        assert where in page, where


def test_the_example_is_a_path() -> None:
    assert Path(EXAMPLE).is_file()
