"""What every step gets: the open session (one connection per host), parameters, and safe ways to run commands."""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dnet.facts import HostFacts, gather
from dnet.inventory.schema import Inventory
from dnet.runner import parallel
from dnet.session import Session, images_of
from dnet.transport.base import FROM_STDIN, Result, Transport, mask

Log = Callable[[str], None]


@dataclass
class RunContext:
    """One runbook run. A Python step gets this as its only argument.

    - `inventory`: the loaded inventory model; `params`: the runbook's parameters, filled in;
    - `hosts`: the current step's targets; `connections`: host -> the already-open Fabric `Connection` (host keys
      verified as everywhere in dnet; `address: local` hosts get an `invoke.Context`);
    - `run(host, command)`: run through dnet (sudo for non-root users, secrets masked, nothing run in a dry run);
      `read(host, command)`: a read-only command, run even in a dry run;
    - `actions`: the built-in actions, e.g. `ctx.actions.drain(["node3"])`; `log(message)`: a progress line.
    """

    session: Session
    params: dict[str, Any]
    dry_run: bool
    log: Log
    hosts: list[str] = field(default_factory=list)
    node_ids: dict[str, str] = field(default_factory=dict)  # every swarm node ID seen during the run
    secrets: tuple[str, ...] = ()
    actions: Any = None
    stale: bool = False  # facts are read again (all hosts, one round trip each) only when something asks for them
    drained: set[str] = field(default_factory=set)  # hosts an engine restart under way has drained (cut short, stay so)
    registered: dict[str, Any] = field(default_factory=dict)  # `register: NAME` results, for later steps
    captured: dict[str, dict[str, Any]] = field(default_factory=dict)  # this step's rc/stdout/stderr per host
    ask: Callable[[str], object] | None = None  # waits for the operator (Enter); None without a terminal
    yes: bool = False  # --yes: pause and other questions go on without asking
    runbook: str = ""  # the runbook's file (files it names are relative to it)
    baseline: dict[tuple[str, str, str, str], bool] | None = None  # the verify taken at the start: check -> ok

    def __post_init__(self) -> None:
        shown = self.log
        self.log = lambda m: shown(mask(m, self.secrets))  # every progress line, whoever writes it

    @property
    def inventory(self) -> Inventory:
        return self.session.loaded.model

    @property
    def facts(self) -> dict[str, HostFacts]:
        self.fresh()
        return self.session.facts

    @property
    def connections(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for h, t in self.session.transports.items():
            inner: Any = getattr(t, "inner", t)
            if hasattr(inner, "conn"):
                out[h] = inner.conn
            else:
                from invoke.context import Context as LocalContext
                out[h] = LocalContext()
        return out

    def transport(self, host: str) -> Transport:
        t = self.session.transports.get(host)
        if t is None:
            why = self.session.host_errors.get(host, "not connected")
            raise RunError(f"{host} is unreachable: {why}")
        return t

    def run(self, host: str, command: str, check: bool = True, timeout: float | None = None) -> Result:
        """Run a command that may change the host; in a dry run, only say what would run."""
        if self.dry_run:
            self.log(f"  would run on {host}: {mask(command, self.secrets)}")
            return Result(host, command, 0, "", "")
        return self.transport(host).run(command, check=check, timeout=timeout, secrets=self.secrets)

    def read(self, host: str, command: str, check: bool = True) -> Result:
        """Run a command that only reads (also in a dry run)."""
        return self.transport(host).run(command, check=check, secrets=self.secrets)

    def script(self, host: str, text: str, timeout: float | None = None) -> Result:
        """Run a runbook author's shell text, sent on stdin (so no value in it is on a process list, here or
        there, nor in sudo's log); never in a dry run (the caller says what would run instead)."""
        if self.dry_run:
            raise RunError("a dry run runs no command a runbook wrote")
        return self.transport(host).run(FROM_STDIN, stdin=text.encode(), check=False, timeout=timeout,
                                        secrets=self.secrets)

    def refresh(self) -> None:
        """The hosts may have changed: read their facts again when they are next asked for."""
        self.stale = True

    def fresh(self) -> None:
        """Read every connected host's facts again if they may be out of date (one round trip each, in parallel)."""
        if not self.stale:
            return
        self.stale = False
        images = images_of(self.session.loaded)
        hosts = list(self.session.transports)
        for r in parallel(hosts, lambda h: gather(self.session.transports[h], images)):
            if r.ok and r.value:
                self.session.facts[r.host] = r.value
                if r.value.node_id:
                    self.node_ids[r.host] = r.value.node_id

    def managers(self, avoid: list[str] | None = None) -> list[str]:
        """Reachable, active swarm managers in inventory order; hosts in `avoid` last."""
        avoid = avoid or []
        order = list(self.inventory.hosts)
        found = [h for h in order if (f := self.facts.get(h)) and f.swarm_state == "active" and f.is_manager
                 and h in self.session.transports]
        return sorted(found, key=lambda h: h in avoid)

    def manager(self, avoid: list[str] | None = None) -> str:
        found = self.managers(avoid)
        if not found:
            raise RunError("no reachable swarm manager")
        return found[0]

    def limited(self, hosts: list[str] | None) -> Session:
        """The session seen through --limit (apply and verify only on these hosts)."""
        self.fresh()  # apply and verify read the session's facts directly
        s = copy.copy(self.session)
        s.limit = hosts
        return s


    def pause(self, message: str) -> list[tuple[str, str, str]]:
        """A `pause:` step: wait for Enter; refused without a terminal unless --yes."""
        shown = mask(message, self.secrets)
        if self.dry_run:
            return [("", "ok", f"would pause: {shown}")]
        if self.ask is None:
            if not self.yes:
                raise RunError(f"pause ({shown}) waits for the operator: run it at a terminal, or pass --yes to go on "
                               "without waiting")
            return [("", "ok", f"--yes: not waiting ({shown})")]
        self.ask(f"{shown} [Enter to go on, Ctrl-C to stop]")
        return [("", "ok", "the operator went on")]

    def resolve(self, token: str) -> str:
        """`leader` (the raft leader) or `one-manager` (a reachable manager) in a step's hosts."""
        return self.leader() if token == "leader" else self.manager()

    def leader(self) -> str:
        """The host whose engine is the swarm's raft leader, as a reachable manager reports it."""
        mgr = self.manager()
        got = self.read(mgr, "docker node ls --filter role=manager --format '{{.ID}} {{.ManagerStatus}}'",
                        check=False)
        if not got.ok:
            raise RunError(f"no raft leader: {mgr} cannot list the swarm's managers ({got.stderr.strip()[-200:]}); "
                           "with most managers lost, the swarm has no quorum")
        ids = [line.split()[0] for line in got.stdout.splitlines() if line.split()[1:] == ["Leader"]]
        if not ids:
            raise RunError("no raft leader: no manager reports itself as Leader")
        for h in self.inventory.hosts:
            f = self.facts.get(h)
            if f and f.node_id and f.node_id.startswith(ids[0]):
                return h
        for n in self.facts[mgr].nodes:
            if n.id.startswith(ids[0]) and n.hostname in self.inventory.hosts:
                return n.hostname
        raise RunError(f"the raft leader (node {ids[0]}) is no host of this inventory")


class RunError(Exception):
    """A step failed; the message says why (secrets masked)."""
