"""The pytest plugin, run by pytest's own pytester: marker, fixtures, options, teardown; faults on a real lab."""
from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator

import pytest

import dnet.lab.dind
import dnet.lab.tls
import dnet.transport.ssh  # noqa: F401
from dnet import api

pytestmark = pytest.mark.lab
# pytester drops every module first imported while one of its tests runs; cryptography's classes imported again
# then no longer match its native code ("curve must be an EllipticCurve instance"). Since runs stopped importing
# paramiko (the connection holder does the SSH), nothing imported what lab_up needs before: this module does, above.
pytest_plugins = ["pytester"]


def labs_named(prefix: str) -> set[str]:
    out = subprocess.run(["docker", "ps", "-a", "--filter", "label=dnet.lab", "--format",
                          '{{.Label "dnet.lab"}}'], capture_output=True, text=True).stdout
    return {x for x in out.split() if x.startswith(prefix)}


def test_lab_fixture_marker_run_and_teardown_even_after_a_failure(pytester: pytest.Pytester) -> None:
    before = labs_named("pt")
    pytester.makepyfile(test_lab="""
        import pytest

        @pytest.mark.dnet_lab(nodes=2)
        def test_shape(dnet_lab):
            assert dnet_lab.hosts == ["node1", "node2"]
            assert dnet_lab.run("node2", "hostname").strip() == "node2"
            assert dnet_lab.address("node1").endswith(".11")
            with pytest.raises(Exception, match="exited 3"):
                dnet_lab.run("node1", "exit 3")
            print("LAB", dnet_lab.name)

        @pytest.mark.dnet_lab(nodes=2)
        def test_same_shape_shares_the_lab(dnet_lab):
            print("LAB", dnet_lab.name)
            assert False, "fails on purpose"
    """)
    r = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    r.assert_outcomes(passed=1, failed=1)
    names = set(re.findall(r"LAB (pt\w+)", r.stdout.str()))
    assert len(names) == 1  # one lab for both tests
    assert labs_named("pt") == before  # removed although a test failed


def test_keep_lab_after_a_failure_and_run_against_an_inventory(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_keep="""
        def test_fails(dnet_lab):
            assert False
    """)
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--dnet-keep-lab")
    r.assert_outcomes(failed=1)
    kept = [line for line in r.outlines if line.startswith("dnet: kept lab ")]
    assert kept, r.outlines
    name = kept[0].split()[3]
    assert name in labs_named(name)
    try:
        inventory = kept[0].split("inventory ")[1].split(";")[0]
        pytester.makepyfile(test_inv="""
            import pytest

            def test_uses_the_given_hosts(dnet_lab):
                assert dnet_lab.hosts == ["node1", "node2", "node3"] and not dnet_lab.made
                assert dnet_lab.run("node3", "hostname").strip() == "node3"
                r = dnet_lab.run("node2", "echo out; echo err >&2; exit 4", check=False)
                assert (r.rc, r.stdout, r.stderr, str(r)) == (4, "out\\n", "err\\n", "out\\n")
                dnet_lab.run("node2", "docker run -d --name xctr --label dnet.managed=true dnet/probe:latest")
                try:
                    got = dnet_lab.exec("xctr", "echo $((6 * 7)) inside")
                    assert (got.rc, got.strip()) == (0, "42 inside")
                    assert dnet_lab.exec("xctr", "exit 5", check=False).rc == 5
                finally:
                    dnet_lab.run("node2", "docker rm -f xctr")
                with pytest.raises(Exception, match="no running container or task named 'nope'"):
                    dnet_lab.exec("nope", "true")
                calls = []
                assert dnet_lab.wait_until(lambda: calls.append(1) or len(calls) >= 3, timeout=10, interval=0.01)
                with pytest.raises(AssertionError, match="never did not hold within 0.2s; last: False"):
                    dnet_lab.wait_until(lambda: False, timeout=0.2, interval=0.05, what="never")

            def test_faults_skip_on_given_hosts(dnet_lab):
                dnet_lab.fault.partition("node1", "node2")
        """)
        r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs", "--dnet-inventory", inventory,
                                          "test_inv.py")
        r.assert_outcomes(passed=1, skipped=1)
        assert "faults act inside lab nodes only; this run uses the hosts of --dnet-inventory" in r.stdout.str()
    finally:
        api.lab_down(name)
    assert not labs_named(name)


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[api.Lab]:
    """A 3-node lab running the example (cluster 'default'), shared by the tests below."""
    folder = tmp_path_factory.mktemp("pf")
    lab = api.lab_up("pf" + uuid.uuid4().hex[:6], 3, example=True, subnet="192.168.88.0/24",
                     output=folder / "inv.yml")
    try:
        assert api.apply(lab.inventory)
        yield lab
    finally:
        api.lab_down(lab.name)


def test_partition_fails_exactly_the_crossing_checks_and_heal_restores_them(applied: api.Lab) -> None:
    from dnet.lab.fault import for_lab

    lab = applied
    assert api.verify(lab.inventory)
    faults = for_lab(lab.name)
    with faults.partition("node2", "node3") as f:
        assert f.what == "partition node2 <-> node3"
        broken = api.verify(lab.inventory, scopes=[3])
    failed = broken.failed
    assert failed and {c["on"] for c in failed} <= {"node2", "node3"}, json.dumps(failed)[:2000]
    pairs = {c.get("pair") for c in broken.checks if c.get("pair")}
    for c in broken.checks:
        if c["check"].startswith("dns "):  # answered by the source node's own resolver: nothing crosses
            continue
        if c.get("pair") in ("node2>node3", "node3>node2"):
            assert c["result"] != "ok", c  # the probe got nothing through (ok only if it expected that)
        elif c.get("pair"):
            assert c["ok"], c
    assert len(pairs) > 2 and "node2>node3" in pairs
    assert api.verify(lab.inventory)  # healed on leaving the with block
    with pytest.raises(Exception, match="netem"):
        faults.delay("node1", 50)


def running(lab: api.Lab) -> dict[str, list[str]]:
    """Every container name per node, and the swarm's services (what another cluster's run must leave alone)."""
    from dnet.inventory.resolve import hosts
    from dnet.transport import connect

    out = {}
    for name, spec in hosts(api.load(lab.inventory).model).items():
        t = connect(spec)
        try:
            out[name] = sorted(t.run("docker ps --format '{{.Names}}'").stdout.split())
            if name == "node1":
                out["services"] = sorted(t.run("docker service ls --format '{{.Name}} {{.Replicas}}'").stdout
                                         .splitlines())
        finally:
            t.close()
    return out


def test_a_plugin_run_on_hosts_running_another_cluster_touches_only_what_it_made(
        applied: api.Lab, pytester: pytest.Pytester) -> None:
    import yaml

    before = running(applied)
    assert "edge" in before["node2"] and "db" in before["node3"] and before["services"] == ["web 3/3"]
    base = yaml.safe_load(applied.inventory.read_text())
    mine = {k: base[k] for k in ("version", "defaults", "hosts", "swarm")}
    mine["containers"] = {"ptprobe": {"host": "node1", "image": "dnet/probe:latest",
                                      "command": ["httpd", "-f", "-p", "81", "-h", "/www"]}}
    inv = pytester.path / "mine.yml"
    inv.write_text(yaml.safe_dump(mine))
    pytester.makepyfile(test_mine=f"""
        def test_apply_and_verify(dnet_apply, dnet_lab):
            result = dnet_apply({str(inv)!r})
            assert dnet_lab.run("node1", "docker ps -q --filter name=ptprobe").strip()
            assert dnet_lab.run("node1", "docker inspect -f '{{{{index .Config.Labels \\"dnet.cluster\\"}}}}' "
                                         "ptprobe").startswith("pytest-")
    """)
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--dnet-inventory", str(inv))
    r.assert_outcomes(passed=1)
    assert running(applied) == before  # its container is gone again; the example's workloads never moved
    # an inventory that names the other cluster: its apply would remove the example's workloads, so it is refused
    inv.write_text(yaml.safe_dump({**mine, "cluster": "default"}))
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--dnet-inventory", str(inv))
    r.assert_outcomes(failed=1)
    assert "dnet_apply refuses to remove container edge on node2: this test session did not create it " \
           "(cluster 'default')" in r.stdout.str()
    assert running(applied) == before
