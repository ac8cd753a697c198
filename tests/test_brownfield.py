"""Brownfield on a real lab: a cluster built by hand with plain docker (and `docker stack deploy`), imported,
planned with no changes, adopted without a restart, verified, changed in place, destroyed."""
from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lablib import dnet, dnet_json, node_sh

pytestmark = pytest.mark.lab
NET = "192.168.88"
NODES = ("node1", "node2", "node3")
COMPOSE = """version: "3.8"
services:
  web:
    image: dnet/probe:latest
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    environment:
      SHOP_MODE: live
    ports:
      - {target: 80, published: 8082, mode: host}
    deploy:
      replicas: 1
      placement:
        constraints: ["node.labels.zone == a"]
  cache:
    image: dnet/probe:latest
    command: ["httpd", "-f", "-p", "6379", "-h", "/www"]
"""


def _ssh(name: str, node: str, command: str, stdin: str | None = None) -> str:
    if stdin is None:
        return node_sh(name, node, command)
    r = subprocess.run([*dnet_cmd(), "lab", "ssh", "--name", name, node, command], input=stdin, text=True,
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def dnet_cmd() -> list[str]:
    import sys
    return [sys.executable, "-m", "dnet"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A swarm of 3 with node labels, an overlay with a subnet, a service with env, a constraint and a host-mode
    port, a stack of two services, and a container on a bridge with a published port: all by hand."""
    name = f"b{uuid.uuid4().hex[:6]}"
    d = tmp_path_factory.mktemp("brownfield")
    r = dnet("lab", "up", "--name", name, "--subnet", f"{NET}.0/24", "-o", str(d / "lab.yml"))
    assert r.returncode == 0, r.stderr
    try:
        token = node_sh(name, "node1", f"docker swarm init --advertise-addr {NET}.11 >/dev/null && "
                                       "docker swarm join-token -q worker").strip()
        for n in ("node2", "node3"):
            node_sh(name, n, f"docker swarm join --token {token} {NET}.11:2377 >/dev/null")
        node_sh(name, "node1", "docker node update --label-add zone=a node1 >/dev/null && "
                               "docker node update --label-add zone=b node2 >/dev/null && "
                               "docker node update --label-add zone=b node3 >/dev/null && "
                               "docker network create -d overlay --subnet 10.91.0.0/24 --attachable appnet >/dev/null "
                               "&& docker service create -q --name api --network appnet --replicas 2 "
                               "--env GREETING=hi --constraint 'node.labels.zone==b' "
                               "--publish mode=host,published=8081,target=80 dnet/probe:latest "
                               "httpd -f -p 80 -h /www >/dev/null")
        _ssh(name, "node1", "cat > /root/shop.yml && docker stack deploy -c /root/shop.yml shop >/dev/null 2>&1",
             COMPOSE)
        node_sh(name, "node2", "docker network create lan >/dev/null && docker run -d --name edge --network lan -p "
                               "8090:80 --restart unless-stopped dnet/probe:latest httpd -f -p 80 -h /www >/dev/null")
        lab = (d / "lab.yml").read_text()
        key = next(ln.split(": ", 1)[1] for ln in lab.splitlines() if "identity_file:" in ln)
        known = next(ln.split(": ", 1)[1] for ln in lab.splitlines() if "known_hosts:" in ln)
        (d / "hosts.yml").write_text(
            "# my servers\ndefaults:\n  user: root\n"
            f"  identity_file: {key}\n  known_hosts: {known}\n"
            f"hosts:\n  node1: {{address: {NET}.11}}  # the first manager\n"
            f"  node2:\n    address: {NET}.12\n  node3:\n    address: {NET}.13\n")
        for svc in ("api", "shop_web", "shop_cache"):
            want = {"api": "2/2", "shop_web": "1/1", "shop_cache": "1/1"}[svc]
            node_sh(name, "node1", f"for i in $(seq 60); do [ \"$(docker service ls --filter name={svc} "
                                   f"--format '{{{{.Replicas}}}}')\" = {want} ] && exit 0; sleep 1; done; exit 1")
        yield name, d
    finally:
        dnet("lab", "down", "--name", name)


def snapshot(name: str) -> str:
    """Every container's ID and start time, every network ID, every service and task ID."""
    out = [node_sh(name, n, "docker ps -q | xargs docker inspect -f '{{.Name}} {{.Id}} {{.State.StartedAt}}' | sort; "
                            "docker network ls -q --no-trunc | sort") for n in NODES]
    out.append(node_sh(name, "node1", "docker service ls -q | sort; "
                                      "docker service ps -q api shop_web shop_cache | sort"))
    return "\n".join(out)


def test_verify_discover_probes_what_runs_without_changing_it(cluster: tuple[str, Path]) -> None:
    name, d = cluster
    inv = d / "bare.yml"
    inv.write_text((d / "hosts.yml").read_text() + "version: 1\n")
    before = snapshot(name)
    code, report = dnet_json("verify", "-i", str(inv), "--discover")
    assert code == 0, [c for c in report["checks"] if not c["ok"]]
    found = {x for c in report["checks"] for x in c.get("discovered", "").split(",") if x}
    assert {"shop_web", "shop_cache", "edge"} <= {x.split(".")[0] for x in found}, found
    assert any(c["check"] == "tasks running" or "tasks running" in c["check"] for c in report["checks"]
               if c.get("discovered") == "api")
    r = dnet("verify", "-i", str(inv), "--discover")
    assert "* discovered: runs on the hosts, not declared in the inventory" in r.stdout and "shop_web*" in r.stdout
    assert snapshot(name) == before
    code, plain = dnet_json("verify", "-i", str(inv))
    assert not any("discovered" in c for c in plain["checks"])


def test_import_plan_adopt_verify_update_destroy(cluster: tuple[str, Path]) -> None:
    name, d = cluster
    out = d / "out.yml"
    r = dnet("import", "-i", str(d / "hosts.yml"), "-o", str(out))
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert text.startswith("# my servers\nversion: 1\n") and "# the first manager" in text
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    compose_file = d / "shop.compose.yml"  # the running stack, as a compose file of its own
    assert "stacks:\n  shop:\n    file: shop.compose.yml\n    adopt: true\n" in text and compose_file.exists()
    import yaml
    shop = yaml.safe_load(compose_file.read_text())
    assert shop["services"]["web"]["environment"] == {"SHOP_MODE": "live"}
    assert shop["services"]["web"]["deploy"]["placement"] == {"constraints": ["node.labels.zone == a"]}
    assert shop["services"]["web"]["ports"] == [{"target": 80, "published": 8082, "protocol": "tcp", "mode": "host"}]
    from dnet.inventory import load
    inv = load(out).model
    assert inv.hosts["node2"].labels == {"zone": "b"} and inv.hosts["node1"].roles == ["manager"]
    assert inv.networks["appnet"].subnet == "10.91.0.0/24" and inv.networks["appnet"].attachable
    assert inv.networks["lan"].hosts == ["node2"] and inv.networks["lan"].driver == "bridge"
    api = inv.services["api"]
    assert (api.replicas, api.env, api.placement and api.placement.constraints) == (2, {"GREETING": "hi"},
                                                                                    ["node.labels.zone==b"])
    assert [(p.published, p.mode) for p in api.ports] == [(8081, "host")]
    assert "shop_web" not in inv.services and "shop_default" not in inv.networks and inv.stacks["shop"].adopt
    own = d / "own" / "shop.yml"  # the operator's own compose file: checked against what runs, then used
    own.parent.mkdir()
    own.write_text(COMPOSE)
    r = dnet("import", "-i", str(d / "hosts.yml"), "-o", str(d / "own.yml"), "--stack-file", f"shop={own}")
    assert r.returncode == 0, r.stderr
    assert "stacks:\n  shop:\n    file: own/shop.yml\n    adopt: true\n" in (d / "own.yml").read_text()
    own.write_text(COMPOSE.replace("SHOP_MODE: live", "SHOP_MODE: test"))
    r = dnet("import", "-i", str(d / "hosts.yml"), "-o", str(d / "own.yml"), "--stack-file", f"shop={own}")
    assert r.returncode == 1 and f"error: --stack-file shop={own}: it does not say what runs: service shop_web " \
        "differs (env)" in r.stderr, r.stderr
    assert inv.containers["edge"].host == "node2" and [str(p) for p in inv.containers["edge"].ports] == ["8090:80/tcp"]
    assert "ingress" not in inv.networks and "docker_gwbridge" not in inv.networks

    before = snapshot(name)
    r = dnet("plan", "-i", str(out), "--detailed-exitcode")
    assert r.returncode == 0, r.stdout + r.stderr  # adoptions only
    code, plan = dnet_json("plan", "-i", str(out))
    assert {c["action"] for c in plan["changes"]} == {"adopt"}, plan["changes"]
    adopted = sorted(a for c in plan["changes"] if c["kind"] == "ownership" for a in c["after"])
    assert adopted == ["container edge", "network appnet", "network lan", "service api"]
    assert [(c["name"], c["action"]) for c in plan["changes"] if c["kind"] == "stack"] == [("shop", "adopt")]

    code, applied = dnet_json("apply", "-i", str(out), "--yes")
    assert code == 0, json.dumps(applied)[-2000:]
    assert snapshot(name) == before  # same IDs, same StartedAt: nothing recreated or restarted
    assert node_sh(name, "node1", "docker config ls --format '{{.Name}}'").startswith("dnet-owned-default-")
    r = dnet("plan", "-i", str(out), "--detailed-exitcode")
    assert r.returncode == 0 and "No changes: the hosts match the inventory." in r.stdout, r.stdout

    checked = d / "checked.yml"  # a check may name a stack's service as STACK/service (the lab's kernel has no
    # IPVS, so a vip service's name leads nowhere: the check is one that holds without it)
    checked.write_text(out.read_text() + 'checks:\n  - {from: shop/cache, to: "edge:80", expect: unreachable}\n')
    code, report = dnet_json("verify", "-i", str(checked))
    assert code == 0, [c for c in report["checks"] if not c["ok"]]
    assert any(c["from"].startswith("shop_cache") and c["to"] == "edge:80" and c["scope"] == "declared checks"
               for c in report["checks"])
    names = {c["to"] for c in report["checks"]} | {c["from"] for c in report["checks"]}
    assert {"shop_web", "shop_cache", "api", "edge"} <= names

    changed = d / "changed.yml"  # an adopted service: one rolling update
    changed.write_text(out.read_text().replace("    replicas: 2\n", "    replicas: 1\n", 1))
    code, plan = dnet_json("plan", "-i", str(changed))
    assert [(c["kind"], c["name"], c["action"], c["detail"]) for c in plan["changes"]] == \
        [("service", "api", "update", "rolling update: replicas 2 -> 1")]
    web_tasks = node_sh(name, "node1", "docker service ps -q shop_web")
    cache = shop["services"]["cache"]  # an adopted stack: its compose file changed, the stack deployed again
    cache["deploy"]["replicas"] = 2
    compose_file.write_text(yaml.safe_dump(shop, sort_keys=False))
    code, plan = dnet_json("plan", "-i", str(changed))
    assert ("stack", "shop", "update", "docker stack deploy shop.compose.yml: changed: cache") in \
        [(c["kind"], c["name"], c["action"], c["detail"]) for c in plan["changes"]]
    code, applied = dnet_json("apply", "-i", str(changed), "--yes")
    assert code == 0, json.dumps(applied)[-2000:]
    for svc, want in (("api", "1/1"), ("shop_cache", "2/2")):
        assert node_sh(name, "node1", f"docker service ls --filter name={svc} --format '{{{{.Replicas}}}}'").strip() \
            == want
    assert node_sh(name, "node1", "docker service ps -q shop_web") == web_tasks  # the file says what web runs

    node_sh(name, "node3", "docker run -d --name late dnet/probe:latest httpd -f -p 80 -h /www >/dev/null")
    code, gone = dnet_json("destroy", "-i", str(changed), "--yes")
    assert code == 0, json.dumps(gone)[-2000:]
    assert node_sh(name, "node1", "docker service ls -q").strip() == ""
    assert node_sh(name, "node1", "docker config ls -q").strip() == ""
    # the overlay is the manager's (a worker drops its copy a moment after its last task goes); lan is node2's
    assert "appnet" not in node_sh(name, "node1", "docker network ls --format '{{.Name}}'").split()
    assert "lan" not in node_sh(name, "node2", "docker network ls --format '{{.Name}}'").split()
    assert node_sh(name, "node2", "docker ps -a --filter name=^edge$ -q").strip() == ""
    assert node_sh(name, "node2", "docker volume ls -q --filter name=dnet-owned").strip() == ""
    assert node_sh(name, "node3", "docker inspect -f '{{.State.Running}}' late").strip() == "true"


def test_a_foreign_object_without_adopt_names_the_way_out(cluster: tuple[str, Path]) -> None:
    name, d = cluster
    inv = d / "plain.yml"
    inv.write_text((d / "hosts.yml").read_text() + "version: 1\nnetworks:\n  taken: {driver: overlay}\n")
    node_sh(name, "node1", "docker network inspect taken >/dev/null 2>&1 || "
                           "docker network create -d overlay taken >/dev/null")
    inv.write_text(inv.read_text().replace("  node1: {address: ", "  node1: {roles: [manager], address: "))
    r = dnet("plan", "-i", str(inv))
    assert r.returncode == 1
    assert "network 'taken' exists but was made by something other than dnet; rename it in the inventory, remove " \
           "it by hand, or take it over: `dnet import` writes an inventory of what runs, or set adopt: true on the " \
           "entry" in r.stdout, r.stdout


def test_stacks_deploy_from_the_inventory_once_per_change(cluster: tuple[str, Path]) -> None:
    """`stacks:` deploys a compose file (and the env_file it names) with docker stack deploy; an unchanged file is
    no change; a changed service is named in the plan; verify checks the stack's services; destroy removes it."""
    name, d = cluster
    (d / "web.env").write_text("FROM_FILE=yes\n")
    compose = COMPOSE.replace("    environment:\n", "    env_file: web.env\n    environment:\n")
    (d / "shop.yml").write_text(compose)
    inv = d / "stacked.yml"
    lab = (d / "hosts.yml").read_text().split("hosts:\n")[0]
    inv.write_text(lab + "version: 1\nhosts:\n"
                   f"  node1: {{address: {NET}.11, roles: [manager], labels: {{zone: a}}}}\n"
                   f"  node2: {{address: {NET}.12, roles: [worker], labels: {{zone: b}}}}\n"
                   f"  node3: {{address: {NET}.13, roles: [worker], labels: {{zone: b}}}}\n"
                   "stacks:\n  shop: shop.yml\nchecks:\n  - {from: shop/web, to: \"" + NET + ".2:80\"}\n")
    code, plan = dnet_json("plan", "-i", str(inv))
    assert [(c["kind"], c["name"], c["action"], c["detail"]) for c in plan["changes"]] == \
        [("stack", "shop", "create", "docker stack deploy shop.yml: new: web, cache")], plan
    code, applied = dnet_json("apply", "-i", str(inv), "--yes")
    assert code == 0, json.dumps(applied)[-2000:]
    env = node_sh(name, "node1", "docker service inspect shop_web "
                                 "--format '{{json .Spec.TaskTemplate.ContainerSpec.Env}}'")
    assert "FROM_FILE=yes" in env and "SHOP_MODE=live" in env
    assert node_sh(name, "node1", "docker stack services shop --format '{{.Name}} {{.Replicas}}' | sort").split() == \
        ["shop_cache", "1/1", "shop_web", "1/1"]
    r = dnet("plan", "-i", str(inv), "--detailed-exitcode")
    assert r.returncode == 0 and "No changes" in r.stdout, r.stdout
    code, report = dnet_json("verify", "-i", str(inv))
    assert code == 0, [c for c in report["checks"] if not c["ok"]]
    assert any(c["from"].startswith("shop_web.") and c["scope"] == "declared checks" for c in report["checks"])
    (d / "shop.yml").write_text(compose.replace('"6379", "-h", "/www"]',
                                                '"6379", "-h", "/www"]\n    deploy: {replicas: 2}'))
    code, plan = dnet_json("plan", "-i", str(inv))
    assert [(c["action"], c["detail"]) for c in plan["changes"]] == \
        [("update", "docker stack deploy shop.yml: changed: cache")], plan
    code, applied = dnet_json("apply", "-i", str(inv), "--yes")
    assert code == 0, json.dumps(applied)[-2000:]
    assert node_sh(name, "node1", "docker service ls --filter name=shop_cache --format '{{.Replicas}}'").strip() \
        == "2/2"
    assert len(node_sh(name, "node1", "docker config ls -q --filter label=dnet.stack=shop").split()) == 1
    code, gone = dnet_json("destroy", "-i", str(inv), "--yes")
    assert code == 0, json.dumps(gone)[-2000:]
    assert node_sh(name, "node1", "docker stack ls --format '{{.Name}}'").strip() == ""
    assert node_sh(name, "node1", "docker config ls -q").strip() == ""
