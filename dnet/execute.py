"""The one way to carry out a plan, whoever asks: `dnet apply`/`destroy`, `api.apply`/`destroy` and a runbook's
`apply` step all call `execute`. Like Fabric's Program handing off to its Executor, callers keep their own flags,
questions and printing; what is refused, what runs, how hosts are batched, how the run settles and what the result
says are decided here once."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dnet import converge
from dnet.converge import Outcome, Progress
from dnet.errors import Interrupted
from dnet.plan.model import Change, Plan
from dnet.session import Log, Session

Refuse = Callable[[Change], "str | None"]  # a reason to refuse one planned change, or None
Confirm = Callable[[Plan], None]  # asks before anything changes; raises to stop (click.Abort, ...)

STUCK = "task containers of removed services are still there after 60s"


@dataclass
class Executed:
    """What one execution did: `applied` is False when the plan was refused (its errors say why) and nothing ran."""

    plan: Plan
    applied: bool
    outcomes: list[Outcome] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unreachable: dict[str, str] = field(default_factory=dict)
    services: dict[str, str] = field(default_factory=dict)  # service -> "running/desired"
    warnings: list[str] = field(default_factory=list)  # an overlay whose gossip does not yet know every node
    seconds: float = 0.0

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status != "ok"]

    @property
    def ok(self) -> bool:
        return self.applied and not self.errors and not self.unreachable and not self.failed

    def summary(self) -> str:
        """One line, the same for every caller."""
        return (f"{len(self.outcomes) - len(self.failed)} changed, {len(self.failed)} failed or skipped, "
                f"{len(self.unreachable)} unreachable in {self.seconds:.1f}s.")

    def first_failure(self) -> str:
        """The first thing that went wrong, for a one-line error ('' when nothing did)."""
        if self.failed:
            o = self.failed[0]
            return (f"{len(self.failed)} of {len(self.outcomes)} changes failed; first: {o.change.host}: "
                    f"{o.change.kind} {o.change.name}: {o.message}")
        if self.errors:
            return "; ".join(self.errors)
        return "; ".join(f"{h} is unreachable: {e}" for h, e in self.unreachable.items())


def execute(s: Session, plan: Plan, log: Log, *, serial: int = 1, destroying: bool = False,
            refuse: Refuse | None = None, confirm: Confirm | None = None, progress: Progress | None = None,
            started: float | None = None) -> Executed:
    """Carry out a plan made by converge.make_plan or converge.destroy_plan.

    Nothing runs while the plan has errors or `refuse` refuses any change. `confirm` is asked only when there is
    something to change. After an apply, waits until services run every replica and overlays' gossip knows them;
    after a destroy, until the removed services' task containers are gone."""
    start = time.monotonic() if started is None else started
    refused = [why for c in plan.ordered() if refuse is not None and (why := refuse(c))]
    if plan.errors or refused:
        return Executed(plan, False, errors=plan.errors + refused, unreachable=dict(s.host_errors),
                        seconds=time.monotonic() - start)
    if plan.changes and confirm is not None:
        confirm(plan)
    progress = progress or Progress([])
    outcomes = converge.apply(s, plan, log, serial, progress)  # raises Interrupted with its summary
    done = Executed(plan, True, outcomes)
    try:
        if destroying:
            if any(c.kind == "service" for c in plan.changes):
                done.errors += [f"{h}: {STUCK}" for h in converge.wait_tasks_gone(s)]
        else:
            done.services, done.warnings = converge.settle(s, plan.changes, log)
    except KeyboardInterrupt as exc:  # every change was made: say so, and that the wait was cut short
        raise Interrupted([*progress.summary(), "  interrupted while waiting for the hosts to settle"]) from exc
    done.unreachable = dict(s.host_errors)
    done.seconds = time.monotonic() - start
    return done
