"""Every step kind: built-in actions (apply, verify, engine-restart, node operations, conditions), shell commands
and Python functions. Each returns one outcome per host (or one for swarm-wide work) and raises RunError to stop.

An action is one registered function, `@action(NAME, ...)` on `fn(rc, targets, args, serial) -> outcomes`: the
registration says which `with:` arguments it takes (a model in dnet.runbook.model), whether the step must name
`hosts`, whether it needs each target itself reachable, and whether it batches `serial` itself. Loading, running,
the Python facade (`ctx.actions.NAME(...)`) and the reference page all read ACTIONS; nothing else lists actions.
In a dry run (rc.dry_run) an action changes nothing and says what it would do."""
from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from dnet import converge, rolling
from dnet.execute import execute
from dnet.inventory.placement import expected_tasks
from dnet.poll import PollTimeout, poll
from dnet.runbook import conditions, swarmops
from dnet.runbook.conditions import ConditionArgs
from dnet.runbook.context import RunContext, RunError
from dnet.runbook.model import ApplyArgs, RestartArgs, RotateArgs, Strict, VerifyArgs, python_file
from dnet.runner import parallel
from dnet.tasks import Context
from dnet.tasks.restart import restart
from dnet.transport.base import mask
from dnet.transport.record import Recorder

Outcome = swarmops.Outcome
Run = Callable[[RunContext, list[str], Any, "int | None"], list[Outcome]]


@dataclass(frozen=True)
class ActionDef:
    name: str
    run: Run
    doc: str
    args: type[Strict] | None = None  # the `with:` arguments; None: it takes none
    needs_hosts: bool = False  # the step must say `hosts`
    own_host: bool = False  # needs each target itself (not a manager acting for it): unreachable fails it
    swarm_wide: bool = False  # about the swarm: no targets
    batches_itself: bool = False  # takes the step's `serial` itself (the runner does not batch it)
    python: tuple[str, ...] = ("hosts",)  # positional parameters of ctx.actions.NAME(...)


ACTIONS: dict[str, ActionDef] = {}


def action(name: str, *, args: type[Strict] | None = None, needs_hosts: bool = False, own_host: bool = False,
           swarm_wide: bool = False, batches_itself: bool = False,
           python: tuple[str, ...] = ("hosts",)) -> Callable[[Run], Run]:
    """Register an action under its runbook name."""
    def register(fn: Run) -> Run:
        doc = " ".join((fn.__doc__ or "").split())
        ACTIONS[name] = ActionDef(name, fn, doc, args, needs_hosts, own_host, swarm_wide, batches_itself, python)
        return fn
    return register


@action("apply", args=ApplyArgs)
def apply(rc: RunContext, targets: list[str], a: ApplyArgs, serial: int | None) -> list[Outcome]:
    """Make the targets match the inventory, as `dnet apply --limit TARGETS` does (`with: prune_nodes, serial,
    target, set, plan`)."""
    from dnet.inventory.override import override
    from dnet.plan import saved, target

    earlier = saved.read(str(_beside(rc, a.plan))) if a.plan else None
    opts = saved.options_of(earlier) if earlier else {}
    everyone = sorted(targets) == sorted(rc.inventory.hosts)
    s = rc.limited(None if everyone else targets)
    sets = dict(a.set) if not earlier else dict(p.partition("=")[::2] for p in opts.get("sets") or [])
    s.loaded, s.overrides = override(s.loaded, sets)
    wanted = [a.target] if isinstance(a.target, str) else list(a.target)
    plan = converge.make_plan(s, bool(opts.get("prune_nodes", a.prune_nodes)),
                              target.parse(list(opts.get("targets") or []) if earlier else wanted, s.loaded.model))
    plan.overrides = dict(s.overrides)
    for path, change in plan.overrides.items():
        rc.log(f"  override {path}: {change} (for the rest of this run; the inventory file says otherwise)")
    if plan.overrides:  # later steps (verify, conditions) judge the hosts by what this step made them
        rc.session.loaded = s.loaded
    for c in plan.untargeted:
        rc.log(f"  not targeted: {c.host}: {c.kind} {c.name} {c.action} {c.detail}".rstrip())
    if earlier is not None:
        why = saved.drift(earlier, s.loaded.path, s.facts, plan)
        if why:
            raise RunError("the saved plan no longer holds; nothing was changed: " + "; ".join(why))
    if rc.dry_run and not plan.errors:
        for c in plan.ordered():
            rc.log(f"  would change {c.host}: {c.kind} {c.name} {c.action} {c.detail}".rstrip())
        return [("", "ok", f"would make {len(plan.changes)} changes")]
    done = execute(s, plan, rc.log, serial=a.serial)
    if not done.applied:
        raise RunError("the plan has errors: " + "; ".join(done.errors))
    for w in done.warnings:
        rc.log(f"  warning: {w}")
    if done.failed or done.errors:
        raise RunError(done.first_failure())
    left = f"; {len(plan.untargeted)} not targeted" if plan.untargeted else ""
    return [("", "ok", (f"{len(done.outcomes)} changes" if done.outcomes else
                        "no changes: the hosts match the inventory") + left)]


def _beside(rc: RunContext, path: str) -> Path:
    """A file a runbook names, relative to the runbook."""
    p = Path(path)
    return p if p.is_absolute() else Path(rc.runbook).resolve().parent / p


def check_key(c: dict[str, Any]) -> tuple[str, str, str, str]:
    """What identifies a check across runs: scope, from, to, what (verify --json's fields)."""
    return (str(c.get("scope")), str(c.get("from")), str(c.get("to")), str(c.get("check")))


def take_baseline(rc: RunContext) -> list[str]:
    """The verify a run takes when it starts (for `baseline: start`); its failing checks are recorded, not a
    failure. Returns them as lines."""
    from dnet.verify import verify as run_verify

    report = run_verify(rc.limited(None), lambda m: None)
    rc.baseline = {check_key(c.public()): c.ok for c in report.checks}
    return [f"{c.src} -> {c.dst} ({c.what}): {c.result}" for c in report.checks if not c.ok]


def _baseline(rc: RunContext, a: VerifyArgs) -> dict[tuple[str, str, str, str], bool]:
    if a.baseline == "start":
        if rc.baseline is None:
            raise RunError("baseline: start needs the verify taken when the run starts (a run resumed with --from "
                           "takes it too)")
        return rc.baseline
    path = _beside(rc, a.baseline or "")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {check_key(c): bool(c.get("ok")) for c in data["checks"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunError(f"baseline {path}: not a verify --json file ({exc})") from None


@action("verify", args=VerifyArgs)
def verify(rc: RunContext, targets: list[str], a: VerifyArgs, serial: int | None) -> list[Outcome]:
    """Probe every path the inventory implies from the targets (`with: scope, limit`); fails when any check fails,
    or with `baseline` (start, or a verify --json file) only when a check newly fails."""
    from dnet.inventory.limit import select
    from dnet.verify import verify as run_verify

    everyone = not targets or sorted(targets) == sorted(rc.inventory.hosts)
    on = None if everyone else targets
    if a.limit:
        chosen = select(rc.inventory, a.limit)
        on = [h for h in (on or list(rc.inventory.hosts)) if h in chosen]
    if rc.dry_run:
        return [("", "ok", "would verify " + (f"scope {a.scope} " if a.scope else "") +
                 (f"on {', '.join(on)}" if on else "every host") + (f" against baseline {a.baseline}"
                                                                      if a.baseline else ""))]
    before = _baseline(rc, a) if a.baseline else None
    s = rc.limited(on)
    report = run_verify(s, lambda m: None, [a.scope] if a.scope else None)
    failed = [c for c in report.checks if not c.ok]
    known = [c for c in failed if before is not None and before.get(check_key(c.public())) is False]
    new = [c for c in failed if c not in known]
    for c in known:
        rc.log(f"  failed before too (baseline): {c.src} -> {c.dst} ({c.what}): {c.result}")
    if new:
        ids = {c.id for c in new}
        causes = "; ".join(f.cause for f in report.findings if ids & set(f.checks))[:1500]
        shown = "; ".join(f"{c.src} -> {c.dst} ({c.what}): {c.result}" for c in new[:5])
        what = "newly failing against the baseline" if before is not None else "failed"
        raise RunError(f"{len(new)} of {len(report.checks)} checks {what}: {shown}"
                       + (f"; findings: {causes}" if causes else ""))
    return [("", "ok", f"{len(report.checks)} checks hold" if not known else
             f"{len(report.checks) - len(known)} checks hold; {len(known)} failed at the baseline too, none newly")]


@action("engine-restart", args=RestartArgs, needs_hosts=True, own_host=True, batches_itself=True,
        python=("hosts", "serial", "verify"))
def engine_restart(rc: RunContext, targets: list[str], a: RestartArgs, serial: int | None) -> list[Outcome]:
    """Restart the targets' engines in rolling batches of `serial` (see dnet.rolling: workers first, managers
    within quorum, autolocked managers one at a time), draining swarm members first; `with: verify` after each."""
    out: list[Outcome] = []
    batches = rolling.batches(rc.facts, list(targets), serial or 1)
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
        converge.wait_overlays(rc.session, timeout=60)  # a restarted engine's gossip catches up; verify then names
        if a.verify:                                     # what it still misses
            try:
                verify(rc, [], VerifyArgs(scope=None, baseline=None, limit=None), None)
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

    wanted = {n: expected_tasks(rc.inventory, n) for n in rc.inventory.services}

    def settled() -> bool:
        rc.refresh()
        found = instances(rc.inventory, rc.facts)
        return all(sum(1 for i in found if i.workload == n and i.running) == r for n, r in wanted.items())

    with contextlib.suppress(PollTimeout):  # verify then names what is short
        poll(settled, timeout=timeout, interval=1, max_interval=3, what="services to settle on the hosts")


def _would_run(rc: RunContext, targets: list[str], a: ConditionArgs) -> str:
    return f"would run `{mask(a.command or '', rc.secrets)}` on {', '.join(targets)} (not run in a dry run)"


@action("wait-until", args=ConditionArgs, python=("condition", "hosts", "timeout", "command"))
def wait_until(rc: RunContext, targets: list[str], a: ConditionArgs, serial: int | None) -> list[Outcome]:
    """Wait until a condition holds on every target (`with: condition, timeout, command, message`)."""
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


@action("fail-if", args=ConditionArgs, python=("condition", "hosts", "command", "message"))
def fail_if(rc: RunContext, targets: list[str], a: ConditionArgs, serial: int | None) -> list[Outcome]:
    """Stop the run when a condition holds on every target (`with: condition, command, message`)."""
    if rc.dry_run and a.condition == "shell":
        return [("", "ok", f"{_would_run(rc, targets, a)}, and stop the run if it exits 0 on every target")]
    now, seen = conditions.holds(rc, a.condition, targets, a.command)
    if now and rc.dry_run:
        return [("", "ok", f"{a.condition} holds now ({seen}): the run would stop here")]
    if now:
        raise RunError(a.message or f"{a.condition} holds: {seen}")
    return [("", "ok", f"{a.condition} does not hold ({seen})")]


@action("drain", needs_hosts=True)
def drain(rc: RunContext, targets: list[str], a: None, serial: int | None) -> list[Outcome]:
    """Set the targets' swarm availability to drain (their tasks move to other nodes)."""
    return swarmops.availability(rc, targets, "drain")


@action("activate", needs_hosts=True)
def activate(rc: RunContext, targets: list[str], a: None, serial: int | None) -> list[Outcome]:
    """Set the targets' swarm availability to active."""
    return swarmops.availability(rc, targets, "active")


@action("pause", needs_hosts=True)
def pause(rc: RunContext, targets: list[str], a: None, serial: int | None) -> list[Outcome]:
    """Set the targets' swarm availability to pause (no new tasks; running ones stay)."""
    return swarmops.availability(rc, targets, "pause")


@action("promote", needs_hosts=True)
def promote(rc: RunContext, targets: list[str], a: None, serial: int | None) -> list[Outcome]:
    """Make the targets swarm managers."""
    return swarmops.role(rc, targets, "promote")


@action("demote", needs_hosts=True)
def demote(rc: RunContext, targets: list[str], a: None, serial: int | None) -> list[Outcome]:
    """Make the targets swarm workers (refused for the only manager)."""
    return swarmops.role(rc, targets, "demote")


@action("leave", needs_hosts=True, own_host=True)
def leave(rc: RunContext, targets: list[str], a: None, serial: int | None) -> list[Outcome]:
    """Make the targets leave the swarm (workers only: demote a manager first)."""
    return swarmops.leave(rc, targets)


@action("node-remove", needs_hosts=True)
def node_remove(rc: RunContext, targets: list[str], a: None, serial: int | None) -> list[Outcome]:
    """Remove the targets from the swarm's node list, once they are down (after leave)."""
    return swarmops.node_remove(rc, targets)


@action("force-new-cluster", needs_hosts=True, own_host=True)
def force_new_cluster(rc: RunContext, targets: list[str], a: None, serial: int | None) -> list[Outcome]:
    """The disaster recovery for a swarm that lost its quorum: `docker swarm init --force-new-cluster` on one
    surviving manager, which then leads a one-manager swarm with every service and worker kept. Asks for the host's
    name at a terminal; without one it needs --yes."""
    return swarmops.force_new_cluster(rc, targets)


@action("rotate-join-tokens", args=RotateArgs, swarm_wide=True, python=("role",))
def rotate_join_tokens(rc: RunContext, targets: list[str], a: RotateArgs, serial: int | None) -> list[Outcome]:
    """Rotate the swarm's join tokens (`with: role`: worker, manager or both); the old ones no longer admit nodes."""
    return swarmops.rotate_tokens(rc, a.role)


def run_action(rc: RunContext, name: str, targets: list[str], args: Any, serial: int | None) -> list[Outcome]:
    """Run one built-in action on the targets."""
    found = ACTIONS.get(name)
    if found is None:
        raise RunError(f"unknown action {name}")
    return found.run(rc, targets, args, serial)


def shell(rc: RunContext, targets: list[str], command: str, timeout: float) -> list[Outcome]:
    if rc.dry_run:
        return [(h, "ok", f"would run: {mask(command, rc.secrets)}") for h in targets]

    def one(h: str) -> Outcome:
        r = rc.script(h, command, timeout=timeout)
        rc.captured[h] = {"rc": r.code, "stdout": r.stdout.removesuffix("\n"), "stderr": r.stderr.removesuffix("\n")}
        output = mask((r.stdout + r.stderr).strip(), rc.secrets)  # mask first, then cut: no part of a secret survives
        for line in output.splitlines()[-20:]:
            rc.log(f"  {h}| {line}")
        if r.ok:
            return h, "ok", "exit 0"
        return h, "failed", f"exit {r.code}" + (f": {output[-300:]}" if output else "")

    return [r.value or (r.host, "failed", r.error or "") for r in parallel(targets, one)]


def python(rc: RunContext, targets: list[str], ref: str, runbook: str) -> list[Outcome]:
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
    for h in targets:  # what `register` keeps: a dict by host gives each its own value
        value = result.get(h) if isinstance(result, dict) else result
        rc.captured[h] = {"rc": 0, "stdout": "" if value is None else str(value), "stderr": ""}
    return [("", "ok", str(result) if result is not None else f"{func}() returned")]


class Actions:
    """The built-in actions for Python steps: `ctx.actions.drain(["node3"])`, `ctx.actions.wait_until("no-tasks",
    [host], timeout=120)`, one method per registered action (dashes become underscores). Positional arguments
    follow the action's `python` order; `hosts` defaults to every host (none for swarm-wide actions). Each raises
    RunError on failure and returns its outcomes as (host, status, message)."""

    def __init__(self, rc: RunContext) -> None:
        self.rc = rc

    def __dir__(self) -> list[str]:
        return sorted(n.replace("-", "_") for n in ACTIONS)

    def __getattr__(self, attr: str) -> Callable[..., list[Outcome]]:
        found = ACTIONS.get(attr.replace("_", "-"))
        if found is None or attr.startswith("_"):
            raise AttributeError(f"no action {attr}; actions: {', '.join(self.__dir__())}")
        return partial(self._call, found)

    def _call(self, a: ActionDef, *positional: Any, **given: Any) -> list[Outcome]:
        if len(positional) > len(a.python):
            raise TypeError(f"{a.name} takes at most {len(a.python)} positional arguments ({', '.join(a.python)})")
        given.update(zip(a.python, positional, strict=False))
        hosts = given.pop("hosts", None)
        serial = given.pop("serial", None)
        targets = [] if a.swarm_wide else list(hosts or self.rc.inventory.hosts)
        try:
            args = a.args.model_validate({k: v for k, v in given.items() if v is not None}) if a.args else None
        except ValueError as exc:
            raise RunError(f"{a.name}: {exc}") from None
        if a.args is None and given:
            raise RunError(f"{a.name} takes no arguments but {', '.join(given)}")
        self.rc.refresh()
        outcomes = a.run(self.rc, targets, args, serial)
        bad = [o for o in outcomes if o[1] == "failed"]
        if bad:
            raise RunError(f"{bad[0][0] or 'swarm'}: {bad[0][2]}")
        return outcomes
