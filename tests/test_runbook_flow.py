"""Runbook control flow on `address: local` hosts (real shells, no lab): when, register, rescue/always, retries,
run_once, host patterns, pause, ignore_errors, and the Jinja2 sandbox."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dnet.errors import InventoryError
from dnet.inventory import load as load_inventory
from dnet.runbook import bind, load
from tests.conftest import ROOT


def dnet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dnet", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120, stdin=subprocess.DEVNULL)


@pytest.fixture
def inv(tmp_path: Path) -> Path:
    path = tmp_path / "inv.yml"
    with socket.socket() as sock:  # b: a closed port on 127.0.0.1, an unreachable host
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path.write_text(f"version: 1\nhosts:\n  a: {{address: local}}\n  b: {{address: 127.0.0.1, port: {port}}}\n")
    return path


def run(tmp_path: Path, inv: Path, text: str, *args: str) -> tuple[int, dict[str, object]]:
    book = tmp_path / "book.yml"
    book.write_text(text)
    r = dnet("run", str(book), "-i", str(inv), "--audit-log", str(tmp_path / "audit.log"), "--json", "--yes", *args)
    assert "Traceback" not in r.stderr, r.stderr
    try:
        return r.returncode, json.loads(r.stdout)
    except ValueError:
        raise AssertionError(f"not JSON (exit {r.returncode}): {r.stdout[-2000:]} {r.stderr[-2000:]}") from None


def steps(out: dict[str, object]) -> dict[str, str]:
    return {s["label"]: s["status"] for s in out["steps"]}  # type: ignore[attr-defined]


def audit(tmp_path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]


def test_when_register_and_quoted_captured_output(tmp_path: Path, inv: Path) -> None:
    """A registered stdout that holds shell syntax reaches the next command as one quoted word; `when:` reads
    parameters and captured rc; a skipped step is printed and audited as skipped."""
    hostile = "x$(touch " + str(tmp_path) + "/pwned)'; touch " + str(tmp_path) + "/pwned2 #"
    (tmp_path / "hostile").write_text(hostile + "\n")
    code, out = run(tmp_path, inv, f"""name: flow
params:
  mode: {{default: slow}}
steps:
  - name: probe
    hosts: a
    shell: "cat {tmp_path}/hostile; exit 3"
    register: probe
    ignore_errors: true
  - name: fast only
    when: "mode == 'fast'"
    hosts: a
    shell: "touch {tmp_path}/fast"
  - name: when probe failed
    when: "probe.a.rc != 0 and probe.rc == 3"
    hosts: a
    shell: "printf '%s' {{{{ probe.a.stdout }}}} > {tmp_path}/echo"
  - name: never
    when: "probe.a.rc == 0"
    hosts: a
    shell: "touch {tmp_path}/never"
""")
    assert code == 0, out
    assert steps(out) == {"1": "ignored", "2": "skipped", "3": "ok", "4": "skipped"}
    assert (tmp_path / "echo").read_text() == hostile
    assert not any((tmp_path / n).exists() for n in ("pwned", "pwned2", "fast", "never"))
    skipped = [r for r in audit(tmp_path) if r["result"] == "skipped"]
    assert [(r["step"], r["message"]) for r in skipped] == [
        ("fast only", "when: mode == 'fast' is false"), ("never", "when: probe.a.rc == 0 is false")]
    code, out = run(tmp_path, inv, (tmp_path / "book.yml").read_text(), "-p", "mode=fast")
    assert code == 0 and steps(out)["2"] == "ok" and (tmp_path / "fast").exists()


def test_rescue_and_always_run_and_the_run_still_fails_with_the_first_reason(tmp_path: Path, inv: Path) -> None:
    code, out = run(tmp_path, inv, f"""name: rescue
steps:
  - name: fine
    hosts: a
    shell: "true"
    always:
      - {{name: after fine, hosts: a, shell: "echo fine >> {tmp_path}/log"}}
  - name: breaks
    hosts: a
    shell: "echo broken >&2; exit 4"
    rescue:
      - {{name: undo, hosts: a, shell: "echo undo >> {tmp_path}/log"}}
    always:
      - {{name: tidy, hosts: a, shell: "echo tidy >> {tmp_path}/log"}}
  - name: not reached
    hosts: a
    shell: "echo later >> {tmp_path}/log"
rescue:
  - {{name: run rescue, hosts: a, shell: "echo run-rescue >> {tmp_path}/log"}}
always:
  - {{name: run always, hosts: a, shell: "echo run-always >> {tmp_path}/log"}}
""")
    assert code == 1
    assert (tmp_path / "log").read_text().split() == ["fine", "undo", "tidy", "run-rescue", "run-always"]
    assert out["failed_at"] == 2 and out["reason"] == "a: exit 4: broken", out["reason"]
    assert steps(out) == {"1": "ok", "1.always.1": "ok", "2": "failed", "2.rescue.1": "ok", "2.always.1": "ok",
                          "3": "skipped", "rescue.1": "ok", "always.1": "ok"}
    parts = [r.get("part") for r in audit(tmp_path)]
    assert {"2.rescue.1", "rescue.1", "always.1"} <= set(parts)
    # succeeding, the run's rescue does not run; its always does
    (tmp_path / "log").unlink()
    code, out = run(tmp_path, inv, (tmp_path / "book.yml").read_text().replace("exit 4", "exit 0"))
    assert code == 0 and (tmp_path / "log").read_text().split() == ["fine", "tidy", "later", "run-always"]


def test_retries_delay_run_once_and_patterns(tmp_path: Path, inv: Path) -> None:
    count = tmp_path / "count"
    code, out = run(tmp_path, inv, f"""name: retry
connect: "all:!b"
steps:
  - name: flaky
    hosts: "all:!b"
    retries: 3
    delay: 0
    shell: "echo x >> {count}; [ $(wc -l < {count}) -ge 3 ]"
  - name: once
    hosts: all
    run_once: true
    shell: "echo once >> {tmp_path}/once"
  - name: hopeless
    hosts: a
    retries: 1
    delay: 0.1
    shell: "exit 9"
""")
    assert code == 1 and out["failed_at"] == 3 and "exit 9" in str(out["reason"])
    assert count.read_text().count("x") == 3  # failed twice, held the third time
    assert (tmp_path / "once").read_text() == "once\n"
    targets = {s["name"]: s["targets"] for s in out["steps"]}  # type: ignore[attr-defined]
    assert targets["flaky"] == ["a"] and targets["once"] == ["a"]
    assert out["unreachable"] == {"b": "not connected: the runbook's connect: pattern leaves it out"}


def test_pause_goes_on_with_yes_and_a_dry_run_says_it_would_pause(tmp_path: Path, inv: Path) -> None:
    text = "name: p\nsteps:\n  - {name: look, pause: check the dashboard now}\n"
    code, out = run(tmp_path, inv, text)
    assert code == 0 and out["steps"][0]["results"][0]["message"] == "--yes: not waiting (check the dashboard now)"  # type: ignore[index]
    code, out = run(tmp_path, inv, text, "--dry-run")
    assert code == 0 and out["steps"][0]["results"][0]["message"] == "would pause: check the dashboard now"  # type: ignore[index]


def test_pause_without_a_terminal_or_yes_is_refused() -> None:
    from dnet.runbook.context import RunContext, RunError

    rc = RunContext.__new__(RunContext)
    rc.dry_run, rc.ask, rc.yes, rc.secrets = False, None, False, ()
    with pytest.raises(RunError, match="waits for the operator: run it at a terminal, or pass --yes"):
        rc.pause("look")


def test_the_sandbox_refuses_python_internals_at_the_step(tmp_path: Path) -> None:
    book = tmp_path / "book.yml"
    book.write_text("name: s\nparams:\n  msg: {default: hi}\nsteps:\n  - name: leak\n    hosts: all\n"
                    "    shell: 'echo {{ msg.__class__.__mro__ }}'\n")
    inv = load_inventory(ROOT / "inventories" / "example.yml").model
    with pytest.raises(InventoryError) as exc:
        bind(load(book), inv, {})
    assert [str(p).removeprefix(f"{book}:") for p in exc.value.problems] == [
        "5:5: step 'leak': access to attribute '__class__' of 'str' object is unsafe."]


def test_docker_go_templates_in_shell_text_pass_through() -> None:
    from dnet.runbook.template import render

    text = "docker ps --format '{{.Names}} {{json .Labels}}' | grep {{ name }} && echo ${#x} {{ n * 2 }}"
    assert render(text, {"name": "a b", "n": 2}, shell=True) == (
        "docker ps --format '{{.Names}} {{json .Labels}}' | grep 'a b' && echo ${#x} 4")


def test_pause_at_a_terminal_waits_for_enter(tmp_path: Path) -> None:
    """The real prompt, on a pseudo-terminal: the run waits at the pause until Enter comes."""
    import os
    import pty
    import select
    import time

    inv = tmp_path / "inv.yml"
    inv.write_text("version: 1\nhosts:\n  a: {address: local}\n")
    book = tmp_path / "book.yml"
    book.write_text(f"name: p\nsteps:\n  - {{name: look, pause: check the dashboard}}\n"
                    f"  - {{name: after, hosts: a, shell: 'touch {tmp_path}/after'}}\n")
    main, sub = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "dnet", "run", str(book), "-i", str(inv), "--audit-log",
                             str(tmp_path / "audit.log")], stdin=sub, stdout=sub, stderr=sub, cwd=ROOT)
    os.close(sub)
    seen = b""

    def wait_for(text: bytes, timeout: float = 30) -> None:
        nonlocal seen
        end = time.monotonic() + timeout
        while text not in seen and time.monotonic() < end:
            if select.select([main], [], [], 0.2)[0]:
                try:
                    seen += os.read(main, 4096)
                except OSError:
                    break
        assert text in seen, seen[-2000:]

    try:
        wait_for(b"run runbook p (2 steps)?")
        os.write(main, b"y\n")
        wait_for(b"check the dashboard [Enter to go on, Ctrl-C to stop]")
        time.sleep(0.5)
        assert not (tmp_path / "after").exists()  # still waiting
        os.write(main, b"\n")
        wait_for(b"runbook p: 2 steps done")
        assert proc.wait(timeout=30) == 0 and (tmp_path / "after").exists()
    finally:
        proc.kill()
        os.close(main)


def test_a_verify_baseline_file_is_read_by_check_identity(tmp_path: Path) -> None:
    from dnet.runbook.actions import _baseline
    from dnet.runbook.context import RunContext, RunError
    from dnet.runbook.model import VerifyArgs

    rc = RunContext.__new__(RunContext)
    rc.runbook, rc.baseline = str(tmp_path / "book.yml"), None
    (tmp_path / "before.json").write_text(json.dumps({"format_version": 1, "checks": [
        {"scope": "3 across hosts", "from": "node1", "to": "node2", "check": "tcp 80", "ok": False},
        {"scope": "4 out", "from": "node1", "to": "internet", "check": "dns", "ok": True}]}))
    got = _baseline(rc, VerifyArgs(scope=None, baseline="before.json", limit=None))
    assert got == {("3 across hosts", "node1", "node2", "tcp 80"): False, ("4 out", "node1", "internet", "dns"): True}
    (tmp_path / "bad.json").write_text("[]")
    with pytest.raises(RunError, match=r"bad\.json: not a verify --json file"):
        _baseline(rc, VerifyArgs(scope=None, baseline="bad.json", limit=None))
    with pytest.raises(RunError, match="baseline: start needs the verify taken when the run starts"):
        _baseline(rc, VerifyArgs(scope=None, baseline="start", limit=None))
