"""image_source: how each workload image reaches the hosts (pull, stream, auto), the architecture check, and dnet's
probe image, which is assembled on each host and never pulled or streamed."""
from __future__ import annotations

import paramiko
import pytest

from dnet.errors import DnetError
from dnet.facts import parse
from dnet.inventory import hosts, loads
from dnet.plan.diff import diff
from dnet.plan.model import ImagePull, ImageStream, Plan
from dnet.plan.world import World
from tests.conftest import EXAMPLE, ROOT

APP = "registry.internal/app:1"
NODES = ["node1", "node2", "node3"]


def plan(source_lines: str = "", local: str | None = None, arch: str = "amd64", default: str = "") -> Plan:
    text = EXAMPLE.read_text().replace("image: dnet/probe:latest\n    command: [httpd, -f, -p, \"80\"",
                                       f"image: {APP}\n{source_lines}    command: [httpd, -f, -p, \"80\"", 1)
    inv = loads(text).model
    if default:
        inv = inv.model_copy(update={"defaults": inv.defaults.model_copy(update={"image_source": default})})
    f = {n: parse(n, (ROOT / "tests" / "data" / f"fresh-{n}.txt").read_text()) for n in NODES}
    for x in f.values():
        x.images.pop("dnet/probe:latest", None)
    arches = {APP: arch} if local else {}
    return diff(World(inv, hosts(inv, paramiko.SSHConfig()), f, {APP: local}, local_arches=arches))


def changes(p: Plan, kind: type) -> list[tuple[str, str]]:
    return sorted((c.host, c.name) for c in p.changes if isinstance(c, kind))


def test_auto_streams_what_this_machine_has_for_the_hosts_architecture() -> None:
    p = plan(local="sha256:aa")
    assert changes(p, ImageStream) == [(n, APP) for n in NODES] and not p.errors


def test_auto_lets_hosts_pull_an_image_built_here_for_another_architecture() -> None:
    p = plan(local="sha256:aa", arch="arm64")
    assert not changes(p, ImageStream) and (("node1", APP) in changes(p, ImagePull)) and not p.errors


def test_pull_never_streams_even_when_this_machine_has_the_image() -> None:
    p = plan("    image_source: pull\n", local="sha256:aa")
    assert not changes(p, ImageStream) and changes(p, ImagePull)[:1] == [("node1", APP)]
    assert not changes(plan(default="pull", local="sha256:aa"), ImageStream)


def test_stream_refuses_another_architecture_with_the_fix() -> None:
    p = plan("    image_source: stream\n", local="sha256:aa", arch="arm64")
    assert (f"node1: image_source stream: this machine's {APP} is built for arm64 and node1 runs "
                           "amd64; build it for amd64 (docker build --platform linux/amd64) or let the host pull it "
                           "(image_source: pull)") in p.errors
    assert not changes(p, ImageStream)


def test_stream_without_the_image_here_is_a_plan_error() -> None:
    p = plan("    image_source: stream\n")
    assert (f"node1: image_source stream: this machine's engine has no {APP}; build or pull it here first, or let "
            "the host pull it (image_source: pull)") in p.errors


def test_the_probe_image_is_assembled_on_hosts_that_lack_it_never_streamed() -> None:
    p = plan(local="sha256:aa")
    probe = [c for c in p.changes if isinstance(c, ImagePull) and c.name == "dnet/probe:latest"]
    assert sorted(c.host for c in probe) == ["node2", "node3"]  # edge and db use it; node1 runs only web
    assert probe[0].detail == "dnet's probe: assembled on the host from its busybox, ping and openssl"


def test_two_workloads_asking_for_one_image_two_ways_is_an_error_at_the_line() -> None:
    text = EXAMPLE.read_text()
    for net, source in (("localnet", "pull"), ("backnet", "stream")):
        text = text.replace(f"    networks: [{net}]\n", f"    networks: [{net}]\n    image_source: {source}\n")
    with pytest.raises(DnetError) as exc:
        loads(text, "inv.yml")
    assert ("container 'db' wants dnet/probe:latest by stream, container 'edge' by pull; one image reaches a host "
            "one way: make them agree") in str(exc.value)
    line = text.splitlines().index("    image_source: stream") + 1
    assert f"inv.yml:{line}:" in str(exc.value), str(exc.value)


def test_a_service_on_the_probe_image_is_named_by_tag_when_the_nodes_ids_differ() -> None:
    """Each host assembles its own probe: pinning a service to the leader's image ID would leave every other node
    with "No such image" (seen in the example lab). The tag goes out with --no-resolve-image instead."""
    from dnet.plan.model import ServiceRun
    from dnet.tasks import Context, handler
    from dnet.testing import FakeTransport

    inv = loads(EXAMPLE.read_text()).model
    f = {n: parse(n, (ROOT / "tests" / "data" / f"fresh-{n}.txt").read_text()) for n in NODES}
    for i, n in enumerate(NODES):
        f[n].images["dnet/probe:latest"] = f"sha256:{i}"
    w = World(inv, hosts(inv, paramiko.SSHConfig()), f, {})
    [run] = [c for c in diff(w).changes if isinstance(c, ServiceRun)]
    assert run.spec.image_id is None
    fake = FakeTransport("node1").expect(r"^docker ")
    handler(run)(Context(inv, w.specs, f, {"node1": fake}, "node1"), run)
    assert fake.commands[-1].split(" >/dev/null")[0].endswith("--no-resolve-image dnet/probe:latest httpd -f -p 80 "
                                                                "-h /www")
