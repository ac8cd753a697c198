"""Run a bound runbook step by step: print each step, its targets and results; stop at the first failure with the
command that resumes; append every result to the audit log."""
from __future__ import annotations

import contextlib
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from dnet.errors import DnetError, Problem
from dnet.runbook import actions, conditions, template
from dnet.runbook.audit import Audit, now
from dnet.runbook.conditions import CONDITIONS, ConditionArgs
from dnet.runbook.context import RunContext, RunError
from dnet.runbook.load import BoundStep, LoadedRunbook, bind_step, condition_of, walk
from dnet.runbook.model import refs
from dnet.transport.base import mask

Say = Callable[[str, str], None]  # (text, style)
Outcome = tuple[str, str, str]  # host, status, message


@dataclass
class StepRecord:
    index: int
    name: str
    kind: str
    targets: list[str]
    status: str = "pending"  # ok | failed | skipped | ignored | interrupted
    seconds: float = 0.0
    results: list[dict[str, str]] = field(default_factory=list)
    label: str = ""  # 3.rescue.1 for a rescue or always step

    def public(self) -> dict[str, Any]:
        return {"index": self.index, "label": self.label or str(self.index), "name": self.name, "kind": self.kind,
                "targets": self.targets, "status": self.status, "seconds": round(self.seconds, 2),
                "results": self.results}


@dataclass
class RunResult:
    steps: list[StepRecord]
    failed_at: int | None = None
    reason: str = ""
    resume: str = ""
    interrupted: bool = False
    in_flight: list[str] = field(default_factory=list)  # hosts a step was working on when the run was cut short


def start_index(steps: list[BoundStep], start: str | None) -> int:
    """--from: a step number (1-based) or a step name."""
    if start is None:
        return 1
    if start.isdigit() and 1 <= int(start) <= len(steps):
        return int(start)
    for bs in steps:
        if bs.step.name == start:
            return bs.index
    raise DnetError(f"--from {start}: no such step (steps 1-{len(steps)}: "
                    f"{', '.join(bs.step.name for bs in steps)})")


def describe(bs: BoundStep, secrets: tuple[str, ...] = ()) -> str:
    st = bs.step
    what = {"action": f"action {st.action}", "shell": f"shell: {bs.text}", "python": f"python {bs.text}",
            "pause": f"pause: {bs.text}"}[st.kind]
    shell_text = (st.shell or "") + str(st.args.get("command") or "")
    raw = sorted({template.RAW.sub("", m[1]).strip() for m in template.spans(shell_text) if template.is_raw(m[1])})
    return mask(what, secrets) + (f", serial {bs.serial}" if bs.serial else "") + (
        f" (unquoted, by | raw: {', '.join(raw)})" if raw else "")


def needs_target(bs: BoundStep) -> bool:
    """Steps that need each target itself (not a manager acting for it): an unreachable target fails them, dry run
    or not."""
    st = bs.step
    if st.kind == "shell":
        return True
    if st.action is None:
        return False
    cond = bs.args.condition if isinstance(bs.args, ConditionArgs) else ""
    return actions.ACTIONS[st.action].own_host or (cond in CONDITIONS and CONDITIONS[cond].own_host)


def execute(lr: LoadedRunbook, steps: list[BoundStep], rc: RunContext, audit: Audit, say: Say,
            start: int = 1, resume: Callable[[int], str] | None = None) -> RunResult:
    """Run the steps from `start`, each with its rescue and always steps; when one fails, the later ones are
    skipped and the run's own rescue steps run; its always steps run in any case. Ctrl-C (or SIGTERM) ends the
    run after recording it: the audit line says `interrupted`, and the result names the hosts the step was
    working on."""
    records: list[StepRecord] = []
    result = RunResult(records)
    runner = _Runner(lr, rc, audit, say, len(steps), records)
    if not rc.dry_run and rc.baseline is None and any(
            st.action == "verify" and st.args.get("baseline") == "start" for _, st in walk(lr.book)):
        runner.baseline()
    for n, bs in enumerate(steps):
        if bs.index < start:
            records.append(StepRecord(bs.index, bs.step.name, bs.step.kind, bs.targets, "skipped"))
            say(f"[{bs.index}/{len(steps)}] {bs.step.name}: skipped (--from {start})", "dim")
            continue
        try:
            done = runner.tree(bs)
        except KeyboardInterrupt:
            current = runner.current or bs
            result.interrupted, result.failed_at = True, bs.index
            result.in_flight = list(rc.hosts) or list(current.targets) or list(rc.session.transports)
            result.reason = f"interrupted during step {runner.label(current)} ({current.step.name})"
            result.resume = resume(bs.index) if resume else ""
            if records and records[-1].name == current.step.name:
                records[-1].status = "interrupted"
            with contextlib.suppress(OSError, DnetError):
                audit.write(rc.secrets, step=current.step.name, index=bs.index, host=None, start=runner.began,
                            end=now(), result="interrupted", message=f"interrupted while working on "
                                                                     f"{', '.join(result.in_flight) or 'the swarm'}")
            return result
        if done.status == "failed" or done.unwritten:
            result.failed_at = bs.index
            if done.status == "failed":
                result.reason = done.reason
                result.resume = resume(bs.index) if resume else ""
            else:  # the hosts changed but no record says so: stop before anything else changes
                result.reason = (f"step {bs.index} ({bs.step.name}) completed, but the audit log could not be "
                                 f"written ({done.unwritten}); the run stops here so that nothing else happens "
                                 "unrecorded")
                result.resume = resume(bs.index + 1) if resume and bs.index < len(steps) else ""
            records += [StepRecord(later.index, later.step.name, later.step.kind, later.targets, "skipped")
                        for later in steps[n + 1:]]
            break
    try:
        runner.finish(result.failed_at is not None and not runner.unwritten)
    except KeyboardInterrupt:
        result.interrupted = True
        result.failed_at = result.failed_at or len(steps)
        result.reason = result.reason or "interrupted during the run's rescue or always steps"
    return result


@dataclass
class Done:
    """How one step (with its rescue and always steps) went."""

    status: str  # ok | failed | skipped | ignored
    reason: str = ""
    unwritten: str = ""  # why the audit log could not be written


class _Runner:
    """Runs steps one at a time: binds each with the results registered so far, decides `when`, retries,
    registers results, prints and audits every outcome."""

    def __init__(self, lr: LoadedRunbook, rc: RunContext, audit: Audit, say: Say, total: int,
                 records: list[StepRecord]) -> None:
        self.lr, self.rc, self.audit, self.say, self.total, self.records = lr, rc, audit, say, total, records
        self.current: BoundStep | None = None
        self.began = now()
        self.unwritten = ""

    def baseline(self) -> None:
        """The verify a `baseline: start` step compares with, taken before the first step; what fails here is
        recorded (printed and audited), not a failure of the run."""
        self.say("baseline: verify before the first step (for baseline: start)", "bold")
        t0 = time.monotonic()
        try:
            failing = actions.take_baseline(self.rc)
        except (RunError, DnetError) as exc:
            failing = [f"the baseline verify could not run: {exc}"]
        message = (f"{len(self.rc.baseline or {})} checks, {len(failing)} failing" +
                   (": " + "; ".join(failing[:10]) if failing else ""))
        self.say(f"  baseline: {message} ({time.monotonic() - t0:.1f}s)", "yellow" if failing else "green")
        with contextlib.suppress(OSError, DnetError):
            self.audit.write(self.rc.secrets, step="baseline", index=0, host=None, start=self.began, end=now(),
                             result="ok", message=message)

    def label(self, bs: BoundStep) -> str:
        return bs.label

    def tree(self, bs: BoundStep) -> Done:
        """A step, then its rescue steps when it failed, then its always steps; the step's own outcome counts."""
        done = self.one(bs)
        if done.status == "failed" and bs.step.rescue:
            self.say(f"  rescue for {bs.step.name}:", "yellow")
            self.sequence([replace(bs, step=sub, where=(*bs.where, "rescue", j))
                           for j, sub in enumerate(bs.step.rescue)])
        if bs.step.always:
            self.sequence([replace(bs, step=sub, where=(*bs.where, "always", j))
                           for j, sub in enumerate(bs.step.always)])
        return done

    def sequence(self, steps: list[BoundStep]) -> bool:
        """Rescue or always steps: one after another, stopping at the first that fails."""
        return all(self.one(sub).status != "failed" for sub in steps)

    def finish(self, failed: bool) -> None:
        """The run's own rescue steps (when it failed) and always steps."""
        book = self.lr.book
        parts = (("rescue", book.rescue) if failed else ("rescue", [])), ("always", book.always)
        for part, subs in parts:
            if subs:
                self.say(f"{part} steps of the run:", "yellow" if part == "rescue" else "bold")
                self.sequence([BoundStep(0, sub, [], None, "", where=(part, j)) for j, sub in enumerate(subs)])

    def variables(self) -> dict[str, Any]:
        return {**self.rc.params, **self.rc.registered}

    def bind(self, bs: BoundStep) -> BoundStep:
        """The step bound now, with every result registered so far and `leader` / `one-manager` read now."""
        problems: list[Problem] = []
        fresh = bind_step(self.lr, bs.where, bs.step, bs.index, self.variables(), self.rc.inventory, problems,
                          self.rc.resolve)
        if problems or fresh.deferred:
            missing = sorted(set(refs(bs.step.model_dump(by_alias=True, exclude={"rescue", "always", "when"})))
                             - set(self.variables()))
            why = "; ".join(p.message for p in problems) or (
                f"it uses {', '.join(missing)}, which no step that ran has registered (a step skipped by --from "
                "or when: registers nothing)")
            raise RunError(why)
        return fresh

    def one(self, given: BoundStep) -> Done:
        rc, st = self.rc, given.step
        self.current, self.began = given, now()
        head = f"[{given.label}/{self.total}] {st.name}"
        rec = StepRecord(given.index, st.name, st.kind, given.targets, label=given.label)
        self.records.append(rec)
        t0 = time.monotonic()
        try:
            bs = self.bind(given)
        except (RunError, DnetError) as exc:
            self.say(head, "bold")
            return self.report(rec, given, head, [("", "failed", f"cannot bind the step: {exc}")], t0)
        rec.targets = bs.targets
        skip = self.skip(bs)
        if skip:
            self.say(f"{head}: skipped ({skip})", "dim")
            self.register(bs, None)
            rec.status = "skipped"
            rec.results.append({"host": "", "status": "skipped", "message": skip})
            self.write(bs, "", "skipped", skip)
            return Done("skipped")
        targets = ", ".join(bs.targets) if bs.targets else "the swarm"
        self.say(f"{head}: {describe(bs, rc.secrets)} on {targets}", "bold")
        attempts = st.retries + 1
        for attempt in range(1, attempts + 1):
            outcomes = _step(self.lr, bs, rc)
            if attempt == attempts or not any(o[1] == "failed" for o in outcomes):
                break
            first = next(o for o in outcomes if o[1] == "failed")
            self.say(f"  attempt {attempt}/{attempts} failed ({mask(first[2], rc.secrets)[:200]}); again in "
                     f"{st.delay:g}s", "yellow")
            time.sleep(st.delay)
        self.register(bs, outcomes)
        return self.report(rec, bs, head, outcomes, t0)

    def skip(self, bs: BoundStep) -> str:
        """Why a step's `when:` skips it, or "" to run it."""
        when = bs.step.when
        if when is None or when is True:
            return ""
        if when is False:
            return "when: false"
        cond = condition_of(when)
        if cond is not None:
            holds, seen = conditions.holds(self.rc, cond, bs.targets, None)
            want = not when.strip().startswith("not ")
            return "" if holds == want else f"when: {when.strip()} does not hold ({seen})"
        unknown = [n for n in template.expression_names(template.whole(when) or when)
                   if n in self.rc.registered and self.rc.registered[n].get("dry_run")]
        if unknown:
            self.say(f"  when: {when} depends on {', '.join(unknown)}, known only in a real run; the dry run goes on "
                     "as if it holds", "dim")
            return ""
        try:
            holds = template.test(when, self.variables())
        except template.TemplateError as exc:
            raise_text = f"when: {when}: {exc.message or exc}"
            raise RunError(raise_text) from None
        return "" if holds else f"when: {when.strip()} is false"

    def register(self, bs: BoundStep, outcomes: list[Outcome] | None) -> None:
        name = bs.step.register_as
        if not name:
            return
        captured = self.rc.captured
        per: dict[str, Any] = {}
        for h in bs.targets:
            got = captured.get(h) if outcomes is not None else None
            if got is None:  # skipped, or a dry run: a dry run shows where the value will go
                shown = f"<{name}.{h}.stdout>" if outcomes is not None and self.rc.dry_run else ""
                got = {"rc": None, "stdout": shown, "stderr": "", "skipped": outcomes is None,
                       "dry_run": outcomes is not None and self.rc.dry_run}
            per[h] = got
        codes = [v["rc"] for v in per.values() if v["rc"] is not None]
        first = next(iter(per.values()), {"rc": None, "stdout": "", "stderr": ""})
        summary = {"rc": max(codes) if codes else None, "stdout": first["stdout"], "stderr": first["stderr"],
                   "failed": any(c != 0 for c in codes), "skipped": outcomes is None,
                   "dry_run": any(v.get("dry_run") for v in per.values())}
        self.rc.registered[name] = {**{k: v for k, v in summary.items() if k not in per}, **per}
        captured.clear()

    def report(self, rec: StepRecord, bs: BoundStep, head: str, outcomes: list[Outcome], t0: float) -> Done:
        rc = self.rc
        rec.seconds = time.monotonic() - t0
        outcomes = [(h, status, mask(message, rc.secrets)) for h, status, message in outcomes]
        failed = [o for o in outcomes if o[1] == "failed"]
        ignored = bool(failed) and bs.step.ignore_errors
        rec.status = "ignored" if ignored else "failed" if failed else "ok"
        for host, status, message in outcomes:
            if rc.dry_run and status == "ok" and not message.startswith("would"):
                message = f"would: {message}"
            if ignored and status == "failed":
                status, message = "ignored", f"{message} (ignore_errors: the run goes on)"
            rec.results.append({"host": host, "status": status, "message": message})
            style = {"ok": "green", "failed": "red"}.get(status, "yellow")
            self.say(f"  {host or 'swarm'}: {status}: {message}", style)
            self.write(bs, host, status, message)
        if failed and not ignored:
            reason = failed[0][2] if not failed[0][0] else f"{failed[0][0]}: {failed[0][2]}"
            return Done("failed", reason, self.unwritten)
        return Done(rec.status, "", self.unwritten)

    def write(self, bs: BoundStep, host: str, status: str, message: str) -> None:
        extra = {} if len(bs.where) == 2 and bs.where[0] == "steps" else {"part": bs.label}
        try:
            self.audit.write(self.rc.secrets, step=bs.step.name, index=bs.index, host=host or None,
                             start=self.began, end=now(), result=status, message=message, **extra)
        except (OSError, DnetError) as exc:
            self.unwritten = self.unwritten or str(exc)


def _step(lr: LoadedRunbook, bs: BoundStep, rc: RunContext) -> list[tuple[str, str, str]]:
    """One step's outcomes; any failure in it is an outcome (Ctrl-C propagates)."""
    rc.hosts = []
    if (bs.index > 1 or bs.where != ("steps", 0)) and not rc.dry_run:
        rc.refresh()  # the step before (or the step a rescue follows) may have changed what the hosts report
    down = [h for h in bs.targets if h in rc.session.host_errors] if needs_target(bs) else []
    if down:
        return [(h, "failed", f"unreachable: {rc.session.host_errors[h]}") for h in down] + [
            (h, "skipped", "another target is unreachable") for h in bs.targets if h not in down]
    try:
        return _batches(lr, bs, rc)
    except (RunError, DnetError) as exc:
        return [("", "failed", str(exc))]
    except Exception as exc:  # a step's own failure, whatever raised it
        return [("", "failed", f"{type(exc).__name__}: {exc}")]


def _batches(lr: LoadedRunbook, bs: BoundStep, rc: RunContext) -> list[tuple[str, str, str]]:
    st = bs.step
    own = st.action is not None and actions.ACTIONS[st.action].batches_itself
    serial = None if own else bs.serial
    groups = [bs.targets[i:i + serial] for i in range(0, len(bs.targets), serial)] if serial else [bs.targets]
    out: list[tuple[str, str, str]] = []
    for n, group in enumerate(groups):
        if len(groups) > 1:
            rc.log(f"  batch {n + 1}/{len(groups)}: {', '.join(group)}")
        rc.hosts = group
        if st.kind == "shell":
            got = actions.shell(rc, group, bs.text, st.timeout)
        elif st.kind == "pause":
            got = rc.pause(bs.text)
        elif st.kind == "python":
            got = actions.python(rc, group, bs.text, lr.path)
        else:
            got = actions.run_action(rc, st.action or "", group, bs.args, bs.serial)
        out += got
        if any(o[1] == "failed" for o in got):
            out += [(h, "skipped", "an earlier batch failed") for g in groups[n + 1:] for h in g]
            break
    return out


def resume_command(runbook: str, inventory: str, given: dict[str, str], secret: set[str], dry_run: bool = False,
                   param_file: str | None = None) -> Callable[[int], str]:
    """The command that resumes at a step. Secret values are left out (never written as text): the note after it
    names them, to be given again with --param-file, -p or at the prompt."""
    def cmd(index: int) -> str:
        parts = ["dnet", "run", runbook, "-i", inventory]
        if param_file:
            parts += ["--param-file", param_file]
        for k, v in given.items():
            if k not in secret:
                parts += ["-p", f"{k}={v}"]
        parts += ["--from", str(index)] + (["--dry-run"] if dry_run else [])
        again = sorted(k for k in given if k in secret)
        note = (f"  (give the secret parameter{'s' if len(again) > 1 else ''} {', '.join(again)} again: "
                "--param-file FILE, or at the prompt)") if again else ""
        return shlex.join(parts) + note
    return cmd
