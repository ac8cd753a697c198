"""Every step kind: built-in actions (apply, verify, engine-restart, node operations, conditions), shell commands
and Python functions. Each returns one outcome per host (or one for swarm-wide work) and raises RunError to stop."""
from __future__ import annotations

import contextlib
import importlib.util
import sys
from functools import partial
from typing import Any

from dnet import converge
from dnet.poll import PollTimeout, poll
from dnet.runbook import conditions, swarmops
from dnet.runbook.context import RunContext, RunError
from dnet.runbook.load import BoundStep
from dnet.runbook.model import ApplyArgs, ConditionArgs, RestartArgs, RotateArgs, VerifyArgs
from dnet.runner import parallel
from dnet.tasks import Context
from dnet.tasks.restart import restart
from dnet.transport.base import mask
from dnet.transport.record import Recorder

Outcome = swarmops.Outcome


def rolling(rc: RunContext, hosts: list[str], serial: int) -> list[list[str]]:
    """Batches of at most `serial` hosts, workers first, never more managers than raft can lose."""
    facts = rc.facts
    managers = sum(1 for f in facts.values() if f.swarm_state == "active" and f.is_manager)
    per_batch = max(1, (managers - 1) // 2)
    is_mgr = {h: bool(facts.get(h) and facts[h].is_manager) for h in hosts}
    batches: list[list[str]] = []
    for h in sorted(hosts, key=lambda h: (is_mgr[h], list(rc.inventory.hosts).index(h))):
        last = batches[-1] if batches else None
        if last is None or len(last) >= serial or (is_mgr[h] and sum(is_mgr[x] for x in last) >= per_batch):
            batches.append([h])
        else:
            last.append(h)
    return batches


def apply(rc: RunContext, targets: list[str], a: ApplyArgs) -> list[Outcome]:
    everyone = sorted(targets) == sorted(rc.inventory.hosts)
    s = rc.limited(None if everyone else targets)
    plan = converge.make_plan(s, a.prune_nodes)
    if plan.errors:
        raise RunError("the plan has errors: " + "; ".join(plan.errors))
    if rc.dry_run:
        for c in plan.ordered():
            rc.log(f"  would change {c.host}: {c.kind} {c.name} {c.action} {c.detail}".rstrip())
        return [("", "ok", f"{len(plan.changes)} changes pending")]
    outcomes = converge.apply(s, plan, rc.log, a.serial)
    for w in converge.settle(s, plan.changes, rc.log)[1]:
        rc.log(f"  warning: {w}")
    bad = [o for o in outcomes if o.status != "ok"]
    if bad:
        raise RunError(f"{len(bad)} of {len(outcomes)} changes failed; first: {bad[0].change.host}: "
                       f"{bad[0].change.kind} {bad[0].change.name}: {bad[0].message}")
    return [("", "ok", f"{len(outcomes)} changes" if outcomes else "no changes: the hosts match the inventory")]


def verify(rc: RunContext, targets: list[str] | None, scope: int | None) -> list[Outcome]:
    from dnet.verify import verify as run_verify

    if rc.dry_run:
        return [("", "ok", "would verify " + (f"scope {scope} " if scope else "") +
                 (f"on {', '.join(targets)}" if targets else "every host"))]
    s = rc.limited(targets)
    report = run_verify(s, lambda m: None, [scope] if scope else None)
    failed = [c for c in report.checks if not c.ok]
    if failed:
        shown = "; ".join(f"{c.src} -> {c.dst} ({c.what}): {c.result}" for c in failed[:5])
        causes = "; ".join(f.cause for f in report.findings[:3])
        raise RunError(f"{len(failed)} of {len(report.checks)} checks failed: {shown}"
                       + (f"; findings: {causes}" if causes else ""))
    return [("", "ok", f"{len(report.checks)} checks hold")]


def engine_restart(rc: RunContext, targets: list[str], serial: int, a: RestartArgs) -> list[Outcome]:
    out: list[Outcome] = []
    batches = rolling(rc, targets, serial)
    for n, batch in enumerate(batches, 1):
        rc.log(f"  batch {n}/{len(batches)}: {', '.join(batch)}")
        recorded: list[tuple[str, str]] = []
        transports: dict[str, Any] = ({h: Recorder(h, recorded) for h in rc.session.transports} if rc.dry_run
                                      else rc.session.transports)
        managers = rc.managers(avoid=batch)
        ctx = Context(rc.inventory, rc.session.specs, rc.facts, transports, managers[0] if managers else None,
                      dry_run=rc.dry_run)
        if not rc.dry_run:  # cut short mid-batch, a node may stay drained: the way back is printed
            rc.drained.update(batch)
        results = parallel(batch, partial(restart, ctx))
        rc.drained.difference_update(batch)
        for h, cmd in recorded:
            rc.log(f"  would run on {h}: {cmd}")
        for r in results:
            out.append((r.host, "ok" if r.ok else "failed", r.value or r.error or ""))
        if any(not r.ok for r in results):
            out += [(h, "skipped", "an earlier batch failed") for b in batches[n:] for h in b]
            return out
        if rc.dry_run:
            continue
        converge.wait_services(rc.session, timeout=120)
        _settle(rc)
        if a.verify:
            try:
                verify(rc, None, None)
            except RunError as exc:
                out.append(("", "failed", f"verify after restarting {', '.join(batch)}: {exc}"))
                out += [(h, "skipped", "verify failed after an earlier batch") for b in batches[n:] for h in b]
                return out
            rc.log(f"  verify holds after restarting {', '.join(batch)}")
    return out


def _settle(rc: RunContext, timeout: float = 120) -> None:
    """Read facts until every service's running task containers, as the hosts themselves report them, match its
    replicas (the swarm's own counts can run ahead of the hosts right after a manager restarts)."""
    from dnet.verify.derive import instances

    wanted = {n: s.replicas for n, s in rc.inventory.services.items()}

    def settled() -> bool:
        rc.refresh()
        found = instances(rc.inventory, rc.facts)
        return all(sum(1 for i in found if i.workload == n and i.running) == r for n, r in wanted.items())

    with contextlib.suppress(PollTimeout):  # verify then names what is short
        poll(settled, timeout=timeout, interval=1, max_interval=3, what="services to settle on the hosts")


def _would_run(rc: RunContext, targets: list[str], a: ConditionArgs) -> str:
    return f"would run `{mask(a.command or '', rc.secrets)}` on {', '.join(targets)} (not run in a dry run)"


def wait_until(rc: RunContext, targets: list[str], a: ConditionArgs) -> list[Outcome]:
    seen = [""]
    if rc.dry_run and a.condition == "shell":  # a dry run runs nothing the runbook's author wrote
        return [("", "ok", f"{_would_run(rc, targets, a)}, and wait up to {a.timeout:.0f}s until it exits 0 on "
                           "every target")]

    def check() -> bool:
        ok, seen[0] = conditions.holds(rc, a.condition, targets, a.command)
        return ok

    if rc.dry_run:
        now = check()
        return [("", "ok", f"{a.condition} {'holds now' if now else 'does not hold now'} ({seen[0]}); would wait up "
                           f"to {a.timeout:.0f}s")]
    try:
        poll(check, timeout=a.timeout, interval=0.5, max_interval=2, what=a.condition, last=lambda: seen[0])
    except PollTimeout as exc:
        raise RunError(a.message or str(exc)) from None
    return [("", "ok", f"{a.condition}: {seen[0]}")]


def fail_if(rc: RunContext, targets: list[str], a: ConditionArgs) -> list[Outcome]:
    if rc.dry_run and a.condition == "shell":
        return [("", "ok", f"{_would_run(rc, targets, a)}, and stop the run if it exits 0 on every target")]
    now, seen = conditions.holds(rc, a.condition, targets, a.command)
    if now and rc.dry_run:
        return [("", "ok", f"{a.condition} holds now ({seen}): the run would stop here")]
    if now:
        raise RunError(a.message or f"{a.condition} holds: {seen}")
    return [("", "ok", f"{a.condition} does not hold ({seen})")]


def shell(rc: RunContext, targets: list[str], command: str, timeout: float) -> list[Outcome]:
    if rc.dry_run:
        return [(h, "ok", f"would run: {mask(command, rc.secrets)}") for h in targets]

    def one(h: str) -> Outcome:
        r = rc.script(h, command, timeout=timeout)
        output = mask((r.stdout + r.stderr).strip(), rc.secrets)  # mask first, then cut: no part of a secret survives
        for line in output.splitlines()[-20:]:
            rc.log(f"  {h}| {line}")
        if r.ok:
            return h, "ok", "exit 0"
        return h, "failed", f"exit {r.code}" + (f": {output[-300:]}" if output else "")

    return [r.value or (r.host, "failed", r.error or "") for r in parallel(targets, one)]


def python(rc: RunContext, targets: list[str], ref: str, runbook: str) -> list[Outcome]:
    from dnet.runbook.load import python_file

    func = ref.rpartition(":")[2]
    path = python_file(runbook, ref)
    if path is None:  # checked when loaded; the file may have been replaced by a link since
        raise RunError(f"python: {ref} is outside the runbook's folder")
    if rc.dry_run:
        return [("", "ok", f"would call {func}() from {path} on {', '.join(targets) or 'no hosts'}")]
    spec = importlib.util.spec_from_file_location(f"dnet_runbook_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise RunError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(path.parent))
    fn = getattr(module, func, None)
    if not callable(fn):
        raise RunError(f"{path} has no function {func}")
    rc.hosts = targets
    result = fn(rc)
    return [("", "ok", str(result) if result is not None else f"{func}() returned")]


def action(rc: RunContext, bs: BoundStep, targets: list[str]) -> list[Outcome]:
    """Run one built-in action on the targets."""
    name, a = bs.step.action, bs.args
    if name == "apply":
        assert isinstance(a, ApplyArgs)
        return apply(rc, targets, a)
    if name == "verify":
        assert isinstance(a, VerifyArgs)
        everyone = sorted(targets) == sorted(rc.inventory.hosts)
        return verify(rc, None if everyone else targets, a.scope)
    if name == "engine-restart":
        assert isinstance(a, RestartArgs)
        return engine_restart(rc, targets, bs.serial or 1, a)
    if name == "rotate-join-tokens":
        assert isinstance(a, RotateArgs)
        return swarmops.rotate_tokens(rc, a.role)
    if name == "wait-until":
        assert isinstance(a, ConditionArgs)
        return wait_until(rc, targets, a)
    if name == "fail-if":
        assert isinstance(a, ConditionArgs)
        return fail_if(rc, targets, a)
    if name in ("drain", "activate", "pause"):
        return swarmops.availability(rc, targets, {"activate": "active"}.get(name, name))
    if name in ("promote", "demote"):
        return swarmops.role(rc, targets, name)
    if name == "leave":
        return swarmops.leave(rc, targets)
    if name == "node-remove":
        return swarmops.node_remove(rc, targets)
    raise RunError(f"unknown action {name}")


class Actions:
    """The built-in actions for Python steps (`ctx.actions.drain(["node3"])`); each raises RunError on failure and
    returns its outcomes as (host, status, message)."""

    def __init__(self, rc: RunContext) -> None:
        self.rc = rc

    def _ok(self, outcomes: list[Outcome]) -> list[Outcome]:
        bad = [o for o in outcomes if o[1] == "failed"]
        if bad:
            raise RunError(f"{bad[0][0] or 'swarm'}: {bad[0][2]}")
        return outcomes

    def drain(self, hosts: list[str]) -> list[Outcome]:
        return self._ok(swarmops.availability(self.rc, hosts, "drain"))

    def activate(self, hosts: list[str]) -> list[Outcome]:
        return self._ok(swarmops.availability(self.rc, hosts, "active"))

    def pause(self, hosts: list[str]) -> list[Outcome]:
        return self._ok(swarmops.availability(self.rc, hosts, "pause"))

    def promote(self, hosts: list[str]) -> list[Outcome]:
        return self._ok(swarmops.role(self.rc, hosts, "promote"))

    def demote(self, hosts: list[str]) -> list[Outcome]:
        return self._ok(swarmops.role(self.rc, hosts, "demote"))

    def leave(self, hosts: list[str]) -> list[Outcome]:
        return self._ok(swarmops.leave(self.rc, hosts))

    def node_remove(self, hosts: list[str]) -> list[Outcome]:
        return self._ok(swarmops.node_remove(self.rc, hosts))

    def rotate_join_tokens(self, role: str = "both") -> list[Outcome]:
        return self._ok(swarmops.rotate_tokens(self.rc, role))

    def engine_restart(self, hosts: list[str], serial: int = 1, verify: bool = False) -> list[Outcome]:
        return self._ok(engine_restart(self.rc, hosts, serial, RestartArgs(verify=verify)))

    def apply(self, hosts: list[str] | None = None, prune_nodes: bool = False) -> list[Outcome]:
        self.rc.refresh()
        args = ApplyArgs(prune_nodes=prune_nodes, serial=1)
        return self._ok(apply(self.rc, hosts or list(self.rc.inventory.hosts), args))

    def verify(self, hosts: list[str] | None = None, scope: int | None = None) -> list[Outcome]:
        self.rc.refresh()
        return self._ok(verify(self.rc, hosts, scope))

    def wait_until(self, condition: str, hosts: list[str] | None = None, timeout: float = 120,
                   command: str | None = None) -> list[Outcome]:
        a = ConditionArgs.model_validate({"condition": condition, "timeout": timeout, "command": command})
        return self._ok(wait_until(self.rc, hosts or [], a))
