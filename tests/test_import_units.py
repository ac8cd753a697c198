"""Import and adoption without hosts: recorded facts of a real lab, and Docker-shaped inspect output generated from
inventories (the round trip: what runs, read back, is what was declared)."""
from __future__ import annotations

import copy
import re
from typing import Any

import paramiko
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dnet.brownfield import actual, importer, own, read
from dnet.errors import DnetError
from dnet.facts import ContainerFact, HostFacts, ObjectFact
from dnet.inventory import loads
from dnet.inventory.resolve import hosts
from dnet.inventory.schema import Container, Network, Service
from dnet.inventory.workload import memory_bytes
from dnet.plan import desired as d
from dnet.plan.diff import diff
from dnet.plan.model import Action, Adopt, ServiceUpdate
from dnet.plan.world import World
from tests.test_facts_plan import facts

HOSTS = ("# mine\ndefaults: {user: root}\nhosts:\n  node1: {address: 192.168.77.11}  # first\n"
         "  node2:\n    address: 192.168.77.12\n  node3:\n    address: 192.168.77.13\n")
IMAGE = "dnet/probe:latest"


def handmade() -> dict[str, HostFacts]:
    """The applied lab's facts as if a person had made every network, container and service (no dnet labels,
    no dnet forwards), with the service started from its tag."""
    f = facts("applied")
    for h in f.values():
        made: list[Any] = [*h.networks, *h.services, *(c for c in h.containers if not c.is_task)]
        for x in made:
            x.labels = {k: v for k, v in x.labels.items() if not k.startswith("dnet.")}
            where = x.raw.get("Spec") or x.raw.get("Config") or x.raw
            where["Labels"] = {k: v for k, v in (where.get("Labels") or {}).items() if not k.startswith("dnet.")}
        for s in h.services:
            s.raw["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] = IMAGE + "@sha256:" + "ab" * 32
        h.nat_rules, h.filter_rules = [], []
    return f


def imported(f: dict[str, HostFacts], cluster: str = "default") -> tuple[str, importer.Imported]:
    inv = loads(HOSTS + "version: 1\n").model
    got = importer.gather(f, hosts(inv, paramiko.SSHConfig()), cluster)
    return importer.write(HOSTS, got, None), got


def planned(text: str, f: dict[str, HostFacts]) -> Any:
    inv = loads(text).model
    local: dict[str, str | None] = {IMAGE: f["node1"].images[IMAGE]}
    return diff(World(inv, hosts(inv, paramiko.SSHConfig()), f, local))


def test_import_reads_every_kind_from_a_real_lab() -> None:
    text, got = imported(handmade())
    assert text.startswith("# mine\nversion: 1\ndefaults:") and "# first" in text
    assert got.hosts["node1"]["roles"] == ["manager"] and got.hosts["node2"]["roles"] == ["worker"]
    assert got.hosts["node1"]["docker"] == {"mtu": 1450, "dns": ["192.168.77.2"],
                                           "default_address_pools": [{"base": "10.210.0.0/16", "size": 24}]}
    assert set(got.networks) == {"appnet", "backnet", "localnet"}  # not ingress, docker_gwbridge, bridge, ...
    assert got.networks["appnet"] == {"driver": "overlay", "subnet": "10.77.0.0/24", "gateway": "10.77.0.1",
                                      "attachable": True, "adopt": True}
    assert got.networks["localnet"]["hosts"] == ["node2"] and got.networks["localnet"]["driver"] == "bridge"
    web = got.services["web"]
    assert (web["image"], web["replicas"], web["endpoint_mode"], sorted(web["networks"])) == \
        (IMAGE, 3, "dnsrr", ["appnet", "backnet"])
    assert web["ports"] == [{"published": 8080, "target": 80, "mode": "host"}] and web["adopt"] is True
    assert set(got.containers) == {"edge", "db"}  # the tasks are not containers of their own
    assert got.containers["edge"]["ports"] == ["9090:80/tcp"] and got.containers["edge"]["host"] == "node2"
    assert got.containers["db"]["networks"] == ["backnet"]


def test_a_hand_made_cluster_imports_to_a_plan_of_adoptions_only() -> None:
    f = handmade()
    text, _ = imported(f)
    plan = planned(text, f)
    assert not plan.errors and not plan.pending, [(c.kind, c.name, c.detail) for c in plan.pending]
    adopts = sorted((c.host, c.store, c.new) for c in plan.changes if isinstance(c, Adopt))
    assert adopts == [("node1", "config", ("network appnet", "network backnet", "service web")),
                      ("node2", "volume", ("network localnet", "container edge")),
                      ("node3", "volume", ("container db",))]


def recorded(f: dict[str, HostFacts], plan: Any) -> None:
    """What applying the plan's Adopt changes leaves: their records, as the facts would show them."""
    for c in plan.changes:
        if isinstance(c, Adopt):
            obj = ObjectFact(own.labels("default", {i: (k, n) for i, k, n in c.owned}), c.record, c.record)
            (f[c.host].configs if c.store == "config" else f[c.host].volumes).append(obj)


def test_after_adoption_the_plan_is_empty_and_a_replica_change_is_one_update() -> None:
    f = handmade()
    text, _ = imported(f)
    recorded(f, planned(text, f))
    assert planned(text, f).changes == []
    plan = planned(text.replace("replicas: 3", "replicas: 2"), f)
    assert [(type(c), c.detail) for c in plan.changes] == [(ServiceUpdate, "rolling update: replicas 3 -> 2")]
    assert next(c for c in plan.changes if isinstance(c, ServiceUpdate)).fields == ("replicas",)


def test_adopted_objects_are_the_clusters_for_prune_and_destroy() -> None:
    from dnet.plan.destroy import destroy

    f = handmade()
    text, _ = imported(f)
    recorded(f, planned(text, f))
    inv = loads(text).model
    w = World(inv, hosts(inv, paramiko.SSHConfig()), f, {IMAGE: f["node1"].images[IMAGE]})
    gone = {(c.kind, c.name) for c in destroy(w, False).changes}
    assert {("service", "web"), ("container", "edge"), ("container", "db"), ("network", "appnet"),
            ("network", "localnet")} <= gone
    assert sum(1 for k, _ in gone if k in ("secret", "volume")) == 3  # the three records
    without = text.replace("  db:\n", "  gone_db:\n")  # db left out of the inventory: pruned like dnet's own
    plan = planned(without, f)
    assert ("container", "db", Action.REMOVE) in {(c.kind, c.name, c.action) for c in plan.changes}


def test_adoption_refuses_a_network_or_container_that_would_need_recreating() -> None:
    f = handmade()
    text, _ = imported(f)
    plan = planned(text.replace("subnet: 10.77.0.0/24", "subnet: 10.79.0.0/24")
                   .replace("gateway: 10.77.0.1", "gateway: 10.79.0.1"), f)
    assert any(e.startswith("node1: network 'appnet' is overlay 10.77.0.0/24 (attachable), the inventory declares "
                            "overlay 10.79.0.0/24 (attachable); adopting it would mean recreating it")
               for e in plan.errors), plan.errors
    plan = planned(text.replace("'5432'", "'5433'"), f)
    assert any("container 'db' differs from its entry (command)" in e for e in plan.errors), plan.errors


def test_without_adopt_a_foreign_object_names_the_way_out() -> None:
    f = handmade()
    text, _ = imported(f)
    plan = planned(text.replace("    adopt: true\n", ""), f)
    assert "service 'web' exists but was made by something other than dnet; rename it in the inventory, remove it " \
           "by hand, or take it over: `dnet import` writes an inventory of what runs, or set adopt: true on the " \
           "entry" in plan.errors


def test_a_dnet_made_cluster_imports_as_its_own_with_its_forwards() -> None:
    f = facts("applied")
    for s in f["node1"].services:
        s.raw["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] = IMAGE
        s.labels["dnet.cluster"] = "default"
    _, got = imported(f)
    assert "adopt" not in got.services["web"] and "adopt" not in got.networks["appnet"]
    assert got.forwards == [{"host": "node1", "listen": 8443, "to": "node2:9090"}]
    _, other = imported(f, "other")
    assert not other.services  # made by dnet for another cluster name: not this one's


def test_what_the_model_cannot_hold_is_listed() -> None:
    f = handmade()
    cs = f["node1"].services[0].raw["Spec"]["TaskTemplate"]["ContainerSpec"]
    cs["StopGracePeriod"] = 30_000_000_000
    cs["Secrets"] = None
    db = f["node3"].container("db")
    assert db
    db.raw["HostConfig"]["CapAdd"] = ["NET_ADMIN"]
    f["node2"].container("edge").running = False  # type: ignore[union-attr]
    _, got = imported(f)
    assert "service web: StopGracePeriod 30000000000: no inventory key; dnet leaves it as it is" in got.notes
    assert "container db: CapAdd ['NET_ADMIN']: no inventory key; dnet leaves it as it is" in got.notes
    assert "container edge on node2: not imported: it is not running (running)" in got.notes
    cs["Secrets"] = [{"SecretName": "x"}]
    _, got = imported(f)
    assert "web" not in got.services and any(n.startswith("service web: not imported: it uses swarm secrets")
                                             for n in got.notes)


def test_the_hosts_file_may_hold_only_hosts() -> None:
    with pytest.raises(DnetError, match="the hosts file holds services: import writes those itself"):
        importer.write(HOSTS + "services: {}\n", importer.Imported(), None)


# --- the round trip as a property: Docker-shaped inspect output made from generated entries, read back ---

NS = 1_000_000_000
name = st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True)
word = st.from_regex(r"[A-Za-z0-9_./=-]{1,10}", fullmatch=True)
duration = st.sampled_from(["1s", "30s", "1m30s", "500ms", "2h"])
service_entry = st.fixed_dictionaries({"image": st.just(IMAGE)}, optional={
    "command": st.lists(word, min_size=1, max_size=3), "entrypoint": st.lists(word, min_size=1, max_size=2),
    "replicas": st.integers(0, 5), "mode": st.just("global"), "endpoint_mode": st.just("dnsrr"),
    "env": st.dictionaries(st.from_regex(r"[A-Z_][A-Z0-9_]{0,5}", fullmatch=True),
                           st.from_regex(r"[a-z0-9 $:/]{0,8}", fullmatch=True).map(lambda v: v.replace("$", "$$")),
                           max_size=3),
    "user": st.sampled_from(["1000", "app", "1000:1000"]), "workdir": st.sampled_from(["/srv", "/data/x"]),
    "labels": st.dictionaries(st.from_regex(r"[a-z]{1,5}(\.[a-z]{1,4})?", fullmatch=True), word, max_size=2),
    "mounts": st.lists(st.fixed_dictionaries({"type": st.sampled_from(["volume", "tmpfs"]),
                                              "target": st.sampled_from(["/a", "/b/c"])},
                                             optional={"readonly": st.just(True)}), max_size=1),
    "healthcheck": st.fixed_dictionaries({"test": st.sampled_from(["true", "wget -q -O- localhost"])},
                                         optional={"interval": duration, "retries": st.integers(1, 5),
                                                   "timeout": duration, "start_period": duration}),
    "resources": st.fixed_dictionaries({}, optional={
        "limits": st.fixed_dictionaries({"cpus": st.sampled_from([0.5, 1, 2]),
                                         "memory": st.sampled_from(["64M", "1G"])}),
        "reservations": st.fixed_dictionaries({"memory": st.sampled_from(["32M"])})}),
    "placement": st.fixed_dictionaries({}, optional={
        "constraints": st.lists(st.sampled_from(["node.labels.zone == a", "node.role!=manager"]), max_size=2,
                                unique=True),
        "preferences": st.lists(st.just({"spread": "node.labels.zone"}), max_size=1)}),
    "update": st.fixed_dictionaries({}, optional={"parallelism": st.integers(0, 4), "delay": duration,
                                                  "order": st.sampled_from(["start-first", "stop-first"]),
                                                  "failure_action": st.sampled_from(["rollback", "continue"])}),
    "ports": st.lists(st.fixed_dictionaries({"published": st.integers(1, 65535), "target": st.integers(1, 65535)},
                                            optional={"mode": st.just("host"), "protocol": st.just("udp")}),
                      max_size=2),
})


def _ns(text: str) -> int:
    total, num = 0.0, ""
    units = {"ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}
    i = 0
    while i < len(text):
        if text[i].isdigit() or text[i] == ".":
            num += text[i]
            i += 1
            continue
        unit = "ms" if text[i:i + 2] == "ms" else text[i]
        total += float(num) * units[unit]
        num, i = "", i + len(unit)
    return int(total)


def as_docker(svc: Service) -> dict[str, Any]:
    """What `docker service inspect` shows for a service made with these settings by the docker CLI."""
    cs: dict[str, Any] = {"Image": IMAGE + "@sha256:" + "cd" * 32}
    if svc.entrypoint:
        cs["Command"] = list(svc.entrypoint) if isinstance(svc.entrypoint, list) else svc.entrypoint.split()
    if svc.command:
        cs["Args"] = list(svc.command) if isinstance(svc.command, list) else svc.command.split()
    if svc.env:
        cs["Env"] = [f"{k}={v.replace('$$', '$')}" for k, v in svc.env.items()]
    if svc.mounts:
        cs["Mounts"] = [{"Type": m.type, "Target": m.target, **({"ReadOnly": True} if m.readonly else {})}
                        for m in svc.mounts]
    cs.update({k: v for k, v in (("User", svc.user), ("Dir", svc.workdir)) if v})
    if svc.healthcheck:
        h = svc.healthcheck
        cs["Healthcheck"] = {"Test": ["CMD-SHELL", h.test], **{k: _ns(v) for k, v in (
            ("Interval", h.interval), ("Timeout", h.timeout), ("StartPeriod", h.start_period)) if v},
            **({"Retries": h.retries} if h.retries else {})}
    task: dict[str, Any] = {"ContainerSpec": cs, "Placement": {"Platforms": [{"Architecture": "amd64"}]}}
    if svc.resources:
        res: dict[str, Any] = {}
        for part, key in (("limits", "Limits"), ("reservations", "Reservations")):
            r = getattr(svc.resources, part)
            res[key] = {k: v for k, v in (("NanoCPUs", int(r.cpus * NS) if r.cpus else 0),
                                          ("MemoryBytes", memory_bytes(r.memory) if r.memory else 0)) if v}
        task["Resources"] = res
    if svc.placement:
        task["Placement"]["Constraints"] = list(svc.placement.constraints)
        task["Placement"]["Preferences"] = [{"Spread": {"SpreadDescriptor": p.spread}}
                                            for p in svc.placement.preferences]
    update = {"Parallelism": 1, "FailureAction": "pause", "Monitor": 5 * NS, "MaxFailureRatio": 0,
              "Order": "stop-first"}
    if svc.update:
        u = svc.update
        update.update({k: v for k, v in (("Parallelism", u.parallelism), ("Delay", u.delay and _ns(u.delay)),
                                         ("Order", u.order), ("FailureAction", u.failure_action)) if v is not None})
    ports = [{"Protocol": p.protocol, "TargetPort": p.target, "PublishedPort": p.published,
              "PublishMode": p.mode} for p in svc.ports]
    mode = {"Global": {}} if svc.mode == "global" else {"Replicated": {"Replicas": svc.replicas}}
    return {"ID": "x", "Spec": {"Name": "s", "Labels": dict(svc.labels), "TaskTemplate": task, "Mode": mode,
                                "UpdateConfig": update, "RollbackConfig": {"Parallelism": 1, "FailureAction": "pause",
                                                                           "Monitor": 5 * NS, "MaxFailureRatio": 0,
                                                                           "Order": "stop-first"},
                                "EndpointSpec": {"Mode": svc.endpoint_mode, "Ports": ports}}}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(service_entry)
def test_round_trip_of_generated_services(entry: dict[str, Any]) -> None:
    if entry.get("mode") == "global":
        entry.pop("replicas", None)
    if entry.get("endpoint_mode") == "dnsrr":
        for p in entry.get("ports", []):
            p["mode"] = "host"
    try:
        svc = Service.model_validate(entry)
    except ValueError:  # a combination the inventory refuses (e.g. an ingress port with dnsrr)
        assume(False)
        return
    notes: list[str] = []
    raw = as_docker(svc)
    back = read.service(raw, {}, notes)
    assert back is not None and notes == []
    fact = copy.deepcopy(facts("applied")["node1"].services[0])
    fact.raw, fact.name = raw, "s"
    want = d.service_spec("s", svc, "sha256:1")
    assert actual.service(fact, {}, want, d.Where()).hash == want.hash, (entry, back)


container_entry = st.fixed_dictionaries({"host": st.just("node1"), "image": st.just(IMAGE)}, optional={
    "command": st.lists(word, min_size=1, max_size=3), "restart": st.sampled_from(["no", "always", "on-failure:3"]),
    "ports": st.lists(st.sampled_from(["8080:80/tcp", "127.0.0.1:53:53/udp"]), max_size=2, unique=True),
    "networks": st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=2, unique=True),
    "aliases": st.lists(st.sampled_from(["x", "y"]), max_size=2, unique=True),
    "workdir": st.sampled_from(["/srv"]), "env": st.dictionaries(st.sampled_from(["A", "B"]), word, max_size=2),
})


def container_as_docker(c: Container) -> dict[str, Any]:
    """What `docker inspect` shows for a container made with these settings (image defaults included)."""
    bindings: dict[str, list[dict[str, str]]] = {}
    for p in c.ports:
        bindings.setdefault(f"{p.target}/{p.protocol}", []).append({"HostIp": p.host_ip or "",
                                                                    "HostPort": str(p.published)})
    name, rp = c.restart.partition(":")[::2]
    nets = {n: {"Aliases": ["0123456789ab", *c.aliases]} for n in c.networks} or {"bridge": {}}
    return {"Id": "0123456789abcdef", "Name": "/c",
            "Config": {"Image": c.image, "Cmd": list(c.command) if isinstance(c.command, list) else None,
                       "Env": [*(f"{k}={v}" for k, v in c.env.items()), f"PATH={read.DEFAULT_PATH}"],
                       "WorkingDir": c.workdir or "", "User": "", "Labels": {}, "Hostname": "0123456789ab"},
            "HostConfig": {"RestartPolicy": {"Name": name, "MaximumRetryCount": int(rp or 0)},
                           "PortBindings": bindings, "LogConfig": {"Type": "json-file", "Config": {}}},
            "NetworkSettings": {"Networks": nets}}


@settings(max_examples=100, deadline=None)
@given(container_entry)
def test_round_trip_of_generated_containers(entry: dict[str, Any]) -> None:
    if not entry.get("networks"):
        entry.pop("aliases", None)  # aliases are for user networks
    c = Container.model_validate(entry)
    notes: list[str] = []
    raw = container_as_docker(c)
    read.container(raw, "node1", notes)
    assert notes == []
    fact = ContainerFact({}, raw["Id"], "c", IMAGE, True, "running", 0, c.restart, raw=raw)
    want = d.container_spec("c", c, "sha256:1")
    assert actual.container(fact, "node1", want, d.Where()).hash == want.hash, entry


@given(st.fixed_dictionaries({"driver": st.sampled_from(["overlay", "bridge"])}, optional={
    "attachable": st.booleans(), "internal": st.booleans(), "encrypted": st.booleans(),
    "mtu": st.integers(576, 9216)}), st.booleans())
def test_round_trip_of_generated_networks(entry: dict[str, Any], subnet: bool) -> None:
    if subnet:
        entry.update(subnet="10.5.0.0/24", gateway="10.5.0.1")
    try:
        net = Network.model_validate(entry)
    except ValueError:  # overlay-only keys on a bridge
        assume(False)
        return
    opts = {**({"encrypted": ""} if net.encrypted else {}),
            **({"com.docker.network.driver.mtu": str(net.mtu)} if net.mtu else {})}
    raw = {"Name": "n", "Driver": net.driver, "Attachable": net.attachable, "Internal": net.internal,
           "Options": opts, "IPAM": {"Config": [{"Subnet": net.subnet, "Gateway": net.gateway}] if subnet else []}}
    back = read.network(raw, "network n", [])
    assert back is not None and d.network_spec(Network.model_validate(back)).hash == d.network_spec(net).hash


def test_actual_spec_shows_declared_env_references_when_their_values_match(monkeypatch: pytest.MonkeyPatch) -> None:
    """An adopted service whose env value is what ${VAR} gives is no change (the digest is shown, not the value)."""
    monkeypatch.setenv("PW", "s3cret")
    svc = Service.model_validate({"image": IMAGE, "env": {"PW": "${PW}"}})
    want = d.service_spec("s", svc, None)
    raw = as_docker(Service.model_validate({"image": IMAGE, "env": {"PW": "s3cret"}}))
    fact = copy.deepcopy(facts("applied")["node1"].services[0])
    fact.raw, fact.name = raw, "s"
    got = actual.service(fact, {}, want, d.Where())
    assert got.hash == want.hash and "s3cret" not in str(actual.shown(got))


# --- stacks: planned from the compose file and the record a deploy leaves ---

SHOP = ("services:\n  web:\n    image: dnet/probe:latest\n    env_file: web.env\n"
        "  cache:\n    image: dnet/probe:latest\n")


def stacked(tmp: Any, compose: str = SHOP) -> tuple[str, dict[str, HostFacts]]:
    (tmp / "shop.yml").write_text(compose)
    (tmp / "web.env").write_text("A=1\n")
    return HOSTS.replace("{address: 192.168.77.11}", "{address: 192.168.77.11, roles: [manager]}") + \
        "version: 1\nstacks:\n  shop: shop.yml\n", facts("applied")


def stack_plan(text: str, f: dict[str, HostFacts], base: Any) -> Any:
    inv = loads(text, str(base / "inv.yml")).model
    w = World(inv, hosts(inv, paramiko.SSHConfig()), f, {}, base=base)
    return diff(w), w


def test_a_stack_is_deployed_once_and_again_only_when_its_files_change(tmp_path: Any) -> None:
    from dnet.plan.model import StackDeploy, StackRemove
    from dnet.tasks import Context, handler
    from dnet.testing import FakeTransport

    text, f = stacked(tmp_path)
    plan, w = stack_plan(text, f, tmp_path)
    dep = [c for c in plan.changes if isinstance(c, StackDeploy)]
    assert [(c.stack, c.action, c.detail) for c in dep] == [("shop", Action.CREATE,
                                                             "docker stack deploy shop.yml: new: web, cache")]
    node1 = FakeTransport("node1").expect(r"^d=\$\(mktemp -d\)", r"^docker config create", r"^docker stack services")
    node1.responses.insert(0, (r"^docker stack services", 0, "shop_web 1/1\nshop_cache 1/1\n", ""))
    ctx = Context(w.inv, w.specs, w.facts, {"node1": node1}, "node1")
    assert handler(dep[0])(ctx, dep[0]) == "deployed 2 services"
    deploy, record = node1.commands[:2]
    assert "docker stack deploy --prune -c docker-compose.yml shop" in deploy
    import io
    import tarfile
    with tarfile.open(fileobj=io.BytesIO(node1.stdins[0])) as tar:
        assert sorted(tar.getnames()) == ["docker-compose.yml", "web.env"]
    assert record.startswith("docker config create --label dnet.managed=true") and dep[0].record in record
    labels = dict(a.split("=", 1) for a in record.split() if a.startswith("dnet."))
    f["node1"].configs.append(ObjectFact(labels, dep[0].record, dep[0].record))
    assert not [c for c in stack_plan(text, f, tmp_path)[0].changes if c.kind == "stack"]
    (tmp_path / "web.env").write_text("A=2\n")  # a file the compose file names changed: deployed again
    again = [c for c in stack_plan(text, f, tmp_path)[0].changes if c.kind == "stack"]
    assert [(c.action, c.detail) for c in again] == [(Action.UPDATE, "docker stack deploy shop.yml: the stack's "
                                                                     "other settings")]
    (tmp_path / "shop.yml").write_text(SHOP.replace("  cache:\n    image: dnet/probe:latest\n", ""))
    again = [c for c in stack_plan(text, f, tmp_path)[0].changes if c.kind == "stack"]
    assert [c.detail for c in again] == ["docker stack deploy shop.yml: removed: cache"]
    gone = stack_plan(text.replace("stacks:\n  shop: shop.yml\n", ""), f, tmp_path)[0]
    assert [(type(c), c.detail) for c in gone.changes if c.kind == "stack"] == \
        [(StackRemove, "docker stack rm: no longer in the inventory")]


# --- hostile values a host reports: written as data, read back exactly, sent to docker as one argument ---

HOSTILE = ["$(touch /tmp/dnet-pwned)", "`id`", "a'b\"c", "x; rm -rf /", "--help", "- item", "#not a comment",
           "yes", "null", "{a: b}", "${HOME}", "$$", "ünï", " lead and trail ", "tab\there", "key: value"]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_from_a_host_import_as_data_and_adopt_unchanged(value: str) -> None:
    from dnet.tasks import Context, handler
    from dnet.testing import FakeTransport
    from tests.test_workload_units import argv_of

    f = handmade()
    web = f["node1"].services[0].raw["Spec"]
    web["TaskTemplate"]["ContainerSpec"]["Env"] = [f"V={value}"]
    web["Labels"] = {"team": value}
    db = f["node3"].container("db")
    assert db
    db.raw["Config"]["Env"] = [f"V={value}"]
    text, _ = imported(f)
    inv = loads(text).model
    assert inv.services["web"].env == {"V": value.replace("$", "$$")} and inv.services["web"].labels["team"] == value
    assert d.container_spec("db", inv.containers["db"], None).env[0].value == value  # $$ reads back as $
    plan = planned(text, f)
    assert not plan.errors and not plan.pending, [c.detail for c in plan.pending]
    adopt = next(c for c in plan.changes if isinstance(c, Adopt) and c.host == "node1")
    node1 = FakeTransport("node1").expect(r"^docker ")
    w = World(inv, hosts(inv, paramiko.SSHConfig()), f, {})
    handler(adopt)(Context(w.inv, w.specs, w.facts, {"node1": node1}, "node1"), adopt)
    argv = argv_of(node1.commands[0])
    assert argv[:3] == ["config", "create", "--label"] and argv[-2:] == [adopt.record, "-"]
    assert f"dnet.own.{f['node1'].services[0].id}=service/web" in argv


# --- stacks that run: import writes their compose file; adoption compares it with what runs ---


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(service_entry)
def test_a_stack_service_survives_compose_and_back(entry: dict[str, Any]) -> None:
    import yaml

    from dnet.brownfield import compose

    if entry.get("mode") == "global":
        entry.pop("replicas", None)
    if entry.get("endpoint_mode") == "dnsrr":
        for p in entry.get("ports", []):
            p["mode"] = "host"
    entry["networks"] = ["shop_default"]
    entry["labels"] = {**entry.get("labels", {}), compose.NAMESPACE: "shop", "com.docker.stack.image": IMAGE}
    try:
        svc = Service.model_validate(entry)
    except ValueError:
        assume(False)
        return
    doc = yaml.safe_load(importer.compose_text(compose.to_compose("shop", {"shop_s": entry},
                                                                  {"shop_default": {"driver": "overlay"}})))
    back = compose.from_compose("shop", doc, {})
    assert list(back) == ["shop_s"]
    again = Service.model_validate(back["shop_s"])
    assert d.service_spec("shop_s", again, None).hash == d.service_spec("shop_s", svc, None).hash, (entry, doc)


def stack_facts() -> dict[str, HostFacts]:
    """The hand-made lab with its service deployed as stack shop (service shop_web on the lab's overlays)."""
    f = handmade()
    web = f["node1"].services[0]
    web.name = web.raw["Spec"]["Name"] = "shop_web"
    web.labels = web.raw["Spec"]["Labels"] = {"com.docker.stack.namespace": "shop",
                                               "com.docker.stack.image": IMAGE}
    for h in f.values():
        for c in h.containers:
            if c.service == "web":
                c.labels["com.docker.swarm.service.name"] = "shop_web"
    return f


def test_a_running_stack_imports_as_a_compose_file_and_adopts_without_a_deploy(tmp_path: Any) -> None:
    from dnet.plan.model import StackDeploy

    f = stack_facts()
    inv = loads(HOSTS + "version: 1\n").model
    got = importer.gather(f, hosts(inv, paramiko.SSHConfig()), "default", stacks=True)
    assert "shop_web" not in got.services and list(got.stacks) == ["shop"]
    assert got.stacks["shop"]["services"]["web"]["networks"] == ["backnet", "appnet"]  # the stack's externals
    text = importer.write(HOSTS, got, None)
    assert "stacks:\n  shop:\n    file: shop.compose.yml\n    adopt: true\n" in text
    (tmp_path / "shop.compose.yml").write_text(importer.compose_text(got.stacks["shop"]))
    plan, _ = stack_plan(text, f, tmp_path)
    assert not plan.errors and not plan.pending, (plan.errors, [c.detail for c in plan.pending])
    assert [(c.stack, c.action) for c in plan.changes if isinstance(c, StackDeploy)] == [("shop", Action.ADOPT)]
    changed_file = (tmp_path / "shop.compose.yml").read_text().replace("replicas: 3", "replicas: 2")
    (tmp_path / "shop.compose.yml").write_text(changed_file)
    plan, _ = stack_plan(text, f, tmp_path)
    assert plan.errors == ["stack 'shop': adopting it needs shop.compose.yml to say what runs: service shop_web "
                           "differs (replicas) (dnet import writes such a file)"]


def test_validate_and_show_name_a_stacks_services(tmp_path: Any) -> None:
    from tests.lablib import dnet

    text, _ = stacked(tmp_path)
    (tmp_path / "inv.yml").write_text(text + "checks:\n  - {from: shop/web, to: \"node2:22\"}\n")
    r = dnet("validate", "-i", str(tmp_path / "inv.yml"))
    assert r.returncode == 0, r.stdout + r.stderr
    out = dnet("show", "-i", str(tmp_path / "inv.yml")).stdout
    assert re.search(r"\nshop +stack +2 +- +swarm +shop.yml +- +shop_web,shop_cache *\n", out), out
