"""Authoring runbooks without an inventory: --list, NAME --help, --check, the runbook JSON Schema, and an Ansible
playbook found in ./playbooks named for what it is."""
from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml

from tests import jsondoc
from tests.conftest import ROOT

SHIPPED = sorted(Path(p).stem for p in glob.glob(str(ROOT / "dnet" / "files" / "runbooks" / "*.yml")))


def dnet(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DNET_INVENTORY"}
    return subprocess.run([sys.executable, "-m", "dnet", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=60)


def test_list_names_every_runbook_with_where_it_comes_from(tmp_path: Path) -> None:
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "mine.yml").write_text("name: mine\ndescription: my own\nsteps:\n"
                                                     "  - {name: hi, shell: echo hi}\n")
    data = json.loads(dnet("run", "--list", "--json", cwd=tmp_path).stdout)
    jsondoc.check("run-list", data)
    names = [r["name"] for r in data["runbooks"]]
    assert names == sorted([*SHIPPED, "mine"])
    mine = next(r for r in data["runbooks"] if r["name"] == "mine")
    assert (mine["from"], mine["description"]) == ("playbooks/mine.yml", "my own")
    assert all(r["from"] == "dnet" and r["description"] for r in data["runbooks"] if r["name"] != "mine")


def test_help_of_a_runbook_lists_parameters_types_defaults_and_steps(tmp_path: Path) -> None:
    r = dnet("run", "drain-node", "--help", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = [" ".join(ln.split()) for ln in r.stdout.splitlines()]
    assert lines[0].startswith("runbook drain-node (") and lines[0].endswith("dnet/files/runbooks/drain-node.yml)")
    assert "node host (required) the node to drain" in lines
    assert "timeout int 120 seconds to wait for the tasks to move" in lines
    assert "1 drain action drain {{ node }}" in lines
    assert "Usage: dnet run" in dnet("run", "--help", cwd=tmp_path).stdout


def test_check_needs_no_inventory_and_reports_every_problem_at_its_line(tmp_path: Path) -> None:
    assert dnet("run", "drain-node", "--check", cwd=tmp_path).stdout.endswith(
        "drain-node.yml: valid runbook drain-node (3 steps, 2 parameters)\n")
    bad = tmp_path / "bad.yml"
    bad.write_text("name: bad\nsteps:\n  - {name: a, shell: 'echo {{ nope }}'}\n  - {name: a, shell: echo}\n")
    r = dnet("run", str(bad), "--check", cwd=tmp_path)
    assert r.returncode == 1
    assert f"{bad}:3:5: step 'a' uses {{{{ nope }}}} but the runbook declares no such parameter" in r.stderr
    assert f"{bad}:4:" in r.stderr and "names must be unique" in r.stderr
    r = dnet("run", "drain-node", cwd=tmp_path)
    assert r.returncode == 2 and "Missing option '-i' / '--inventory'" in r.stderr


def test_an_ansible_playbook_in_playbooks_is_named_for_what_it_is(tmp_path: Path) -> None:
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "drain-node.yml").write_text("- hosts: all\n  tasks:\n    - ping:\n")
    r = dnet("run", "drain-node", "--check", cwd=tmp_path)
    own = ROOT / "dnet" / "files" / "runbooks" / "drain-node.yml"
    assert r.returncode == 1 and r.stderr.strip() == (
        f"playbooks/drain-node.yml:1:1: this is an Ansible playbook (a list of plays), not a dnet runbook; dnet's "
        f"own 'drain-node' is {own}: run it by that path; a dnet runbook is a mapping with 'name' and 'steps'")


def test_the_runbook_schema_accepts_every_shipped_runbook_and_refuses_an_unknown_key(tmp_path: Path) -> None:
    schema = json.loads(dnet("schema", "--runbook", cwd=tmp_path).stdout)
    assert schema["title"] == "dnet runbook"
    for f in glob.glob(str(ROOT / "dnet" / "files" / "runbooks" / "*.yml")):
        jsonschema.validate(yaml.safe_load(Path(f).read_text()), schema)
    try:
        jsonschema.validate({"name": "x", "steps": [{"name": "a", "shell": "true", "becom": True}]}, schema)
    except jsonschema.ValidationError as exc:
        assert "becom" in exc.message
    else:
        raise AssertionError("an unknown step key passed the schema")


def test_every_problem_of_a_runbook_comes_in_one_run_steps_counted_from_one(tmp_path: Path) -> None:
    """Schema and meaning together (they came in waves), with "did you mean" for parameters and conditions."""
    bad = tmp_path / "bad.yml"
    bad.write_text("name: bad\nparams:\n  node: {type: host}\nsteps:\n"
                   "  - {name: a, action: drain, hosts: '{{ nod }}'}\n"
                   "  - {name: b, action: wait-until, with: {condition: services-converge}}\n"
                   "  - {name: c, shell: 'true', timeot: 5}\n")
    r = dnet("run", str(bad), "--check", cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        f"{bad}:5:5: step 'a' uses {{{{ nod }}}} but the runbook declares no such parameter; did you mean 'node'? "
        "(params: node)",
        f"{bad}:6:53: step 2.with.condition: unknown condition 'services-converge'; did you mean "
        "'services-converged'?; conditions: no-tasks, in-swarm, not-in-swarm, shell, node-ready, node-down, "
        "node-absent, last-manager, services-converged, quorum",
        f"{bad}:7:30: unknown key 'timeot' in step 3; did you mean 'timeout'?"]


def test_a_mistyped_role_in_hosts_or_limit_gets_a_suggestion() -> None:
    import pytest

    from dnet.errors import DnetError
    from dnet.inventory import loads
    from dnet.inventory.limit import select
    from tests.conftest import EXAMPLE

    with pytest.raises(DnetError) as exc:
        select(loads(EXAMPLE.read_text()).model, "managrs")
    assert str(exc.value) == ("--limit: 'managrs' is no host, group or role of this inventory; did you mean "
                              "'managers'? (hosts: node1, node2, node3; groups: edge; roles: managers, workers; or "
                              "all, a wildcard such as node*, ~regex, &PATTERN, !PATTERN)")


def test_go_templates_pass_through_and_bools_render_as_true_false(tmp_path: Path) -> None:
    from dnet.runbook.model import substitute

    text = "docker ps --format '{{.Names}} {{ .Status }}' {{json .Config}} {{ flag }} {{ name }}"
    assert substitute(text, {"flag": True, "name": "a b"}, shell=True) == (
        "docker ps --format '{{.Names}} {{ .Status }}' {{json .Config}} true 'a b'")
    book = tmp_path / "lit.yml"
    book.write_text("name: lit\nsteps:\n  - {name: a, shell: \"docker ps --format '{{.Names}}'\"}\n")
    out = dnet("run", str(book), "--check", cwd=tmp_path).stdout
    assert out == f"{book}: valid runbook lit (1 step, 0 parameters)\n"
