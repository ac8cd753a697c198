"""What tasks share (Context) and the registry that maps each change class to its task."""
from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from dnet.facts import HostFacts
from dnet.inventory.resolve import HostSpec
from dnet.inventory.schema import Inventory
from dnet.plan.model import Change
from dnet.poll import PollTimeout, poll
from dnet.transport.base import Result, Transport, quote

C = TypeVar("C", bound=Change)
Task = Callable[[Any, Any], str]
_TASKS: dict[type[Change], Task] = {}


@dataclass
class Context:
    """What tasks share during one apply. Tokens live only here, in memory.

    With dry_run set, the transports only record commands (plan --show-commands): `read` then gives a placeholder
    for values only the host knows, and waits return at once.
    """

    inv: Inventory
    specs: dict[str, HostSpec]
    facts: dict[str, HostFacts]
    transports: dict[str, Transport]
    leader: str | None
    tokens: dict[str, str] = field(default_factory=dict, repr=False)
    manager_addr: str = ""
    node_ids: dict[str, str] = field(default_factory=dict)  # host -> swarm node ID, read at most once
    dry_run: bool = False
    unlock_key: str = field(default="", repr=False)  # an autolocked swarm's key, in memory only

    def secrets(self) -> tuple[str, ...]:
        return (*self.tokens.values(), self.unlock_key)

    def run(self, host: str, command: str, **kw: Any) -> Result:
        return self.transports[host].run(command, secrets=self.secrets(), **kw)

    def read(self, host: str, command: str, what: str) -> str:
        """Run a command whose output a later command needs; in a dry run, `<what>` stands for it."""
        if self.dry_run:
            self.transports[host].run(command, check=False)
            return f"<{what}>"
        return self.transports[host].run(command).stdout.strip()


# Seen in labs (docker.io 20.10, after an engine restart): `docker start` answers "task ID: already exists", and
# goes on answering it across further restarts, because containerd kept the old engine's task of the stopped
# container. Deleting that task (in the engine's own containerd, or a system one) lets the container start.
STALE_TASK = re.compile(r"task ([0-9a-f]{64}): already exists")
# the task containerd still holds, and a shim of it that outlived the engine's restart (containerd then knows no
# such task, yet its bundle is there, so every start says "already exists")
STALE_TASKS = ("for a in /var/run/docker/containerd/containerd.sock /run/containerd/containerd.sock; do "
               "[ -S \"$a\" ] && for i in {ids}; do ctr --address \"$a\" -n moby tasks delete --force \"$i\" "
               ">/dev/null 2>&1; done; done; for i in {ids}; do "
               "pkill -f \"containerd-shim-runc-v2 -namespace moby -id $i \" 2>/dev/null; done; sleep 0.5; true")


def clear_stale_tasks(ctx: Context, host: str, output: str) -> None:
    """Delete the stale containerd tasks a failed `docker start` named, if any."""
    ids = sorted(set(STALE_TASK.findall(output)))
    if ids:
        ctx.run(host, STALE_TASKS.format(ids=quote(*ids)), check=False)


def label_args(labels: dict[str, str], flag: str = "--label") -> list[str]:
    """`--label k=v` for each label (each one argument: the caller quotes the command)."""
    return [a for k, v in labels.items() for a in (flag, f"{k}={v}")]


def node_update(ctx: Context, host: str, command: str, tries: int = 10) -> None:
    """Run a `docker node update/promote/demote` on a manager. The swarm answers "update out of sequence" when the
    node object changed between the CLI's read and its write (a node that just joined or restarted reports its
    status meanwhile): read and write again."""
    for _ in range(tries - 1):
        r = ctx.run(host, command, check=False)
        if r.ok or ctx.dry_run:
            return
        if "out of sequence" not in r.stderr + r.stdout:
            r.check()
        time.sleep(0.5)
    ctx.run(host, command)


def retrying(ctx: Context, host: str, command: str, what: str, wait: float = 45) -> None:
    """Run a command until it succeeds: a worker learns of overlay networks (and gets attachments) late, so
    connecting or starting a container on one may fail for a while. After `wait` seconds, raise with its output."""
    def done() -> bool:
        r = ctx.run(host, command, check=False)
        if not r.ok:
            clear_stale_tasks(ctx, host, r.stdout + r.stderr)
        return r.ok or ctx.dry_run

    try:
        poll(done, timeout=wait, interval=1, what=f"{host} to {what}")
    except PollTimeout:
        ctx.run(host, command)  # raises with the command, exit code and output


def task(kind: type[C]) -> Callable[[Callable[[Context, C], str]], Callable[[Context, C], str]]:
    """Register the function that carries out one change class."""
    def register(fn: Callable[[Context, C], str]) -> Callable[[Context, C], str]:
        _TASKS[kind] = fn
        return fn
    return register


def handler(change: Change) -> Callable[[Context, Change], str]:
    """The function that carries out a change (the task modules register on import of dnet.tasks)."""
    return _TASKS[type(change)]


def registered() -> dict[type[Change], Task]:
    """Every change class with its task (tests check that none is missing)."""
    return dict(_TASKS)
