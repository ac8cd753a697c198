"""The shipped runbooks and `dnet run` on a real 3-node lab; results checked with plain docker over SSH."""
from __future__ import annotations

import hashlib
import json
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import jsondoc
from tests.lablib import dnet, dnet_json, node_sh

pytestmark = pytest.mark.lab
NET = "192.168.96"
NODES = ("node1", "node2", "node3")
# A service whose tasks stop at once on SIGTERM (busybox httpd as PID 1 ignores it: 10 s per stop), two replicas
# on three nodes, so a drained node's task has somewhere to go (its host-mode port is free on the third node).
WEB = ('''    command: [sh, -c, "trap 'exit 0' TERM; httpd -f -p 80 -h /www & wait"]\n    replicas: 2''')


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    name = f"r{uuid.uuid4().hex[:6]}"
    d = tmp_path_factory.mktemp("runbooks")
    inv = d / "lab.yml"
    r = dnet("lab", "up", "--name", name, "--subnet", f"{NET}.0/24", "--with-example", "-o", str(inv))
    assert r.returncode == 0, r.stderr
    text = inv.read_text()
    inv.write_text(text.replace('    command: [httpd, -f, -p, "80", -h, /www]\n    replicas: 3', WEB, 1))
    assert "replicas: 2" in inv.read_text()
    code, out = dnet_json("apply", "-i", str(inv), "--yes")
    assert code == 0, json.dumps(out)[-2000:]
    yield name, inv, d / "audit.log"
    dnet("lab", "down", "--name", name)


def run(lab: tuple[str, Path, Path], *args: str) -> tuple[int, dict[str, object], str]:
    _, inv, audit = lab
    r = dnet("run", *args, "-i", str(inv), "--audit-log", str(audit), "--json")
    try:
        return r.returncode, json.loads(r.stdout), r.stderr
    except ValueError:
        raise AssertionError(f"not JSON (exit {r.returncode}): {r.stdout[-2000:]} {r.stderr[-2000:]}") from None


def state(name: str) -> dict[str, str]:
    """What a dry run must leave alone: containers and their start times, nodes, engines, join tokens."""
    out = {}
    for n in NODES:
        out[n] = node_sh(name, n, "pidof dockerd; docker ps -aq | xargs -r docker inspect -f "
                                  "'{{.Name}} {{.State.Running}} {{.State.StartedAt}}' | sort")
    out["nodes"] = node_sh(name, "node1", "docker node ls --format '{{.Hostname}} {{.Availability}} {{.Status}}'")
    out["tokens"] = tokens(name)
    return out


def tokens(name: str) -> str:
    raw = node_sh(name, "node1", "docker swarm join-token -q worker; docker swarm join-token -q manager")
    return hashlib.sha256(raw.encode()).hexdigest()


def task_nodes(name: str) -> list[str]:
    out = node_sh(name, "node1", "docker service ps web --filter desired-state=running --format '{{.Node}}'")
    return sorted(out.split())


def test_dry_run_changes_nothing(lab: tuple[str, Path, Path]) -> None:
    name = lab[0]
    before = state(name)
    for book, params in (("rolling-engine-restart", []), ("remove-node", ["-p", "node=node3"]),
                         ("rotate-join-tokens", []), ("drain-node", ["-p", "node=node2"]),
                         ("upgrade-engine", ["-p", "serial=2"])):
        code, out, err = run(lab, book, *params, "--dry-run")
        assert code == 0, (book, out, err)
        steps = out["steps"]
        assert isinstance(steps, list) and all(s["status"] == "ok" for s in steps)
        assert all(r["message"].startswith("would") for s in steps for r in s["results"]), steps
    assert state(name) == before


def test_rolling_engine_restart_keeps_the_cluster_serving(lab: tuple[str, Path, Path]) -> None:
    name = lab[0]
    node_sh(name, "node2", "docker run -d --name mine dnet/probe:latest httpd -f -p 81 -h /www >/dev/null")
    pids = {n: node_sh(name, n, "pidof dockerd").strip() for n in NODES}
    rounds: list[int] = []
    stop = threading.Event()

    def client() -> None:  # every node's host-mode published port, every half second
        while not stop.is_set():
            answered = 0
            for i in (11, 12, 13):
                try:
                    with urllib.request.urlopen(f"http://{NET}.{i}:8080/", timeout=0.4) as resp:
                        answered += resp.read().strip() == b"dnet probe ok"
                except OSError:
                    pass
            rounds.append(answered)
            time.sleep(0.5)

    poller = threading.Thread(target=client)
    poller.start()
    try:
        code, out, err = run(lab, "rolling-engine-restart", "--yes")
    finally:
        stop.set()
        poller.join()
    assert code == 0, (out.get("reason"), out.get("steps"), err[-2000:])
    assert len(rounds) > 20 and min(rounds) >= 1, rounds
    assert all(node_sh(name, n, "pidof dockerd").strip() != pids[n] for n in NODES)  # every engine restarted
    replicas = node_sh(name, "node1", "docker service ls --format '{{.Name}} {{.Replicas}}'")
    assert replicas.split() == ["web", "2/2"]
    assert node_sh(name, "node2", "docker inspect -f '{{.State.Running}}' mine").strip() == "true"
    assert node_sh(name, "node3", "docker inspect -f '{{.State.Running}}' db").strip() == "true"
    avail = node_sh(name, "node1", "docker node ls --format '{{.Availability}}'").split()
    assert avail == ["Active"] * 3


def test_drain_node_moves_its_tasks_and_keeps_every_replica(lab: tuple[str, Path, Path]) -> None:
    name = lab[0]
    busy = next(n for n in ("node2", "node3") if n in task_nodes(name))
    code, out, err = run(lab, "drain-node", "-p", f"node={busy}", "--yes")
    assert code == 0, (out, err[-2000:])
    jsondoc.check("run", out, ("unreachable",))
    assert node_sh(name, "node1", f"docker node inspect {busy} --format '{{{{.Spec.Availability}}}}'").strip() == \
        "drain"
    assert node_sh(name, busy, "docker ps -q --filter label=com.docker.swarm.task.id").strip() == ""
    assert busy not in task_nodes(name) and len(task_nodes(name)) == 2
    code, out, err = run(lab, "activate-node", "-p", f"node={busy}", "--yes")
    assert code == 0, (out, err[-2000:])
    assert node_sh(name, "node1", f"docker node inspect {busy} --format '{{{{.Spec.Availability}}}}'").strip() == \
        "active"


def test_a_failed_step_stops_the_run_and_from_resumes_it(lab: tuple[str, Path, Path], tmp_path: Path) -> None:
    name, _, audit = lab
    (tmp_path / "steps.py").write_text(
        "def mark(ctx):\n"
        "    for h in ctx.hosts:\n"
        "        ctx.connections[h].run('touch /tmp/rb-python', hide=True)\n"
        "    return f\"marked {', '.join(ctx.hosts)} ({ctx.params['tag']})\"\n")
    book = tmp_path / "book.yml"
    book.write_text(
        "name: resume-test\nparams:\n  tag: {type: str, default: t1}\nsteps:\n"
        "  - {name: first, shell: 'rm -f /tmp/rb-*; touch /tmp/rb-first', hosts: workers}\n"
        "  - name: gate\n    action: fail-if\n    hosts: node2\n"
        "    with: {condition: shell, command: 'test ! -e /tmp/rb-allow', message: not allowed yet}\n"
        "  - {name: python, python: 'steps.py:mark', hosts: node2}\n"
        "  - {name: last, shell: 'touch /tmp/rb-last', hosts: workers, serial: 1}\n")
    start = len(audit.read_text().splitlines()) if audit.exists() else 0
    code, out, err = run(lab, str(book), "--yes")
    assert code == 1 and out["failed_at"] == 2 and out["reason"] == "not allowed yet", (out, err)
    assert out["resume"] == f"dnet run {book} -i {lab[1]} --from 2"
    assert node_sh(name, "node2", "ls /tmp | grep rb- | sort").split() == ["rb-first"]
    node_sh(name, "node2", "touch /tmp/rb-allow; rm /tmp/rb-first")
    code, out, err = run(lab, str(book), "--yes", "--from", "2")
    assert code == 0, (out, err)
    steps = out["steps"]
    assert isinstance(steps, list) and [s["status"] for s in steps] == ["skipped", "ok", "ok", "ok"]
    assert steps[2]["results"][0]["message"] == "marked node2 (t1)"
    assert node_sh(name, "node2", "ls /tmp | grep rb- | sort").split() == ["rb-allow", "rb-last", "rb-python"]
    assert node_sh(name, "node3", "ls /tmp | grep rb- | sort").split() == ["rb-first", "rb-last"]
    lines = [json.loads(x) for x in audit.read_text().splitlines()[start:]]
    assert {"run", "runbook", "step", "host", "start", "end", "result"} <= set(lines[0])
    assert [(x["step"], x["host"], x["result"]) for x in lines] == [
        ("first", "node2", "ok"), ("first", "node3", "ok"), ("gate", None, "failed"),
        ("gate", None, "ok"), ("python", None, "ok"), ("last", "node2", "ok"), ("last", "node3", "ok")]
    node_sh(name, "node2", "rm -f /tmp/rb-*")
    node_sh(name, "node3", "rm -f /tmp/rb-*")


def test_rotate_join_tokens_changes_both_and_prints_neither(lab: tuple[str, Path, Path]) -> None:
    name, _, audit = lab
    before = tokens(name)
    code, out, err = run(lab, "rotate-join-tokens", "--yes")
    assert code == 0, (out, err)
    assert tokens(name) != before
    for role in ("worker", "manager"):
        token = node_sh(name, "node1", f"docker swarm join-token -q {role}").strip()
        assert token.startswith("SWMTKN") and token not in json.dumps(out) + err + audit.read_text()
    code, out, err = run(lab, "rotate-join-tokens", "-p", "role=worker", "--yes")
    assert code == 0


def test_remove_node_then_add_it_back(lab: tuple[str, Path, Path]) -> None:
    name = lab[0]
    code, out, err = run(lab, "remove-node", "-p", "node=node3", "--yes")
    assert code == 0, (out, err[-2000:])
    assert node_sh(name, "node1", "docker node ls --format '{{.Hostname}}'").split() == ["node1", "node2"]
    assert node_sh(name, "node3", "docker info --format '{{.Swarm.LocalNodeState}}'").strip() == "inactive"
    assert len(task_nodes(name)) == 2
    code, out, err = run(lab, "add-node", "-p", "node=node3", "--yes")
    assert code == 0, (out, err[-2000:])
    nodes = node_sh(name, "node1", "docker node ls --format '{{.Hostname}} {{.Status}} {{.Availability}}'")
    assert sorted(nodes.splitlines()) == ["node1 Ready Active", "node2 Ready Active", "node3 Ready Active"]
    labels = json.loads(node_sh(name, "node1", "docker node inspect node3 --format '{{json .Spec.Labels}}'"))
    assert labels["zone"] == "b"
    steps = out["steps"]
    assert isinstance(steps, list) and steps[-1]["name"] == "verify" and steps[-1]["status"] == "ok"


def test_an_interrupted_engine_restart_says_which_node_it_left_drained(lab: tuple[str, Path, Path]) -> None:
    """SIGTERM while the first batch restarts: the run records `interrupted`, names the node it may have left
    drained with the command that activates it, keeps the lock, and that command (with --break-lock) puts the node
    back."""
    import signal
    import subprocess
    import sys

    from tests.conftest import ROOT

    name, inv, audit = lab
    p = subprocess.Popen([sys.executable, "-m", "dnet", "run", "rolling-engine-restart", "-i", str(inv), "--yes",
                          "--audit-log", str(audit)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         cwd=ROOT)
    assert p.stdout is not None
    seen = ""
    while "batch 1/" not in seen:
        line = p.stdout.readline()
        assert line, seen + (p.stderr.read() if p.stderr else "")
        seen += line
    node = seen.split("batch 1/")[1].split(": ", 1)[1].split(",")[0].strip()
    deadline = time.time() + 30
    while node_sh(name, "node1", f"docker node inspect {node} --format '{{{{.Spec.Availability}}}}'").strip() != \
            "drain":
        assert time.time() < deadline, "the node was never drained"
        time.sleep(0.3)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, seen + out + err
    assert f"left: {node}: engine-restart drained it and may have left it drained: dnet run activate-node -i " \
           f"{inv} -p node={node}" in out, out
    last = json.loads(audit.read_text().splitlines()[-1])
    assert last["result"] == "interrupted" and last["runbook"] == "rolling-engine-restart"
    r = dnet("run", "activate-node", "-i", str(inv), "-p", f"node={node}", "--yes", "--audit-log", str(audit))
    assert r.returncode == 1 and "it was cut short and left the lock" in r.stderr, r.stdout + r.stderr
    r = dnet("run", "activate-node", "-i", str(inv), "-p", f"node={node}", "--yes", "--break-lock",
             "--audit-log", str(audit))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    avail = node_sh(name, "node1", "docker node ls --format '{{.Availability}} {{.Status}}'").split("\n")
    assert sorted(a for a in avail if a) == ["Active Ready"] * 3


def test_pause_promote_activate_demote_act_on_the_node(lab: tuple[str, Path, Path], tmp_path: Path) -> None:
    """The node actions no shipped runbook uses, on a real swarm: each changes what the manager reports."""
    name = lab[0]
    there = tmp_path / "there.yml"
    there.write_text("name: there\nsteps:\n  - {name: pause, action: pause, hosts: node3}\n"
                     "  - {name: on the leader, shell: 'true', hosts: 'leader:!node3'}\n"
                     "  - {name: promote, action: promote, hosts: node3}\n"
                     "  - {name: member, action: wait-until, hosts: node3, with: {condition: in-swarm, timeout: 30}}\n"
                     "  - {name: up, action: fail-if, hosts: node3, with: {condition: node-down}}\n"
                     "  - {name: joined, action: fail-if, hosts: node3, with: {condition: not-in-swarm}}\n")
    back = tmp_path / "back.yml"
    back.write_text("name: back\nsteps:\n  - {name: demote, action: demote, hosts: node3}\n"
                    "  - {name: activate, action: activate, hosts: node3}\n")
    look = "docker node inspect node3 --format '{{.Spec.Availability}} {{.Spec.Role}}'"
    code, out, err = run(lab, str(there), "--yes")
    assert code == 0, (out, err[-2000:])
    assert out["steps"][1]["targets"] == ["node1"]  # type: ignore[index]
    assert node_sh(name, "node1", look).strip() == "pause manager"
    code, out, err = run(lab, str(back), "--yes")
    assert code == 0, (out, err[-2000:])
    assert node_sh(name, "node1", look).strip() == "active worker"


def run_on(inv: Path, audit: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    r = dnet(*args, "-i", str(inv), "--json", *(["--audit-log", str(audit)] if args[0] == "run" else []))
    try:
        return r.returncode, json.loads(r.stdout), r.stderr
    except ValueError:
        raise AssertionError(f"not JSON (exit {r.returncode}): {r.stdout[-2000:]} {r.stderr[-2000:]}") from None


def pending_engine_change(inv: Path, tmp_path: Path) -> Path:
    """The lab's inventory with an engine setting changed: applying it would restart every engine."""
    out = tmp_path / "engine.yml"
    text = inv.read_text()
    assert "    mtu: 1450\n" in text
    out.write_text(text.replace("    mtu: 1450\n", "    mtu: 1400\n", 1))
    return out


def pids(name: str) -> dict[str, str]:
    return {n: node_sh(name, n, "pidof dockerd").strip() for n in NODES}


def replicas(name: str) -> str:
    return node_sh(name, "node1", "docker service ls --format '{{.Name}} {{.Replicas}}'").strip()


def test_a_saved_targeted_plan_leaves_engines_alone_and_refuses_after_drift(lab: tuple[str, Path, Path],
                                                                              tmp_path: Path) -> None:
    name, inv, audit = lab
    engine = pending_engine_change(inv, tmp_path)
    engine.write_text(engine.read_text().replace("    replicas: 2", "    replicas: 1", 1))
    saved = tmp_path / "plan.json"
    before = pids(name)
    code, out, err = run_on(engine, audit, "plan", "--target", "service.web", "-o", str(saved))
    assert code == 0, (out, err[-2000:])
    assert [(c["host"], c["kind"], c["name"]) for c in out["changes"]] == [("node1", "service", "web")]
    assert sorted((c["host"], c["kind"]) for c in out["not_targeted"]) == [(n, "daemon") for n in NODES]
    jsondoc.check("plan-target", out, ("unreachable",))
    node_sh(name, "node2", "docker network create drifted >/dev/null")  # the hosts change after the review
    book = tmp_path / "saved.yml"
    book.write_text(f"name: saved\nsteps:\n  - {{name: the reviewed plan, action: apply, with: {{plan: {saved}}}}}\n")
    try:
        code, out, err = run_on(engine, audit, "apply", "--plan", str(saved), "--yes")
        assert code == 1 and out["drift"] == ["node2: its networks changed since the plan was saved"], (out, err)
        jsondoc.check("apply-refused", out)
        code, out, err = run_on(engine, audit, "run", str(book), "--yes")
        assert code == 1 and out["reason"] == ("the saved plan no longer holds; nothing was changed: node2: its "
                                               "networks changed since the plan was saved"), (out, err)
    finally:
        node_sh(name, "node2", "docker network rm drifted >/dev/null")
    assert replicas(name) == "web 2/2"  # refused: nothing changed
    code, out, err = run_on(engine, audit, "apply", "--plan", str(saved), "--yes")
    assert code == 0, (out, err[-2000:])
    assert [(c["kind"], c["name"], c["status"]) for c in out["changes"]] == [("service", "web", "ok")]
    assert replicas(name) == "web 1/1" and pids(name) == before
    code, out, err = run_on(inv, audit, "apply", "--target", "service.web", "--yes")
    assert code == 0 and replicas(name) == "web 2/2", (out, err[-2000:])


def test_scale_service_runbook_scales_one_service_and_proves_nothing_else_broke(lab: tuple[str, Path, Path],
                                                                                 tmp_path: Path) -> None:
    """An engine change is pending and a container is already down when the run starts: the engine is left alone,
    and the verify that starts the run records the broken container, so only new failures would stop it."""
    name, inv, audit = lab
    engine = pending_engine_change(inv, tmp_path)
    before = pids(name)
    node_sh(name, "node2", "docker stop -t 1 edge >/dev/null")
    try:
        code, out, err = run_on(engine, audit, "run", "scale-service", "-p", "service=web", "-p", "replicas=1", "--yes")
    finally:
        node_sh(name, "node2", "docker start edge >/dev/null")
    assert code == 0, (out.get("reason"), out.get("steps"), err[-2000:])
    assert [s["status"] for s in out["steps"]] == ["ok", "ok", "ok"]
    assert "not targeted" in out["steps"][0]["results"][0]["message"]
    assert "failed at the baseline too, none newly" in out["steps"][2]["results"][0]["message"], out["steps"][2]
    assert replicas(name) == "web 1/1" and pids(name) == before
    first = [json.loads(x) for x in audit.read_text().splitlines() if '"step": "baseline"' in x][-1]
    assert "failing" in first["message"] and "edge" in first["message"], first
    assert "mtu" not in inv.read_text().split("replicas: 2")[1] and "replicas: 2" in inv.read_text()  # file unedited
    code, out, err = run_on(inv, audit, "run", "scale-service", "-p", "service=web", "-p", "replicas=2", "--yes")
    assert code == 0 and replicas(name) == "web 2/2", (out.get("reason"), err[-2000:])


def test_maintenance_runbook_rescues_a_node_whose_engine_restart_failed(lab: tuple[str, Path, Path],
                                                                         tmp_path: Path) -> None:
    """node3's new engine setting keeps its engine from starting: the apply step fails, the rescue puts the old
    daemon.json back, starts the engine and activates the node, and the run still fails with the first reason."""
    name, inv, audit = lab
    bad = tmp_path / "bad.yml"
    text = inv.read_text()
    at = text.index("\n", text.index("roles", text.index("  node3:"))) + 1
    bad.write_text(text[:at] + "    docker:\n      daemon: {log-level: bogus}\n" + text[at:])
    daemon = node_sh(name, "node3", "cat /etc/docker/daemon.json")
    code, out, err = run_on(bad, audit, "run", "maintenance", "-p", "node=node3", "--yes")
    assert code == 1, (out, err[-2000:])
    status = {s["label"]: s["status"] for s in out["steps"]}
    assert status == {"1": "ok", "2": "ok", "3": "ok", "4": "ok", "5": "failed", "6": "skipped", "7": "skipped",
                      "8": "skipped", "rescue.1": "ok", "rescue.2": "ok", "rescue.3": "ok", "always.1": "ok"}, status
    assert out["failed_at"] == 5 and "node3" in out["reason"], out["reason"]
    assert node_sh(name, "node3", "cat /etc/docker/daemon.json") == daemon
    assert node_sh(name, "node3", "ls /etc/docker/daemon.json.dnet-maintenance", check=False) == ""
    look = "docker node inspect node3 --format '{{.Spec.Availability}} {{.Status.State}}'"
    assert node_sh(name, "node1", look).strip() == "active ready"
    code, out, err = run_on(inv, audit, "apply", "--yes")
    assert code == 0, (out, err[-2000:])


def test_replace_manager_runbook_recovers_a_swarm_that_lost_its_quorum(lab: tuple[str, Path, Path]) -> None:
    """Last in the module: it stops node2 for good. With node1 and node2 managers, node2's host dies and takes the
    quorum with it; the runbook forces a new cluster on node1, removes node2 and promotes node3."""
    name, inv, audit = lab
    node_sh(name, "node1", "docker node promote node2 >/dev/null")
    look = "docker node ls --format '{{.Hostname}} {{.ManagerStatus}}'"
    for _ in range(60):
        if "node2 Reachable" in node_sh(name, "node1", look):
            break
        time.sleep(1)
    assert "node2 Reachable" in node_sh(name, "node1", look)
    subprocess.run(["docker", "stop", "-t", "1", f"dnet-lab-{name}-node2"], check=True, capture_output=True)
    for _ in range(60):  # the managers notice (a lost quorum still answers reads: node1 stays "Leader")
        if "node2 Unreachable" in node_sh(name, "node1", look):
            break
        time.sleep(1)
    code, out, err = run_on(inv, audit, "run", "replace-manager", "-p", "dead=node2", "-p", "replacement=node3",
                            "--yes")
    assert code == 0, (out.get("reason"), out.get("steps"), err[-3000:])
    status = [(s["name"], s["status"]) for s in out["steps"]]
    assert status[:2] == [("managers left", "ok"), ("force a new cluster", "ok")], status
    assert out["steps"][1]["results"][0]["message"].startswith("forced a new cluster")  # `when: not quorum` held
    assert out["steps"][3]["results"][0]["message"].startswith("no raft member any more")  # demoted by the new cluster
    assert out["unreachable"] == {"node2": "not connected: the runbook's connect: pattern leaves it out"}
    nodes = sorted(node_sh(name, "node1", look).split("\n"))
    assert [n.strip() for n in nodes if n.strip()] == ["node1 Leader", "node3 Reachable"], nodes
