"""Inventory loading: the example, the bad corpus, ssh_config aliases."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import paramiko
import pytest
from pydantic import ValidationError

from dnet.errors import InventoryError
from dnet.inventory import hosts, load, loads
from tests.conftest import EXAMPLE, ROOT, SHARED_EXAMPLE

BAD = sorted((ROOT / "tests" / "bad").glob("*.yml"))
WARN = sorted((ROOT / "tests" / "warn").glob("*.yml"))


def expected(path: Path) -> list[str]:
    return [ln.removeprefix("# expect: ") for ln in path.read_text().splitlines() if ln.startswith("# expect: ")]


def test_example_loads_with_every_section() -> None:
    inv = load(EXAMPLE).model
    assert list(inv.hosts) == ["node1", "node2", "node3"]
    assert inv.hosts["node1"].roles == ["manager"]
    assert inv.defaults.docker.mtu == 1450 and inv.defaults.docker.dns == ["192.168.77.2"]
    assert inv.swarm and inv.swarm.default_addr_pool == ["10.220.0.0/16"]
    assert inv.networks["backnet"].internal and inv.networks["localnet"].hosts == ["edge"]
    assert inv.services["web"].endpoint_mode == "dnsrr" and inv.services["web"].ports[0].mode == "host"
    assert str(inv.containers["edge"].ports[0]) == "9090:80/tcp"
    assert inv.forwards[0].to_host == "node2" and inv.forwards[0].to_port == 9090
    assert inv.checks[2].from_ == "db" and inv.checks[2].expect == "unreachable"
    assert inv.egress == ["http://upstream.lab/"]


@pytest.mark.skipif(not SHARED_EXAMPLE.exists(), reason="../shared is not beside this checkout")
def test_shared_example_is_accepted_as_is() -> None:
    assert load(SHARED_EXAMPLE).warnings == []
    assert SHARED_EXAMPLE.read_text() == EXAMPLE.read_text()


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_inventory_is_rejected_at_the_right_place(path: Path) -> None:
    with pytest.raises(InventoryError) as exc:
        load(path)
    got = [str(p).removeprefix(f"{path}:") for p in exc.value.problems]
    assert got == expected(path)


@pytest.mark.parametrize("path", WARN, ids=[p.stem for p in WARN])
def test_warnings_do_not_fail(path: Path) -> None:
    got = [str(p).removeprefix(f"{path}:") for p in load(path).warnings]
    assert got == expected(path)


def test_missing_file() -> None:
    with pytest.raises(InventoryError) as exc:
        load("/nonexistent/inv.yml")
    assert str(exc.value) == "/nonexistent/inv.yml:1:1: no such inventory file; pass one with -i FILE"


def test_effective_settings_host_overrides_defaults() -> None:
    text = EXAMPLE.read_text().replace("    port: 22\n    roles: [worker]",
                                       "    port: 2222\n    user: ops\n    roles: [worker]")
    resolved = hosts(loads(text).model, paramiko.SSHConfig())
    assert (resolved["node3"].port, resolved["node3"].user) == (2222, "ops")
    assert (resolved["node1"].port, resolved["node1"].user) == (22, "root")
    assert resolved["node1"].identity_file and resolved["node1"].identity_file.endswith("/.ssh/id_ed25519")
    assert resolved["node2"].engine.mtu == 1450


def test_ssh_config_alias_resolves_a_bare_name() -> None:
    cfg = paramiko.SSHConfig.from_text(
        "Host db1\n  HostName 10.9.8.7\n  Port 2200\n  User admin\n  IdentityFile ~/.ssh/db\n  ProxyJump bastion\n")
    inv = loads("version: 1\nhosts:\n  db1: {roles: [manager]}\n").model
    h = hosts(inv, cfg)["db1"]
    assert (h.hostname, h.port, h.user, h.proxy_jump) == ("10.9.8.7", 2200, "admin", "bastion")
    assert h.identity_file and h.identity_file.endswith("/.ssh/db")


def test_model_is_immutable() -> None:
    inv = load(EXAMPLE).model
    with pytest.raises(ValidationError):
        inv.hosts["node1"].address = "1.2.3.4"


def test_a_directory_is_a_clean_error(tmp_path: Path) -> None:
    with pytest.raises(InventoryError) as exc:
        load(tmp_path)
    assert str(exc.value) == f"{tmp_path}:1:1: this is a directory, not an inventory file; pass one with -i FILE"


def test_lab_names_are_words_never_paths() -> None:
    from dnet.errors import DnetError
    from dnet.lab.state import LabState, check_name

    assert check_name("lab-2_x") == "lab-2_x"
    for bad in ("../x", "a/b", "", ".", "A" * 3, "x" * 41, "-x"):
        with pytest.raises(DnetError, match="lab name"):
            check_name(bad)
    with pytest.raises(DnetError, match="lab name"):
        LabState.load("../../etc")


def test_the_inventory_beats_ssh_config_host_star_and_show_says_where_each_setting_came_from() -> None:
    """As in Ansible: what the inventory states wins over ~/.ssh/config, whose `Host *` fills only the rest."""
    cfg = paramiko.SSHConfig.from_text("Host *\n  User ubuntu\n  Port 2222\n  IdentityFile ~/.ssh/work\n")
    inv = loads("version: 1\ndefaults: {user: admin}\nhosts:\n  a: {address: 10.1.1.1, roles: [manager]}\n"
                "  b: {address: 10.1.1.2, user: ops, port: 22}\n").model
    a, b = hosts(inv, cfg)["a"], hosts(inv, cfg)["b"]
    assert (a.user, a.port, a.hostname) == ("admin", 2222, "10.1.1.1")
    assert a.identity_file and a.identity_file.endswith("/.ssh/work")
    assert a.sources == {"identity_file": "ssh_config", "port": "ssh_config", "user": "defaults",
                         "transport": "built-in", "hostname": "host"}
    assert (b.user, b.port) == ("ops", 22) and b.sources["user"] == b.sources["port"] == "host"
    bare = hosts(loads("version: 1\nhosts:\n  c: {roles: [manager]}\n").model, paramiko.SSHConfig())["c"]
    assert bare.sources == {"port": "built-in", "user": "built-in", "transport": "built-in", "hostname": "name"}


def test_the_transport_comes_from_the_host_then_defaults_then_dnet_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    text = ("version: 1\ndefaults: {transport: openssh}\nhosts:\n  a: {address: 10.1.1.1, transport: paramiko}\n"
            "  b: {address: 10.1.1.2}\n")
    monkeypatch.setenv("DNET_TRANSPORT", "paramiko")
    got = hosts(loads(text).model, paramiko.SSHConfig())
    assert (got["a"].transport, got["a"].sources["transport"]) == ("paramiko", "host")
    assert (got["b"].transport, got["b"].sources["transport"]) == ("openssh", "defaults")
    monkeypatch.setenv("DNET_TRANSPORT", "openssh")
    c = hosts(loads("version: 1\nhosts:\n  c: {address: 10.1.1.3}\n").model, paramiko.SSHConfig())["c"]
    assert (c.transport, c.sources["transport"]) == ("openssh", "env")
    monkeypatch.delenv("DNET_TRANSPORT")
    c = hosts(loads("version: 1\nhosts:\n  c: {address: 10.1.1.3}\n").model, paramiko.SSHConfig())["c"]
    assert (c.transport, c.sources["transport"]) == ("paramiko", "built-in")


def test_importing_the_schema_builds_no_validator() -> None:
    """Building a model's validator costs milliseconds (the example's 31 models about 30 ms): a default value made by
    calling a model, or a forced rebuild, would pay that on every command's start. Validators build on first use."""
    code = ("import dnet.inventory.loader, dnet.inventory.schema as s, dnet.inventory.workload as w\n"
            "from pydantic import BaseModel\n"
            "ms = [v for m in (s, w) for v in vars(m).values() if isinstance(v, type) and issubclass(v, BaseModel)]\n"
            "print(len(ms), sorted(m.__name__ for m in ms if m.__pydantic_complete__))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    count, built = r.stdout.split(" ", 1)
    assert int(count) > 20 and built.strip() == "[]", r.stdout
