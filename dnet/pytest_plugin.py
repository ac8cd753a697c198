"""pytest plugin (registered through the pytest11 entry point): multi-host labs, apply, verify and faults as
fixtures.

    import pytest

    @pytest.mark.dnet_lab(nodes=3)
    def test_services_talk(dnet_lab, dnet_apply, dnet_verify):
        dnet_apply("my-inventory.yml")                # destroyed again at teardown
        assert dnet_verify("my-inventory.yml")        # lists failed checks and hints when it fails
        with dnet_lab.fault.partition("node1", "node2"):
            ...

Options: --dnet-inventory FILE runs against existing hosts (or Vagrant VMs) instead of a lab; --dnet-keep-lab keeps
the labs after a failed run and prints how to reach them.

Tests never touch what they did not make: an inventory that sets no `cluster` gets one of its own for the test
session (`pytest-<id>`), so its apply plans nothing for anyone else's objects; an apply that would still change or
remove a network, container, service or forward this session did not create is refused; and teardown removes only
what this session created.
"""
from __future__ import annotations

import contextlib
import os
import shlex
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from dnet import api
from dnet.errors import DnetError
from dnet.inventory import Loaded
from dnet.inventory.resolve import address_of, hosts
from dnet.lab.fault import Faults, for_lab
from dnet.transport import connect

SHAPE = {"nodes": 3, "example": False, "bare": False, "provider": "docker"}


class Ran(str):
    """What a command printed (the string itself is its stdout), with .rc, .stdout and .stderr."""

    rc: int
    stdout: str
    stderr: str

    def __new__(cls, rc: int, stdout: str, stderr: str) -> Ran:
        self = super().__new__(cls, stdout)
        self.rc, self.stdout, self.stderr = rc, stdout, stderr
        return self


T = TypeVar("T")


class DnetLab:
    """A lab made for the test run (or the hosts of --dnet-inventory).

    Its inventory (`inventory`) holds `hosts` (node1, node2, ...: node1 the manager, the others workers, each with
    its address), `defaults` (user root, the lab's SSH key as identity_file, its known_hosts file, and the upstream
    host as the engines' DNS server), `swarm` (advertise_interface eth0) and `egress` (the upstream host's http and
    https URLs). Add networks and workloads to a copy of it (a dict, or text appended to the file) and these stay."""

    def __init__(self, name: str, inventory: Path, made: bool) -> None:
        self.name, self.inventory, self.made = name, inventory, made
        self._specs = hosts(api.load(inventory).model)

    @property
    def hosts(self) -> list[str]:
        return list(self._specs)

    def address(self, host: str) -> str:
        return address_of(self._specs[host])

    def run(self, host: str, command: str, check: bool = True, timeout: float = 120) -> Ran:
        """Run a shell command on a host over SSH. The result is its stdout (a str) with .rc, .stdout and .stderr;
        with check (the default) a non-zero exit raises, naming the host, command, exit code and output tail."""
        if host not in self._specs:
            raise DnetError(f"no host '{host}' (hosts: {', '.join(self._specs)})")
        t = connect(self._specs[host])
        try:
            r = t.run(command, check=check, timeout=timeout)
            return Ran(r.code, r.stdout, r.stderr)
        finally:
            t.close()

    def exec(self, name: str, command: str, check: bool = True, timeout: float = 120) -> Ran:
        """Run a shell command inside the container NAME, or inside a running task of the service NAME, wherever
        it runs (its host is found by asking each host's engine)."""
        find = (f"docker ps -q --filter {shlex.quote(f'name=^{name}$')}; docker ps -q --filter "
                f"{shlex.quote(f'label=com.docker.swarm.service.name={name}')}")
        for host in self.hosts:
            ids = self.run(host, find, check=False).split()
            if ids:
                return self.run(host, f"docker exec {ids[0]} sh -c {shlex.quote(command)}", check, timeout)
        raise DnetError(f"no running container or task named '{name}' on {', '.join(self.hosts)}")

    @staticmethod
    def wait_until(fn: Callable[[], T], timeout: float = 60, interval: float = 1, what: str = "") -> T:
        """Call fn until it returns something true (exceptions count as not yet); return that. On timeout, fail
        the test with what fn last returned or raised."""
        deadline = time.monotonic() + timeout
        last: object = None
        while True:
            try:
                last = got = fn()
                if got:
                    return got
            except Exception as exc:  # a probe that fails while things settle is "not yet"
                last = exc
            if time.monotonic() >= deadline:
                raise AssertionError(f"{what or getattr(fn, '__name__', 'condition')} did not hold within "
                                     f"{timeout:g}s; last: {last!r}")
            time.sleep(interval)

    @property
    def fault(self) -> Faults:
        if not self.made:
            pytest.skip("faults act inside lab nodes only; this run uses the hosts of --dnet-inventory")
        return for_lab(self.name)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dnet", "dnet multi-host labs")
    group.addoption("--dnet-inventory", metavar="FILE", default=None,
                    help="Run dnet tests against the hosts of this inventory instead of making labs.")
    group.addoption("--dnet-keep-lab", action="store_true", default=False,
                    help="Keep the labs after a failed run and print how to reach them.")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "dnet_lab(nodes=3, example=False, bare=False, provider='docker'): the shape "
                                       "of the lab the dnet_lab fixture gives this test")


class _Labs:
    """Labs of this session, one per shape, removed at the end (kept with --dnet-keep-lab after failures)."""

    def __init__(self, config: pytest.Config, folder: Path) -> None:
        self.config, self.folder = config, folder
        self.labs: dict[tuple[Any, ...], DnetLab] = {}
        self.failed = False

    def get(self, shape: dict[str, Any]) -> DnetLab:
        given = self.config.getoption("--dnet-inventory")
        if given:
            key: tuple[Any, ...] = ("inventory",)
            if key not in self.labs:
                self.labs[key] = DnetLab("inventory", Path(given), made=False)
            return self.labs[key]
        key = tuple(sorted(shape.items()))
        if key not in self.labs:
            name = f"pt{uuid.uuid4().hex[:6]}"
            lab = api.lab_up(name, shape["nodes"], shape["provider"], shape["example"], shape["bare"],
                             output=self.folder / name / "inventory.yml")
            self.labs[key] = DnetLab(name, lab.inventory, made=True)
        return self.labs[key]

    def close(self) -> None:
        keep = self.config.getoption("--dnet-keep-lab") and self.failed
        for lab in self.labs.values():
            if not lab.made:
                continue
            if keep:
                print(f"\ndnet: kept lab {lab.name} after failures: inventory {lab.inventory}; log in with "
                      f"`dnet lab ssh node1 --name {lab.name}`; remove with `dnet lab down --name {lab.name}`")
                continue
            with contextlib.suppress(DnetError):
                api.lab_down(lab.name)


@pytest.fixture(scope="session")
def _dnet_labs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Labs]:
    labs = _Labs(request.config, tmp_path_factory.mktemp("dnet-labs"))
    request.config.stash[_KEY] = labs
    try:
        yield labs
    finally:
        labs.close()


_KEY = pytest.StashKey[_Labs]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and _KEY in item.config.stash:
        item.config.stash[_KEY].failed = True
    return report


@pytest.fixture
def dnet_lab(request: pytest.FixtureRequest, _dnet_labs: _Labs) -> DnetLab:
    """A lab shaped by @pytest.mark.dnet_lab(...), shared by every test that asks for the same shape."""
    marker = request.node.get_closest_marker("dnet_lab")
    shape = dict(SHAPE)
    if marker:
        unknown = set(marker.kwargs) - set(SHAPE)
        if unknown or marker.args:
            raise pytest.UsageError(f"dnet_lab marker: unknown arguments {sorted(unknown) or marker.args}; use "
                                    f"{', '.join(SHAPE)}")
        shape.update(marker.kwargs)
    return _dnet_labs.get(shape)


def _path(inv: str | os.PathLike[str] | dict[str, Any], folder: Path) -> Path:
    if isinstance(inv, dict):
        import yaml

        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"inventory-{uuid.uuid4().hex[:6]}.yml"
        path.write_text(yaml.safe_dump(inv, sort_keys=False))
        return path
    return Path(inv)


OWNED = ("network", "container", "service", "forward")  # what a test's apply may touch only if it made it
_CLUSTER = pytest.StashKey[str]()
_MADE = pytest.StashKey[set[tuple[str, str, str]]]()


def _key(c: api.Change) -> tuple[str, str, str]:
    """What a change is about: swarm-wide things (services, overlays) by name, the rest on their host."""
    return (c.host if c.kind in ("container", "forward") else "", c.kind, c.name)


def _ours(config: pytest.Config, inv: str | os.PathLike[str] | dict[str, Any], folder: Path) -> Loaded:
    """The inventory as a test uses it: with the session's own cluster unless it names one."""
    loaded = api.load(_path(inv, folder))
    if "cluster" in loaded.model.model_fields_set:
        return loaded
    if _CLUSTER not in config.stash:
        config.stash[_CLUSTER] = f"pytest-{uuid.uuid4().hex[:8]}"
    return loaded._replace(model=loaded.model.model_copy(update={"cluster": config.stash[_CLUSTER]}))


@pytest.fixture
def dnet_apply(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., api.ApplyResult]]:
    """apply(inventory path or dict) -> ApplyResult; what it made is destroyed at teardown, and nothing else."""
    made = request.config.stash.setdefault(_MADE, set())
    applied: list[Loaded] = []

    def guard(c: api.Change) -> str | None:
        if c.kind in OWNED and c.action != "create" and _key(c) not in made:
            return (f"dnet_apply refuses to {c.action} {c.kind} {c.name} on {c.host}: this test session did not "
                    f"create it (cluster '{applied[-1].model.cluster}'). Give the test inventory a cluster of its "
                    "own: leave `cluster` out and the plugin picks a unique one")
        return None

    def apply(inv: str | os.PathLike[str] | dict[str, Any], **kw: Any) -> api.ApplyResult:
        loaded = _ours(request.config, inv, tmp_path)
        applied.append(loaded)
        result = api.apply(loaded, guard=guard, **kw)
        made.update(_key(c) for c in result.changes
                    if c.kind in OWNED and c.action in ("create", "recreate") and c.status == "ok")
        if not result:
            bad = [c for c in result.changes if c.status != "ok"]
            raise AssertionError(f"dnet apply failed: {result.errors or ''} {result.unreachable or ''} " +
                                 "; ".join(f"{c.host}: {c.kind} {c.name}: {c.message}" for c in bad[:5]))
        return result

    yield apply
    for loaded in reversed(applied):
        with contextlib.suppress(DnetError):
            api.destroy(loaded, only=lambda c: _key(c) in made)


@pytest.fixture
def dnet_verify(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., api.VerifyResult]:
    """verify(inventory path or dict, scopes=None) -> VerifyResult (`assert result` explains failures)."""
    def verify(inv: str | os.PathLike[str] | dict[str, Any], **kw: Any) -> api.VerifyResult:
        return api.verify(_ours(request.config, inv, tmp_path), **kw)

    return verify
