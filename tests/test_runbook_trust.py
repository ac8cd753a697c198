"""Runbooks under hostile input, run for real on this machine (`address: local`: a real shell, real files, real
processes): values are one shell word each, secrets never show, dry runs run nothing the author wrote, python
files stay in the runbook's folder, the audit log says what ran and refuses unsafe files, interrupts are recorded.
The corpus in tests/bad_runbooks/ holds files that must fail at FILE:LINE:COL."""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from dnet.errors import DnetError, InventoryError
from dnet.runbook import load
from dnet.runbook.audit import Audit
from tests.conftest import ROOT

BAD = sorted((ROOT / "tests" / "bad_runbooks").glob("*.yml"))
LOCK = Path("/run/dnet.lock")


def dnet(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dnet", *args], capture_output=True, text=True, cwd=cwd or ROOT,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when this returns: nothing listens there


@pytest.fixture
def local(tmp_path: Path) -> Path:
    inv = tmp_path / "inv.yml"
    inv.write_text("version: 1\nhosts:\n  me: {address: local}\n")
    return inv


def book(tmp_path: Path, text: str, name: str = "book.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def run(book_path: Path, inv: Path, *args: str) -> tuple[int, dict[str, object], str]:
    r = dnet("run", str(book_path), "-i", str(inv), "--audit-log", str(inv.parent / "audit.log"), "--json", *args)
    try:
        return r.returncode, json.loads(r.stdout), r.stderr
    except ValueError:
        raise AssertionError(f"not JSON (exit {r.returncode}): {r.stdout[-2000:]} {r.stderr[-2000:]}") from None


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_runbook_is_rejected_at_the_right_place(path: Path) -> None:
    with pytest.raises(InventoryError) as exc:
        load(path)
    got = [str(p).removeprefix(f"{path}:") for p in exc.value.problems]
    want = [ln.removeprefix("# expect: ").replace("@DIR@", str(path.parent))
            for ln in path.read_text().splitlines() if ln.startswith("# expect: ")]
    assert got == want


def test_bad_runbooks_fail_cleanly_on_the_command_line(local: Path) -> None:
    for path in BAD:
        r = dnet("run", str(path), "-i", str(local), "--dry-run")
        assert r.returncode == 1 and r.stdout == "" and "Traceback" not in r.stderr, (path.name, r.stderr)
        assert r.stderr.startswith(f"{path}:"), (path.name, r.stderr[:300])


HOSTILE = ["hi; touch {d}/pwned", "$(touch {d}/pwned)", "`touch {d}/pwned`", "a'b", 'a"b', "two\nlines", "back\\slash",
           "*", "-n", "--help", "$HOME", "${{IFS}}x", "!!", "~root", "tab\there", "ü ☃ 中", "\x1b[31mred\x1b[0m",
           "x" * 5000, "';touch {d}/pwned;'", '";touch {d}/pwned;"', "\\';touch {d}/pwned", "|| touch {d}/pwned"]


def test_every_hostile_value_reaches_the_shell_as_one_word(tmp_path: Path, local: Path) -> None:
    """Each value, given in a parameter file, is written by printf to a file of its own: the file holds exactly
    the value, and nothing the value says is run."""
    values = {f"v{i}": v.format(d=tmp_path) for i, v in enumerate(HOSTILE)}
    params = "".join(f"  v{i}: {{}}\n" for i in range(len(HOSTILE)))
    steps = "".join(f"  - {{name: w{i}, hosts: me, shell: \"printf %s {{{{ v{i} }}}} > {tmp_path}/out{i}\"}}\n"
                    for i in range(len(HOSTILE)))
    path = book(tmp_path, f"name: hostile\nparams:\n{params}steps:\n{steps}")
    pfile = tmp_path / "values.yml"
    pfile.write_text(yaml.safe_dump(values, allow_unicode=True))
    code, out, err = run(path, local, "--param-file", str(pfile), "--yes")
    assert code == 0, (out.get("reason"), err[-2000:])
    for i, v in enumerate(values.values()):
        assert (tmp_path / f"out{i}").read_text() == v.strip(), i
    assert not (tmp_path / "pwned").exists()


def test_raw_inserts_the_text_unquoted_and_the_dry_run_says_so(tmp_path: Path, local: Path) -> None:
    path = book(tmp_path, "name: raw\nparams:\n  cmd: {}\nsteps:\n"
                          "  - {name: run it, hosts: me, shell: '{{ cmd | raw }} > " + str(tmp_path) + "/out'}\n")
    code, out, _ = run(path, local, "-p", "cmd=echo one; echo two", "--dry-run")
    assert out["dry_run"] is True
    assert code == 0 and not (tmp_path / "out").exists()
    r = dnet("run", str(path), "-i", str(local), "-p", "cmd=echo one", "--dry-run")
    assert "(unquoted, by | raw: cmd)" in r.stdout, r.stdout
    code, _out, _ = run(path, local, "-p", "cmd=echo one; echo two", "--yes")
    assert code == 0 and (tmp_path / "out").read_text() == "two\n"  # raw: the author's explicit choice


SECRET = "hunter2'\"$(x)`" + "s3cr3t" * 70  # 434 characters, quotes included: the shell-quoted form differs


def leaks(text: str) -> list[str]:
    """Every 10-character piece of SECRET found in text (a cut secret leaks too)."""
    return [SECRET[i:i + 10] for i in range(len(SECRET) - 10) if SECRET[i:i + 10] in text]


def strings(value: object) -> str:
    """Every string inside parsed JSON, unescaped, one per line."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "\n".join(strings(v) for v in value.values())
    if isinstance(value, list):
        return "\n".join(strings(v) for v in value)
    return str(value)


def test_a_secret_never_shows_nor_is_on_a_process_list(tmp_path: Path, local: Path) -> None:
    path = book(tmp_path, "name: secretive\nparams:\n  token: {secret: true}\n  n: {type: int, default: 1}\nsteps:\n"
                          "  - {name: use it, hosts: me, shell: 'sleep 2; echo {{ token }}; echo {{ token }} >&2; "
                          "exit 3'}\n")
    pfile = tmp_path / "secrets.yml"
    pfile.write_text(yaml.safe_dump({"token": SECRET}))
    seen: list[str] = []
    stop = threading.Event()

    def watch() -> None:  # every process's argv, here (where the "host" is) and for dnet itself
        while not stop.is_set():
            for p in Path("/proc").glob("[0-9]*/cmdline"):
                with contextlib.suppress(OSError):
                    seen.append(p.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        code, out, err = run(path, local, "--param-file", str(pfile), "--yes")
    finally:
        stop.set()
        watcher.join()
    assert code == 1 and out["failed_at"] == 1
    assert any("script=$(cat)" in c for c in seen)  # the watcher saw the step's shell, which got the text on stdin
    assert leaks("\n".join(seen)) == []
    audit = (tmp_path / "audit.log").read_text()
    records = [json.loads(line) for line in audit.splitlines()]
    for where, text in (("json", strings(out)), ("stderr", err), ("audit", audit), ("audit values", strings(records))):
        assert leaks(text) == [], where
    assert "exit 3: ***" in str(out["reason"])
    # a plain run (tables, not JSON): the step header and the failure line are masked too
    r = dnet("run", str(path), "-i", str(local), "--param-file", str(pfile), "--yes", "-v",
             "--audit-log", str(tmp_path / "audit.log"))
    assert r.returncode == 1 and leaks(r.stdout + r.stderr) == [] and "echo ***" in r.stdout
    assert "me$ sleep 2; echo ***; echo *** >&2; exit 3  # sent on stdin" in r.stderr  # -v shows the text sent
    # resuming: the secret is not written as text (nor as a placeholder that would run as the value)
    r = dnet("run", str(path), "-i", str(local), "-p", f"token={SECRET}", "--yes",
             "--audit-log", str(tmp_path / "audit.log"))
    resume = next(ln for ln in r.stdout.splitlines() if "resume with" in ln)
    assert "<secret>" not in resume and leaks(resume) == [] and "give the secret parameter token again" in resume


def test_param_errors_never_echo_what_was_given(tmp_path: Path, local: Path) -> None:
    path = book(tmp_path, "name: p\nparams:\n  pin: {type: int, secret: true}\nsteps:\n"
                          "  - {name: a, hosts: me, shell: 'true'}\n")
    r = dnet("run", str(path), "-i", str(local), "-p", "hunter2-typed-without-a-name", "--dry-run")
    assert r.returncode == 1 and "hunter2" not in r.stdout + r.stderr
    assert "error: -p (the 1st one): write -p NAME=VALUE (what was given is not shown: it may be a secret)" in r.stderr
    r = dnet("run", str(path), "-i", str(local), "-p", "pin=hunter2", "--dry-run")
    assert r.returncode == 1 and "hunter2" not in r.stdout + r.stderr
    assert "-p pin=***: pin must be a whole number" in r.stderr
    bad = tmp_path / "bad.yml"
    bad.write_text("pin:\n  - 1\n")
    r = dnet("run", str(path), "-i", str(local), "--param-file", str(bad), "--dry-run")
    assert r.returncode == 1 and r.stderr == (f"runbook: {path.resolve()}\n"  # always said: where the runbook was
                                              f"{bad}:2:3: 'pin' needs a single value (text, a number or true/false)\n")


def test_a_dry_run_runs_nothing_the_author_wrote(tmp_path: Path, local: Path) -> None:
    made = tmp_path / "made"
    path = book(tmp_path, "name: dry\nparams:\n  f: {}\nsteps:\n"
                          "  - name: stop if\n    action: fail-if\n    hosts: me\n"
                          "    with: {condition: shell, command: 'touch {{ f }}'}\n"
                          "  - name: wait\n    action: wait-until\n    hosts: me\n"
                          "    with: {condition: shell, command: 'touch {{ f }}'}\n"
                          "  - {name: sh, hosts: me, shell: 'touch {{ f }}'}\n")
    code, out, err = run(path, local, "-p", f"f={made}", "--dry-run")
    assert code == 0, (out, err)
    assert not made.exists()
    messages = [r["message"] for s in out["steps"] for r in s["results"]]  # type: ignore[attr-defined]
    assert messages[0] == (f"would run `touch {made}` on me (not run in a dry run), and stop the run if it exits 0 "
                           "on every target")
    assert messages[2] == f"would run: touch {made}"


def test_a_dry_run_over_an_unreachable_host_fails_and_resumes_as_a_dry_run(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yml"
    inv.write_text(f"version: 1\nhosts:\n  gone: {{address: 127.0.0.1, port: {closed_port()}}}\n")
    path = book(tmp_path, "name: far\nsteps:\n  - {name: a, hosts: gone, shell: uptime}\n")
    code, out, _ = run(path, inv, "--dry-run")
    assert code == 1 and out["failed_at"] == 1
    assert str(out["reason"]).startswith("gone: unreachable: gone (root@127.0.0.1:")
    assert str(out["resume"]).endswith("--from 1 --dry-run")


def test_python_steps_load_only_files_inside_the_runbooks_folder(tmp_path: Path, local: Path) -> None:
    outside = tmp_path / "outside.py"
    outside.write_text("def main(ctx):\n    open('" + str(tmp_path / "ran") + "', 'w').close()\n")
    folder = tmp_path / "books"
    folder.mkdir()
    (folder / "step.py").symlink_to(outside)  # a link out of the folder counts as outside
    path = book(folder, "name: py\nsteps:\n  - {name: a, python: step.py:main}\n")
    r = dnet("run", str(path), "-i", str(local), "--yes")
    assert r.returncode == 1 and not (tmp_path / "ran").exists()
    assert r.stderr == (f"{path}:3:15: python: 'step.py' is outside the runbook's folder ({folder}); keep the file "
                        "beside the runbook or below it\n")


def test_which_runbook_ran_is_said_and_recorded(tmp_path: Path, local: Path) -> None:
    (tmp_path / "playbooks").mkdir()
    shadow = tmp_path / "playbooks" / "drain-node.yml"
    shadow.write_text("name: drain-node\nparams:\n  node: {}\nsteps:\n  - {name: a, hosts: me, shell: 'true'}\n")
    (tmp_path / "playbooks" / "helper.py").write_text("def main(ctx):\n    return 'ok'\n")
    r = dnet("run", "drain-node", "-i", str(local), "-p", "node=me", "--yes", "--audit-log",
             str(tmp_path / "audit.log"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"runbook: {shadow} (not the copy shipped with dnet)" in r.stderr
    import hashlib

    line = json.loads((tmp_path / "audit.log").read_text().splitlines()[-1])
    assert line["file"] == str(shadow) and line["sha256"] == hashlib.sha256(shadow.read_bytes()).hexdigest()
    pybook = book(tmp_path / "playbooks", "name: withpy\nsteps:\n  - {name: a, python: helper.py:main}\n", "py.yml")
    code, _out, _ = run(pybook, local, "--yes")
    line = json.loads((local.parent / "audit.log").read_text().splitlines()[-1])
    helper = tmp_path / "playbooks" / "helper.py"
    assert code == 0 and line["python"] == {str(helper): hashlib.sha256(helper.read_bytes()).hexdigest()}


def test_the_audit_log_refuses_links_and_files_others_may_write(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("")
    link = tmp_path / "link.log"
    link.symlink_to(target)
    book_path = book(tmp_path, "name: a\nsteps:\n  - {name: a, shell: 'true'}\n")
    with pytest.raises(DnetError, match="is a symbolic link; dnet does not follow links there"):
        Audit(link, "a", str(book_path), {}, False)
    wide = tmp_path / "wide.log"
    wide.write_text("")
    wide.chmod(0o666)
    with pytest.raises(DnetError, match=r"may be written by its group and others \(mode 0666\); refusing to append "
                                        r"to it: chmod 600"):
        Audit(wide, "a", str(book_path), {}, False)
    if os.geteuid() == 0:
        theirs = tmp_path / "theirs.log"
        theirs.write_text("")
        os.chown(theirs, 65534, 65534)
        with pytest.raises(DnetError, match="belongs to uid 65534, not to you"):
            Audit(theirs, "a", str(book_path), {}, False)
    fresh = tmp_path / "new.log"
    Audit(fresh, "a", str(book_path), {}, False).write((), step="x")
    assert fresh.stat().st_mode & 0o777 == 0o600 and target.read_text() == ""


def test_an_unwritable_audit_log_after_a_change_says_the_step_completed(tmp_path: Path, local: Path) -> None:
    """The log becomes unsafe while the first step runs (the step itself widens its mode): the step did its work,
    the run says so and stops before the second step."""
    log = tmp_path / "audit.log"
    path = book(tmp_path, f"name: a\nsteps:\n  - {{name: one, hosts: me, shell: 'touch {tmp_path}/one; "
                          f"chmod 666 {log}'}}\n  - {{name: two, hosts: me, shell: 'touch {tmp_path}/two'}}\n")
    code, out, _ = run(path, local, "--yes")
    assert code == 1 and (tmp_path / "one").exists() and not (tmp_path / "two").exists()
    assert str(out["reason"]).startswith("step 1 (one) completed, but the audit log could not be written")
    assert str(out["resume"]).endswith("--from 2")


def test_an_interrupted_run_is_recorded_keeps_its_lock_and_says_how_to_resume(tmp_path: Path, local: Path) -> None:
    assert not LOCK.exists(), "another run holds this machine's dnet lock"
    path = book(tmp_path, "name: slow\nsteps:\n  - {name: nap, hosts: me, shell: 'sleep 20'}\n"
                          "  - {name: after, hosts: me, shell: 'true'}\n")
    p = subprocess.Popen([sys.executable, "-m", "dnet", "run", str(path), "-i", str(local), "--yes", "--audit-log",
                          str(tmp_path / "audit.log")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while not any(b"sleep\0" + b"20" in _read(c) for c in _cmdlines(p.pid)):
            assert time.monotonic() < deadline and p.poll() is None, "the step never started"
            time.sleep(0.1)
        p.send_signal(signal.SIGTERM)
        stdout, stderr = p.communicate(timeout=30)
    finally:
        p.kill()
    try:
        assert p.returncode == 130, stderr
        assert "interrupted at step 1: interrupted during step 1 (nap)" in stdout
        assert "the lock stays on me" in stdout
        assert re.search(r"resume with: dnet run \S+ -i \S+ --from 1", stdout)
        last = json.loads((tmp_path / "audit.log").read_text().splitlines()[-1])
        assert last["result"] == "interrupted" and last["step"] == "nap"
        holder = json.loads((LOCK / "holder").read_text())
        assert holder["abandoned"] == "step 1 (nap) was running there"
        r = dnet("run", str(path), "-i", str(local), "--yes", "--audit-log", str(tmp_path / "audit.log"))
        assert r.returncode == 1 and "it was cut short and left the lock" in r.stderr and "--break-lock" in r.stderr
        r = dnet("run", str(path), "-i", str(local), "--yes", "--from", "2", "--break-lock", "--audit-log",
                 str(tmp_path / "audit.log"))
        assert r.returncode == 0, r.stdout + r.stderr
        assert not LOCK.exists()
    finally:
        subprocess.run(["rm", "-rf", str(LOCK)], check=False)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:  # the process ended meanwhile
        return b""


def _cmdlines(pid: int) -> list[Path]:
    """The cmdline files of a process's descendants."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout.split()
    parent = dict(zip(map(int, out[0::2]), map(int, out[1::2]), strict=True))
    found = []
    for child in parent:
        p = child
        while p in parent and p != pid:
            p = parent[p]
        if p == pid and child != pid:
            found.append(Path(f"/proc/{child}/cmdline"))
    return [c for c in found if c.exists()]


def test_control_characters_from_a_host_never_reach_the_terminal(tmp_path: Path, local: Path) -> None:
    path = book(tmp_path, "name: esc\nsteps:\n  - {name: noisy, hosts: me, shell: \"printf '\\\\033]0;owned\\\\007"
                          "\\\\033[2Jgone\\\\233x'; exit 1\"}\n")
    r = dnet("run", str(path), "-i", str(local), "--yes", "--audit-log", str(tmp_path / "audit.log"))
    assert r.returncode == 1
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", r.stdout + r.stderr), repr(r.stdout)
    assert "\\x1b]0;owned\\x07\\x1b[2Jgone" in r.stdout
    code, out, _ = run(path, local, "--yes")
    assert code == 1 and "\x1b]0;owned\x07\x1b[2Jgone" in str(out["reason"])  # JSON keeps them, escaped


def test_a_port_that_accepts_and_closes_is_one_line_never_a_traceback(tmp_path: Path) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]

    def hang_up() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=hang_up, daemon=True).start()
    inv = tmp_path / "inv.yml"
    inv.write_text(f"version: 1\nhosts:\n  a: {{address: 127.0.0.1, port: {port}}}\n")
    try:
        r = dnet("plan", "-i", str(inv))
    finally:
        server.close()
    assert r.returncode == 1 and "Traceback" not in r.stderr and "Exception" not in r.stderr, r.stderr
    assert f"a (root@127.0.0.1:{port}): cannot connect: the SSH handshake failed" in r.stderr


def test_a_missing_secret_is_asked_for_on_a_terminal_and_never_echoed(tmp_path: Path, local: Path) -> None:
    import pty

    path = book(tmp_path, "name: ask\nparams:\n  token: {secret: true, description: the API token}\nsteps:\n"
                          f"  - {{name: use, hosts: me, shell: 'printf %s {{{{ token }}}} > {tmp_path}/got'}}\n")
    pid, fd = pty.fork()
    if pid == 0:  # the child: dnet on a terminal
        os.chdir(ROOT)
        os.execv(sys.executable, [sys.executable, "-m", "dnet", "run", str(path), "-i", str(local), "--yes",
                                  "--audit-log", str(tmp_path / "audit.log")])
    seen = b""
    deadline = time.monotonic() + 60
    while b"the API token" not in seen:
        assert time.monotonic() < deadline, seen
        seen += os.read(fd, 1024)
    os.write(fd, SECRET[:40].encode() + b"\n")
    while True:
        try:
            chunk = os.read(fd, 1024)
        except OSError:  # the terminal closed: dnet exited
            break
        if not chunk:
            break
        seen += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, seen.decode(errors="replace")
    assert (tmp_path / "got").read_text() == SECRET[:40]
    assert SECRET[:40].encode() not in seen  # typed, not echoed, and masked in what the run printed
