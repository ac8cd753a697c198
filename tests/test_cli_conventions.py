"""CLI conventions: plain text in a pipe, colour only on a terminal (and never with NO_COLOR), JSON shapes,
every problem of a file in one run, the schema, and the helpers behind them."""
from __future__ import annotations

import ipaddress
import json
import os
import pty
import re
import select
import socket
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from dnet.inventory.keys import DESCRIPTIONS
from dnet.inventory.resolve import expand_includes, ssh_config
from dnet.lab import output
from dnet.lab.state import LabState
from dnet.transport.ssh import advice
from tests import jsondoc
from tests.conftest import EXAMPLE, ROOT
from tests.test_cli import dnet

BOX = set("─│┌┐└┘├┤┬┴┼━┃┏┓┗┛╭╮╯╰═║")


def on_terminal(*args: str, env: dict[str, str] | None = None) -> str:
    """Run dnet with stdout on a pseudo-terminal; return what it printed."""
    main, sub = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "dnet", *args], stdout=sub, stderr=subprocess.DEVNULL, cwd=ROOT,
                         env={**{k: v for k, v in os.environ.items() if k != "NO_COLOR"}, "COLUMNS": "200",
                              **(env or {})})
    os.close(sub)
    chunks = []
    while True:
        ready, _, _ = select.select([main], [], [], 20)
        if not ready:
            break
        try:
            data = os.read(main, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    p.wait(timeout=20)
    os.close(main)
    return b"".join(chunks).decode(errors="replace")


def test_piped_output_is_plain_text() -> None:
    r = dnet("show", "-i", str(EXAMPLE))
    assert r.returncode == 0
    assert "\x1b" not in r.stdout and not BOX & set(r.stdout)
    host_rows = [ln for ln in r.stdout.splitlines() if "root@" in ln]
    assert len(host_rows) == 3 and all("root@192.168.77.1" in ln for ln in host_rows)  # one line per row
    rest = r.stdout.split("\nswarm\n", 1)[1]  # the hosts table is as wide as its settings' sources
    assert all(len(ln.rstrip()) <= 100 for ln in rest.splitlines())


def test_colour_only_on_a_terminal_and_never_with_no_color() -> None:
    styled = on_terminal("show", "-i", str(EXAMPLE))
    assert "\x1b[" in styled and BOX & set(styled)
    plain = on_terminal("show", "-i", str(EXAMPLE), env={"NO_COLOR": "1"})
    assert "node1" in plain and "\x1b[" not in plain


def test_quiet_and_json_everywhere() -> None:
    assert dnet("validate", "-q", "-i", str(EXAMPLE)).stdout == ""
    r = dnet("validate", "--json", "-i", str(EXAMPLE))
    data = json.loads(r.stdout)
    assert data["format_version"] == 1 and data["valid"] is True and data["summary"]["hosts"] == 3
    assert json.loads(dnet("show", "--json", "-i", str(EXAMPLE)).stdout)["format_version"] == 1
    for cmd in (["validate"], ["show"], ["plan"], ["apply"], ["destroy"], ["verify"], ["lab", "up"],
                ["lab", "down"], ["lab", "status"], ["schema"]):
        assert "-q, --quiet" in dnet(*cmd, "--help").stdout, cmd


def test_every_problem_of_a_file_in_one_run(tmp_path: Path) -> None:
    bad = tmp_path / "multi.yml"
    bad.write_text("version: 1\nhosts:\n  a: {address: 10.0.0.1, roles: [manager]}\n"
                   "  b: {address: 300.0.0.2}\n"
                   "services:\n  web: {image: x, replicas: three, networks: [nope]}\n"
                   "containers:\n  c1: {host: zz, image: x}\n")
    r = dnet("validate", "-i", str(bad))
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.splitlines() == [
        f"{bad}:4:16: hosts.b.address: '300.0.0.2' looks like an IPv4 address but is not one (four numbers 0-255 "
        "separated by dots)",
        f"{bad}:6:29: services.web.replicas: Input should be a valid integer (got 'three')",
        f"{bad}:6:47: service 'web' uses unknown network 'nope'",
        f"{bad}:8:14: container 'c1' is on unknown host 'zz'"]
    data = json.loads(dnet("validate", "--json", "-i", str(bad)).stdout)
    assert data["valid"] is False and data["summary"]["errors"] == 4
    assert [p["line"] for p in data["problems"]] == [4, 6, 6, 8]


def test_a_missing_identity_file_is_an_error_at_its_line_before_connecting(tmp_path: Path) -> None:
    inv = tmp_path / "keys.yml"
    inv.write_text("version: 1\nhosts:\n  a:\n    address: 127.0.0.1\n    port: 1\n"
                   f"    identity_file: {tmp_path}/nope\n")
    r = dnet("validate", "-i", str(inv))
    assert r.returncode == 0 and f"{inv}:6:20: warning: identity_file" in r.stderr
    r = dnet("plan", "-i", str(inv))
    assert r.returncode == 1 and r.stderr.startswith(f"{inv}:6:20: identity_file '{tmp_path}/nope' does not exist")


def test_connection_errors_say_what_to_check() -> None:
    assert "cannot resolve 'h.example'" in advice(socket.gaierror(-2, "Name or service not known"), "h.example", 22)
    refused = advice(ConnectionRefusedError(111, "Connection refused"), "127.0.0.1", 2222)
    assert "nothing listens on port 2222" in refused and "Errno" not in refused
    assert "no firewall drops port 22" in advice(TimeoutError(), "127.0.0.1", 22)


def test_connection_refused_end_to_end(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("not a key")
    inv = tmp_path / "inv.yml"
    with socket.socket() as s:  # a port on loopback that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inv.write_text(f"version: 1\ndefaults: {{identity_file: {key}}}\n"
                   f"hosts:\n  a: {{address: 127.0.0.1, port: {port}}}\n")
    r = dnet("plan", "-i", str(inv), "-q")
    assert r.returncode == 1 and f"nothing listens on port {port}" in r.stdout and "[Errno" not in r.stdout


def test_usage_error_exits_2() -> None:
    assert dnet("lab", "up", "--nodes", "0").returncode == 2


def test_schema_describes_every_key_and_accepts_the_example() -> None:
    schema = json.loads(dnet("schema").stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load(EXAMPLE.read_text()), schema)
    undescribed = [f"{name}.{prop}" for name, d in schema["$defs"].items()
                   for prop, spec in d.get("properties", {}).items() if not spec.get("description")]
    undescribed += [p for p, spec in schema["properties"].items() if not spec.get("description")]
    assert undescribed == []
    assert len(DESCRIPTIONS) >= 60
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"version": 1, "hosts": {"a": {"adress": "x"}}}, schema)


def test_ssh_config_include_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "b.conf").write_text("Host web\n  HostName 127.0.0.5\n  Port 2201\n  User ops\n")
    (tmp_path / "conf.d" / "a.conf").write_text("Host *\n  ServerAliveInterval 5\n")
    cfg = tmp_path / "config"
    cfg.write_text("Include conf.d/*.conf\nHost other\n  HostName 127.0.0.6\n")
    assert "HostName 127.0.0.5" in expand_includes(cfg)
    monkeypatch.setenv("DNET_SSH_CONFIG", str(cfg))
    parsed = ssh_config()
    assert parsed is not None
    found = parsed.lookup("web")
    assert (found["hostname"], found["port"], found["user"]) == ("127.0.0.5", "2201", "ops")
    monkeypatch.setenv("DNET_SSH_CONFIG", str(tmp_path / "none"))
    assert ssh_config() is None  # no file: no paramiko import for it, every host as the inventory says


def test_lab_inventory_keeps_the_example_comments_and_ends_with_a_newline(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DNET_HOME", str(tmp_path))
    state = LabState.layout("t", "docker", ipaddress.ip_network("192.168.55.0/24"), 4)
    text = output.inventory(state, output.EXAMPLE)
    assert text.endswith("\n") and not text.endswith("\n\n")
    assert "# every host inherits these unless it sets its own" in text and "# a group is a list of hosts" in text
    data = yaml.safe_load(text)
    assert data["hosts"]["node1"]["address"] == "192.168.55.11" and data["hosts"]["node4"]["roles"] == ["worker"]
    assert data["defaults"]["identity_file"] == str(state.key) and data["defaults"]["docker"]["dns"] == ["192.168.55.2"]
    bare = output.inventory(state)
    assert bare.endswith("\n") and yaml.safe_load(bare)["hosts"]["node1"]["roles"] == ["manager"]


def test_packaged_example_matches_inventories_example() -> None:
    assert output.EXAMPLE.read_text() == EXAMPLE.read_text()


def test_inventories_holds_no_lab_leftovers() -> None:
    tracked = subprocess.run(["git", "ls-files", "inventories"], capture_output=True, text=True, cwd=ROOT).stdout
    assert tracked.split() == ["inventories/example.yml"]


def test_validate_and_show_json_match_the_docs(tmp_path: Path) -> None:
    jsondoc.check("validate", json.loads(dnet("validate", "--json", "-i", str(EXAMPLE)).stdout))
    jsondoc.check("show", json.loads(dnet("show", "--json", "-i", str(EXAMPLE)).stdout), ("hosts",))
    bad = tmp_path / "bad.yml"
    bad.write_text("version: 1\nhosts: {a: {port: 0}}\n")
    jsondoc.check("validate", json.loads(dnet("validate", "--json", "-i", str(bad)).stdout))
    assert set(jsondoc.examples()) == {"validate", "plan", "plan-show-commands", "apply", "destroy", "verify", "run",
                                       "doctor", "trace", "lab-status", "show", "exec", "run-list",
                                       "plan-target", "apply-refused"}


def test_verbose_shows_every_command_and_quiet_hides_progress(tmp_path: Path) -> None:
    inv = tmp_path / "local.yml"  # this machine's own engine, read only
    inv.write_text("version: 1\nhosts:\n  me: {address: local}\n")
    r = dnet("plan", "-v", "-i", str(inv))
    assert r.returncode == 0, r.stderr
    assert "me$ mk() { d=$(mktemp -d)" in r.stderr and "me: facts read" in r.stderr
    r = dnet("plan", "-q", "-i", str(inv))
    assert r.returncode == 0 and r.stderr == "" and "No changes" in r.stdout


def test_commands_load_lazily_and_their_listed_help_is_their_own() -> None:
    import click

    from dnet.cli import main

    for name in main.COMMANDS:
        cmd = main.cli.get_command(click.Context(main.cli), name)
        assert cmd is not None and (cmd.help or "").strip().split("\n")[0] == main.COMMANDS[name][2], name
    code = ("import sys\nfrom dnet.cli.main import main\n"  # with argv, main raises SystemExit (no quick exit)
            "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith(('paramiko', 'fabric', 'pydantic', 'rich', "
            "'dnet.cli.converge_cmds'))))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.stdout.splitlines()[-1] == "[]" and r.stdout.startswith("dnet, version"), r.stdout + r.stderr
    listed = subprocess.run([sys.executable, "-m", "dnet", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert all(f"  {name} " in listed.stdout for name in main.COMMANDS), listed.stdout


def test_sigterm_stops_a_run_at_once_with_exit_130(tmp_path: Path) -> None:
    import signal
    import time

    silent = socket.socket()  # accepts SSH connections and never answers: the run hangs in the handshake
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    port = silent.getsockname()[1]
    try:
        inv = tmp_path / "inv.yml"
        inv.write_text(f"version: 1\nhosts:\n  mute: {{address: 127.0.0.1, port: {port}}}\n")
        proc = subprocess.Popen([sys.executable, "-m", "dnet", "plan", "-i", str(inv)], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2)  # connected, waiting for a banner that never comes
        assert proc.poll() is None
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - start
    finally:
        silent.close()
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
    assert took < 5, f"took {took:.1f}s to stop"


def test_the_command_exits_quickly_yet_runs_atexit_handlers_and_flushes_its_output() -> None:
    code = ("import atexit, sys\nfrom dnet.cli.main import main\n"
            "atexit.register(lambda: print('atexit ran'))\nsys.argv = ['dnet'] + sys.argv[1:]\nmain()\n"
            "print('not reached: main() ends the process')\n")
    r = subprocess.run([sys.executable, "-c", code, "--version"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.startswith("dnet, version") and r.stdout.endswith("atexit ran\n"), r
    r = subprocess.run([sys.executable, "-c", code, "validate", "-i", "/nonexistent.yml"], capture_output=True,
                       text=True, cwd=ROOT)
    assert r.returncode == 1 and "no such inventory file" in r.stderr and "not reached" not in r.stdout, r


def test_show_in_a_pipe_is_one_record_per_line_with_no_space_inside_a_field() -> None:
    r = subprocess.run([sys.executable, "-m", "dnet", "show", "-i", str(EXAMPLE)], capture_output=True, text=True,
                       check=True)
    assert "None" not in r.stdout and "/16/24" not in r.stdout
    blocks = re.split(r"\n(?=[a-z]+\n)", r.stdout.strip())
    titles = [b.split("\n", 1)[0] for b in blocks]
    assert titles == ["hosts", "swarm", "networks", "workloads", "forwards", "egress", "checks"]
    for block in blocks:
        header, *rows = block.split("\n")[1:]
        for line in rows:
            assert len(line.split()) == len(header.split()), (block.split("\n")[0], line)
    hosts_rows = blocks[0].split("\n")[2:]
    assert hosts_rows[0].split()[-1] == ("identity_file=defaults,port=defaults,user=defaults,transport=built-in,"
                                         "hostname=host")


def test_validate_imports_no_ssh_library_and_in_a_pipe_no_rich() -> None:
    """Nor tarfile (only apply bundles a stack's files): validate's time is mostly imports."""
    code = ("import sys\nfrom dnet.cli.main import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print(sorted({m.split('.')[0] for m in sys.modules if m.startswith(('paramiko', 'fabric', 'invoke', "
            "'rich', 'tarfile'))}), file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code, "validate", "-i", str(EXAMPLE)], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.stdout.startswith(f"{EXAMPLE}: valid (") and r.stderr.splitlines()[-1] == "[]", r.stdout + r.stderr
