"""Workload keys (env, mounts, health, resources, placement, update policy, secrets) from inventory to plan to the
docker flags, without hosts: specs, masking, in-place updates vs recreates, and the exact commands."""
from __future__ import annotations

import csv
import json
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from dnet.facts import ObjectFact
from dnet.inventory import loads
from dnet.plan import desired as d
from dnet.plan.diff import diff
from dnet.plan.model import FileCreate, FileRemove, ServiceRun, ServiceUpdate
from dnet.plan.runspec import SpecError
from dnet.plan.workloads import changed
from dnet.tasks import runflags
from dnet.testing import FakeTransport
from dnet.transport.base import quote
from tests.conftest import EXAMPLE
from tests.test_facts_plan import world

SECRET = "s3cr3t-Pa55 'quoted' $HOME"


def example(**web: object) -> str:
    """The example inventory with extra keys on service web."""
    data = yaml.safe_load(EXAMPLE.read_text())
    data["services"]["web"].update(web)
    return yaml.safe_dump(data, sort_keys=False)


def spec(text: str, tmp: Path | None = None, environ: dict[str, str] | None = None,
         image_id: str | None = None) -> d.ServiceSpec:
    inv = loads(text).model
    return d.service_spec("web", inv.services["web"], image_id,
                          d.Where(tmp or Path("."), inv.cluster, environ if environ is not None else {}))


def test_hashes_of_workloads_made_before_the_new_keys_do_not_change() -> None:
    """An upgrade of dnet must not touch running workloads: the example's hashes are those dnet 0.1 wrote."""
    inv = loads(EXAMPLE.read_text()).model
    assert d.service_spec("web", inv.services["web"], None).hash == "ed3cb1711d589f0f"
    assert d.container_spec("edge", inv.containers["edge"], None).hash == "c171473c7ff01502"


def test_env_reference_is_resolved_for_the_task_and_masked_everywhere_else(tmp_path: Path) -> None:
    s = spec(example(env={"DB_PASSWORD": "${DB_PASSWORD}", "MODE": "fast", "PRICE": "$$5"}), tmp_path,
             {"DB_PASSWORD": SECRET})
    env = {e.key: e for e in s.env}
    assert env["DB_PASSWORD"].value == SECRET and env["DB_PASSWORD"].secret
    assert env["PRICE"].value == "$5" and env["MODE"].shown == "fast"
    shown = json.dumps(s.as_dict()) + json.dumps(d.labels("service", s, "default"))
    assert SECRET not in shown and "${DB_PASSWORD}#" in shown
    flags, stdin = runflags.env_stdin(s)
    assert flags == ["--env-file", "/dev/stdin"] and stdin is not None and f"DB_PASSWORD={SECRET}\n".encode() in stdin
    assert SECRET not in quote(*runflags.service_args(s, "default"))
    assert s.secret_values == (SECRET,)


def test_an_unset_env_reference_is_an_error_naming_the_variable() -> None:
    with pytest.raises(SpecError, match=r"service 'web': env DB uses \$\{DB_HOST\}, which is not set on this "
                                        r"machine; export DB_HOST before running dnet"):
        spec(example(env={"DB": "pg://${DB_HOST}/app"}), environ={})


def test_unset_reference_blocks_the_plan_with_that_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DNET_TEST_UNSET", raising=False)
    plan = diff(world("applied", example(env={"X": "${DNET_TEST_UNSET}"})))
    assert plan.errors == ["service 'web': env X uses ${DNET_TEST_UNSET}, which is not set on this machine; export "
                           "DNET_TEST_UNSET before running dnet"]
    assert not any(c.kind == "service" for c in plan.changes)


def test_env_file_values_are_read_next_to_the_inventory_and_never_shown(tmp_path: Path) -> None:
    (tmp_path / "app.env").write_text(f"# comment\nexport TOKEN={SECRET}\nMODE=slow\n")
    s = spec(example(env_file="app.env", env={"MODE": "fast"}), tmp_path)
    env = {e.key: e for e in s.env}
    assert env["TOKEN"].value == SECRET and env["MODE"].value == "fast"  # env wins over env_file
    assert SECRET not in json.dumps(s.as_dict())
    (tmp_path / "bad.env").write_text("NOEQUALS\n")
    with pytest.raises(SpecError, match=r"bad.env:1: service 'web': expected NAME=value"):
        spec(example(env_file="bad.env"), tmp_path)
    with pytest.raises(SpecError, match=r"service 'web': env_file: cannot read .*missing.env"):
        spec(example(env_file="missing.env"), tmp_path)


def test_service_create_flags_carry_every_key(tmp_path: Path) -> None:
    (tmp_path / "db.txt").write_text(SECRET)
    s = spec(example(mode="global", replicas=None, entrypoint=["/bin/sh", "-c"], user="1000:1000", workdir="/srv",
                     labels={"team": "core"},
                     mounts=[{"type": "volume", "source": "data", "target": "/data"},
                             {"type": "bind", "source": "/etc/ssl", "target": "/ssl", "readonly": True},
                             {"type": "tmpfs", "target": "/tmp"}],
                     healthcheck={"test": ["wget", "-q", "-O-", "localhost"], "interval": "5s", "retries": 3},
                     resources={"limits": {"cpus": 0.5, "memory": "64M"}, "reservations": {"memory": "32M"}},
                     placement={"constraints": ["node.labels.zone==a"],
                                "preferences": [{"spread": "node.labels.rack"}]},
                     update={"parallelism": 1, "order": "start-first"}, secrets={"db": {"file": "db.txt"}}
                     ).replace("    replicas: null\n", "").replace("    replicas: 3\n", ""), tmp_path)
    args = runflags.service_args(s, "c1")
    assert args[:2] == ["--mode", "global"]
    joined = quote(*args)
    for want in ("--mount type=volume,source=data,target=/data,volume-label=dnet.managed=true,"
                 "volume-label=dnet.cluster=c1",
                 "--mount type=bind,source=/etc/ssl,target=/ssl,readonly", "--mount type=tmpfs,target=/tmp",
                 "--user 1000:1000", "--workdir /srv", "--label team=core",
                 "--health-cmd 'wget -q -O- localhost' --health-interval 5s --health-retries 3",
                 "--limit-cpu 0.5 --limit-memory 67108864 --reserve-memory 33554432",
                 "--entrypoint '/bin/sh -c'", "--constraint 'node.labels.zone == a'",
                 "--placement-pref spread=node.labels.rack", "--update-parallelism 1 --update-order start-first",
                 f"--secret source={s.secrets[0].object},target=/run/secrets/db"):
        assert want in joined, want
    assert SECRET not in joined and s.secrets[0].object.startswith("db-")


def test_container_entrypoint_list_puts_its_rest_before_the_command() -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["containers"]["edge"].update(entrypoint=["/bin/busybox", "env"], restart="no")
    inv = loads(yaml.safe_dump(data)).model
    c = d.container_spec("edge", inv.containers["edge"], None)
    flags, after = runflags.container_args(c, "default")
    assert flags[:2] == ["--restart", "no"] and flags[-2:] == ["--entrypoint", "/bin/busybox"]
    assert after == ["env", "httpd", "-f", "-p", "80", "-h", "/www"]


def applied_with(text: str, made_with: str) -> tuple[object, d.ServiceSpec]:
    """The applied lab's facts, with service web made by this dnet from inventory `made_with`; plan for `text`."""
    w = world("applied", text)
    web = w.facts["node1"].service("web")
    assert web
    old = spec(made_with, environ={"TOKEN": "one"}, image_id=w.local_images["dnet/probe:latest"])
    web.labels = d.labels("service", old, "default")
    return w, old


def test_changing_env_and_replicas_is_one_rolling_update_with_before_and_after() -> None:
    w, _ = applied_with(example(env={"MODE": "fast"}, replicas=2), example(env={"MODE": "slow", "OLD": "x"}))
    plan = diff(w)  # type: ignore[arg-type]
    [c] = [c for c in plan.changes if c.kind == "service"]
    assert isinstance(c, ServiceUpdate) and c.fields == ("replicas", "env")
    assert c.detail == "rolling update: replicas 3 -> 2; env MODE slow -> fast, OLD x -> unset"
    assert c.before() == {"replicas": 3, "env": {"MODE": "slow", "OLD": "x"}}
    assert c.after() == {"replicas": 2, "env": {"MODE": "fast"}}
    args = runflags.update_args(c.spec, c.old, c.fields, "default")
    assert args == ["--replicas", "2", "--env-rm", "OLD", "--env-add", "MODE=fast"]


def test_a_second_plan_after_the_update_has_no_service_change() -> None:
    text = example(env={"MODE": "fast"}, placement={"constraints": ["node.role == manager"]})
    w, _ = applied_with(text, text)
    assert not [c for c in diff(w).changes if c.kind == "service"]  # type: ignore[arg-type]


def test_changing_the_mode_or_dropping_the_healthcheck_recreates_and_says_why() -> None:
    base = example(healthcheck={"test": "true"})
    w, _ = applied_with(example(mode="global").replace("    replicas: 3\n", ""), base)
    [c] = [c for c in diff(w).changes if c.kind == "service"]  # type: ignore[arg-type]
    assert isinstance(c, ServiceRun) and c.recreate
    assert c.why == "mode replicated -> global: Docker cannot change a service's mode in place"
    w, _ = applied_with(EXAMPLE.read_text(), base)
    [c] = [c for c in diff(w).changes if c.kind == "service"]  # type: ignore[arg-type]
    assert isinstance(c, ServiceRun) and "health check removed" in c.why


def test_a_service_made_before_in_place_updates_is_recreated_once() -> None:
    plan = diff(world("applied", example(env={"MODE": "fast"})))
    [c] = [c for c in plan.changes if c.kind == "service"]
    assert isinstance(c, ServiceRun) and c.recreate and c.why == \
        "made by a dnet without in-place updates: recreated once"


def test_update_flags_for_mounts_ports_constraints_and_secrets(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("one")
    old = spec(example(mounts=[{"type": "volume", "source": "a", "target": "/a"},
                               {"type": "tmpfs", "target": "/t"}],
                       placement={"constraints": ["node.role == manager"]}, secrets={"a": {"file": "a.txt"}}),
               tmp_path)
    (tmp_path / "a.txt").write_text("two")
    new = spec(example(mounts=[{"type": "volume", "source": "b", "target": "/a"}],
                       ports=[{"published": 8081, "target": 80, "mode": "host"}],
                       placement={"constraints": ["node.role == worker"]}, secrets={"a": {"file": "a.txt"}}), tmp_path)
    fields = tuple(changed(json.loads(json.dumps(old.as_dict())), new))
    assert fields == ("ports", "mounts", "constraints", "secrets")
    args = runflags.update_args(new, json.loads(json.dumps(old.as_dict())), fields, "c")
    assert quote(*args) == quote(
        "--publish-rm", "published=8080,target=80,protocol=tcp,mode=host",
        "--publish-add", "published=8081,target=80,protocol=tcp,mode=host",
        "--mount-rm", "/t", "--mount-add", "type=volume,source=b,target=/a,volume-label=dnet.managed=true,"
        "volume-label=dnet.cluster=c",
        "--constraint-rm", "node.role == manager", "--constraint-add", "node.role == worker",
        "--secret-rm", old.secrets[0].object, "--secret-add", f"source={new.secrets[0].object},target=/run/secrets/a")
    assert old.secrets[0].object != new.secrets[0].object  # a changed file is a new secret


def test_secrets_are_made_before_and_the_unused_removed_after(tmp_path: Path) -> None:
    (tmp_path / "db.txt").write_text(SECRET)
    text = example(secrets={"db": {"file": "db.txt"}})
    w = world("applied", text)
    w.base = tmp_path
    mine = {"dnet.managed": "true", "dnet.cluster": "default", "dnet.kind": "secret"}
    w.facts["node1"].secrets = [ObjectFact(mine, "id1", "db-000000000000"),
                                ObjectFact({"other": "x"}, "id2", "theirs")]
    plan = diff(w)
    create = [c for c in plan.changes if isinstance(c, FileCreate)]
    remove = [c for c in plan.changes if isinstance(c, FileRemove)]
    assert [c.file.name for c in create] == ["db"] and [c.object for c in remove] == ["db-000000000000"]
    assert create[0].phase < next(c for c in plan.changes if c.kind == "service").phase < remove[0].phase
    assert SECRET not in json.dumps([c.public() for c in plan.changes])


def test_daemon_keys_merge_with_the_modelled_ones() -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["defaults"]["docker"]["daemon"] = {"live-restore": True, "log-opts": {"max-size": "10m"}}
    w = world("applied", yaml.safe_dump(data))
    want = d.daemon_settings(w.specs["node1"])
    assert want["live-restore"] is True and want["log-opts"] == {"max-size": "10m"} and want["mtu"] == 1450
    [c] = [c for c in diff(w).changes if c.kind == "daemon" and c.host == "node1"]
    assert "live-restore: None -> True" in c.detail


def test_tasks_send_env_and_secret_data_on_stdin_and_update_in_place(tmp_path: Path) -> None:
    """The real task functions against a recording transport: what goes on command lines and what on stdin."""
    from dnet.tasks import Context, handler

    (tmp_path / "db.txt").write_text(SECRET)
    text = example(env={"TOKEN": "${TOKEN}"}, secrets={"db": {"file": "db.txt"}})
    w = world("applied", text)
    w.base = tmp_path
    node1 = FakeTransport("node1").expect(r"^docker ")
    ctx = Context(w.inv, w.specs, w.facts, {"node1": node1}, "node1")
    new = spec(text, tmp_path, {"TOKEN": SECRET})
    for change in (FileCreate(host="node1", file=new.secrets[0]), ServiceRun(host="node1", spec=new),
                   ServiceUpdate(host="node1", spec=new, old={"env": {"TOKEN": "${TOKEN}#0"}}, fields=("env",))):
        handler(change)(ctx, change)
    create_secret, create, update = node1.commands
    assert create_secret.startswith("docker secret create --label dnet.managed=true") and \
        create_secret.endswith(f"{new.secrets[0].object} - >/dev/null")
    assert node1.stdins[0] == SECRET.encode() and SECRET not in create_secret
    assert "--env-file /dev/stdin" in create and SECRET not in create and SECRET.encode() in node1.stdins[1]
    assert update.startswith("docker service update --detach=false --quiet --env-add ")
    assert update.endswith(" web >/dev/null") and f"--label-add dnet.spec={new.hash} " in update
    assert "--label-add 'dnet.shown={" in update


HOSTILE = ["$(touch /tmp/dnet-pwned)", "`id`", "a'b\"c", "x; rm -rf /", "--help", "-e", "\\\\n", "*", "tab\there",
           "ünï", " lead and trail "]


def argv_of(command: str) -> list[str]:
    """What `docker` would receive: the command run by a real shell with docker replaced by an argument printer."""
    fake = 'docker() { for a in "$@"; do printf "%s\\0" "$a"; done; }; '
    out = subprocess.run(["sh", "-c", fake + command.replace(" >/dev/null", "")], capture_output=True, check=True)
    return out.stdout.decode().split("\0")[:-1]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_reach_docker_exactly_as_written(value: str, tmp_path: Path) -> None:
    """Every value an inventory can give a workload arrives at docker as one argument, unchanged; env values go on
    stdin as one NAME=value line."""
    from dnet.tasks import Context, handler

    path = f"/srv/{value}".replace(",", "")
    text = example(env={"V": value}, labels={"team": value}, workdir=path,
                   mounts=[{"type": "bind", "source": path, "target": path}],
                   placement={"constraints": [f"node.labels.zone != {value.split()[0] if value.strip() else 'x'}"]},
                   command=["echo", value])
    s = spec(text, tmp_path)
    w = world("applied", text)
    node1 = FakeTransport("node1").expect(r"^docker ")
    ctx = Context(w.inv, w.specs, w.facts, {"node1": node1}, "node1")
    handler(ServiceRun(host="node1", spec=s))(ctx, ServiceRun(host="node1", spec=s))
    argv = argv_of(node1.commands[0])
    assert argv[argv.index(f"team={value}") - 1] == "--label" and argv[argv.index("--workdir") + 1] == path
    assert argv[-2:] == ["echo", value]
    mount = argv[argv.index("--mount") + 1]
    assert next(csv.reader([mount])) == ["type=bind", f"source={path}", f"target={path}"]
    assert node1.stdins[0] == f"V={value}\n".encode()
    update = ServiceUpdate(host="node1", spec=s, old={"env": {"V": "old"}}, fields=("env", "command"))
    handler(update)(ctx, update)
    argv = argv_of(node1.commands[1])
    assert argv[argv.index("--env-add") + 1] == f"V={value}"
    assert shlex.split(argv[argv.index("--args") + 1]) == ["echo", value]  # docker splits --args like a shell


def engine_world(version: str | None, package: str | None = None, held: bool = False) -> object:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["defaults"]["docker"].update({k: v for k, v in (("version", version), ("package", package)) if v})
    w = world("applied", yaml.safe_dump(data))
    for f in w.facts.values():
        f.packages = {"docker.io": "20.10.24+dfsg1-1+b3"}
        f.held = ["docker.io"] if held else []
    return w


def test_engine_version_is_held_when_it_matches_and_rolled_when_it_does_not() -> None:
    from dnet.plan.diff import version_matches
    from dnet.plan.model import EnginePackage
    from dnet.tasks.engine import apt_install

    assert version_matches("20.10.24+dfsg1-1", "20.10") and version_matches("5:24.0.7-1~debian", "24.0")
    assert not version_matches("20.10.24", "20.1") and not version_matches("20.10.24", "24")
    plan = diff(engine_world("20.10"))  # type: ignore[arg-type]
    holds = [c for c in plan.changes if isinstance(c, EnginePackage)]
    assert len(holds) == 3 and all(c.hold_only for c in holds)
    assert holds[0].detail == "hold docker.io at 20.10.24+dfsg1-1+b3 (apt-mark hold)"
    assert not [c for c in diff(engine_world("20.10", held=True)).changes if c.kind == "engine"]  # type: ignore[arg-type]
    [up, *_] = [c for c in diff(engine_world("24.0")).changes if isinstance(c, EnginePackage)]  # type: ignore[arg-type]
    assert not up.hold_only and up.detail == "20.10.24+dfsg1-1+b3 -> 24.0.*; restarts the engine (held after)"
    plan = diff(engine_world("24.0", "docker-ce"))  # type: ignore[arg-type]
    assert plan.errors[0] == ("node1: the engine is docker.io 20.10.24+dfsg1-1+b3, not docker-ce: dnet does not swap "
                              "engine packages; remove docker.package or change the package by hand")
    cmd = apt_install("docker.io", "24.0")
    assert "apt-cache madison docker.io" in cmd and "awk -v p=24.0 " in cmd and 'docker.io="$v"' in cmd
    assert cmd.endswith("apt-mark hold docker.io >/dev/null")


def test_secrets_configs_and_volumes_are_read_from_the_cli_and_the_api() -> None:
    from dnet.facts import _objects

    cli = '"id1" "app-0123" {"dnet.managed":"true","dnet.cluster":"default"}\n"id2" "theirs" null\n'
    assert [(o.id, o.name, o.managed) for o in _objects("m", "configs", cli)] == \
        [("id1", "app-0123", True), ("id2", "theirs", False)]
    api = '[{"ID": "s1", "Spec": {"Name": "db-1", "Labels": {"dnet.kind": "secret"}}}]'
    assert _objects("m", "secrets", api)[0].kind == "secret"
    vols = '[{"Name": "cachedata", "Labels": {"dnet.cluster": "c"}}, {"Name": "anon", "Labels": null}]'
    assert [(v.name, v.owner) for v in _objects("h", "volumes", vols)] == [("anon", ""), ("cachedata", "c")]


def test_a_new_image_tag_and_id_give_one_image_flag() -> None:
    new = spec(example(image="dnet/probe:2"), image_id="sha256:" + "b" * 64)
    old = json.loads(json.dumps(spec(example(), image_id="sha256:" + "a" * 64).as_dict()))
    fields = tuple(changed(old, new))
    assert fields == ("image", "image_id")
    assert runflags.update_args(new, old, fields, "c") == ["--image", "sha256:" + "b" * 64, "--no-resolve-image"]
