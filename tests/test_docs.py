"""The documentation site: generated reference pages are current, every finding, hint and result has a
troubleshooting entry, and the site builds with no warning."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dnet import docgen
from dnet import doctor as doctor_module
from dnet.verify import explain, findings
from tests.conftest import ROOT

DOCS = ROOT / "docs"


def test_generated_reference_pages_are_current() -> None:
    for page, text in docgen.pages().items():
        committed = (DOCS / "reference" / page).read_text()
        assert committed == text, f"docs/reference/{page} is stale: run python -m dnet.docgen docs/reference"


def test_every_inventory_key_and_command_is_in_the_reference() -> None:
    from dnet.cli.main import COMMANDS
    from dnet.inventory.keys import DESCRIPTIONS
    from dnet.inventory.schema import json_schema

    models = {*json_schema()["$defs"], "Inventory"}  # ContainerPort is written as text ("8080:80/tcp"), not keys
    inventory = (DOCS / "reference" / "inventory.md").read_text()
    for key in DESCRIPTIONS:
        model, _, name = key.rpartition(".")
        name = name.rstrip("_")  # from_ is written from
        if model in models:
            assert (f"| `{name}` |" in inventory and f"## {model}" in inventory) or model == "Inventory", key
    cli = (DOCS / "reference" / "cli.md").read_text()
    assert all(f"## `dnet {name}`" in cli for name in COMMANDS)


def test_every_finding_hint_and_result_has_a_troubleshooting_entry() -> None:
    page = (DOCS / "troubleshooting.md").read_text()
    anchors = set(re.findall(r"\{#([a-z0-9-]+)\}", page))
    wanted = {f"finding-{rule.__name__.strip('_').replace('_', '-')}" for rule in findings.RULES}
    wanted.add("finding-fallback")
    source = Path(explain.__file__).read_text()
    keys = re.findall(r"note\(\w+, \"([a-z0-9-]+)\"", source)
    assert len(keys) == source.count("note(") - 1  # every call but the definition names its entry
    wanted |= {f"hint-{k}" for k in keys}
    wanted |= {f"result-{k}" for k in explain.KIND} | {"result-mtu", "result-must-not-reach"}
    declared = {k for c in doctor_module.CHECKS.values() for k in c.keys}  # examine refuses any other key
    assert len(doctor_module.CHECKS) >= 12 and "swarm-port-blocked" in declared
    wanted |= {f"doctor-{k}" for k in declared} | {"doctor-unreachable"}
    assert not wanted - anchors, f"missing from docs/troubleshooting.md: {sorted(wanted - anchors)}"


@pytest.mark.skipif(not shutil.which("mkdocs") and not (Path(sys.executable).parent / "mkdocs").exists(),
                    reason="mkdocs is not installed (pip install -e '.[test]' installs it)")
def test_the_site_builds_without_warnings(tmp_path: Path) -> None:
    mkdocs = shutil.which("mkdocs") or str(Path(sys.executable).parent / "mkdocs")
    r = subprocess.run([mkdocs, "build", "--strict", "-d", str(tmp_path / "site")], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert (tmp_path / "site" / "troubleshooting" / "index.html").exists()


def test_every_environment_variable_dnet_reads_is_documented_or_internal() -> None:
    used = {m for f in (ROOT / "dnet").rglob("*") if f.suffix in (".py", "") and f.is_file()
            for m in re.findall(r"DNET_[A-Z_]+", f.read_text(errors="ignore"))}
    unclassified = used - set(docgen.ENVIRONMENT) - docgen.INTERNAL
    assert not unclassified, f"document these in dnet/docgen.py ENVIRONMENT (or mark them INTERNAL): {unclassified}"


def test_the_quick_start_examples_that_need_no_hosts_print_what_the_page_shows(tmp_path: Path) -> None:
    page = (DOCS / "quickstart.md").read_text()
    blocks = re.findall(r"```(yaml|text)\n(.*?)```", page, re.S)
    cluster, valid = blocks[0][1], blocks[1][1].strip()
    (tmp_path / "cluster.yml").write_text(cluster)

    def dnet(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "dnet", *args], capture_output=True, text=True, cwd=tmp_path)

    r = dnet("validate", "-i", "cluster.yml")
    assert r.returncode == 0 and r.stdout.strip() == valid
    r = dnet("show", "-i", "cluster.yml")
    assert r.returncode == 0 and "web1" in r.stdout and "appnet" in r.stdout
    assert dnet("schema").returncode == 0
    unreachable = next(body for kind, body in blocks if kind == "yaml" and "127.0.0.1" in body)
    (tmp_path / "unreachable.yml").write_text(unreachable)
    shown = next(body for kind, body in blocks if kind == "text" and "$ dnet plan" in body).strip().splitlines()
    r = dnet("plan", "-i", "unreachable.yml")  # 127.0.0.1 port 2: nothing leaves this machine
    assert r.returncode == 1 and r.stdout.strip().splitlines() == shown[1:]


def test_the_cli_reference_holds_every_option_of_every_command_as_h_prints_it() -> None:
    import click
    from click.testing import CliRunner

    from dnet.cli.main import COMMANDS, cli

    page = (DOCS / "reference" / "cli.md").read_text()
    sections = {m[1]: m[2] for m in re.finditer(r"## `(dnet [^`]+)`\n(.*?)(?=\n## |\Z)", page, re.S)}
    seen = 0

    def walk(words: list[str], cmd: click.Command, parent: click.Context) -> None:
        nonlocal seen
        name = " ".join(["dnet", *words])
        helptext = CliRunner().invoke(cli, [*words, "-h"], terminal_width=400).output
        section = sections[name]
        ctx = click.Context(cmd, info_name=name, parent=parent)
        for p in cmd.get_params(ctx):
            if isinstance(p, click.Option) and not p.hidden:
                assert p.help, f"{name} {p.opts[0]} has no help text"
                record = p.get_help_record(ctx)
                assert record, f"{name} {p.opts[0]}"
                assert record[0] in helptext, f"{name} -h lacks {record[0]}"
                assert f"| `{record[0].replace('|', chr(92) + '|')}` |" in section, f"{name}: {record[0]} missing"
                seen += 1
        if isinstance(cmd, click.Group):
            for sub_name, sub in cmd.commands.items():
                walk([*words, sub_name], sub, ctx)

    root = click.Context(cli, info_name="dnet", **cli.context_settings)
    for name in COMMANDS:
        command = cli.get_command(root, name)
        assert command is not None
        walk([name], command, root)
    assert seen > 100


def test_every_command_takes_q_as_the_readme_says() -> None:
    import click

    from dnet.cli.main import COMMANDS, cli

    assert "Every command takes `-q`" in (ROOT / "README.md").read_text().replace("\n", " ")

    def leaves(cmd: click.Command) -> list[click.Command]:
        return [x for c in cmd.commands.values() for x in leaves(c)] if isinstance(cmd, click.Group) else [cmd]

    root = click.Context(cli, info_name="dnet", **cli.context_settings)
    for name in COMMANDS:
        for leaf in leaves(cli.get_command(root, name)):  # type: ignore[arg-type]
            assert any("-q" in p.opts for p in leaf.params if isinstance(p, click.Option)), leaf.name


def test_each_day_to_day_command_has_its_page_in_the_site() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    for name in ("doctor", "exec", "trace", "tunnel", "graph", "report", "destroy"):
        page = (DOCS / "day-to-day" / f"{name}.md").read_text()
        assert f"dnet {name} -i" in page and "```text" in page, name  # how to run it, and real output
        assert all(k in page for k in ("**Exit codes:**", "**Changes:**")), name
        assert f"day-to-day/{name}.md" in nav, name
    quick = (DOCS / "quickstart.md").read_text()
    for step in ("dnet doctor -i", "dnet destroy -i cluster.yml --leave-swarm", "advertise_interface", "three",
                 "--no-operator", "pip install dnet-swarm", "Python 3.11"):
        assert step in quick, step
