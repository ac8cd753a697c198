"""Run a bound runbook step by step: print each step, its targets and results; stop at the first failure with the
command that resumes; append every result to the audit log."""
from __future__ import annotations

import contextlib
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dnet.errors import DnetError
from dnet.runbook import actions
from dnet.runbook.audit import Audit, now
from dnet.runbook.conditions import CONDITIONS, ConditionArgs
from dnet.runbook.context import RunContext, RunError
from dnet.runbook.load import BoundStep, LoadedRunbook
from dnet.runbook.model import REF
from dnet.transport.base import mask

Say = Callable[[str, str], None]  # (text, style)


@dataclass
class StepRecord:
    index: int
    name: str
    kind: str
    targets: list[str]
    status: str = "pending"  # ok | failed | skipped
    seconds: float = 0.0
    results: list[dict[str, str]] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "kind": self.kind, "targets": self.targets,
                "status": self.status, "seconds": round(self.seconds, 2), "results": self.results}


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
    what = {"action": f"action {st.action}", "shell": f"shell: {bs.text}", "python": f"python {bs.text}"}[st.kind]
    shell_text = (st.shell or "") + str(st.args.get("command") or "")
    raw = sorted({m[1] for m in REF.finditer(shell_text) if m[2] == "raw"})
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
    """Run the steps from `start`. Ctrl-C (or SIGTERM) ends the run after recording it: the audit line says
    `interrupted`, and the result names the hosts the step was working on."""
    records: list[StepRecord] = []
    result = RunResult(records)
    for bs in steps:
        rec = StepRecord(bs.index, bs.step.name, bs.step.kind, bs.targets)
        records.append(rec)
        if bs.index < start:
            rec.status = "skipped"
            say(f"[{bs.index}/{len(steps)}] {bs.step.name}: skipped (--from {start})", "dim")
            continue
        targets = ", ".join(bs.targets) if bs.targets else "the swarm"
        say(f"[{bs.index}/{len(steps)}] {bs.step.name}: {describe(bs, rc.secrets)} on {targets}", "bold")
        t0, began = time.monotonic(), now()
        try:
            outcomes = _step(lr, bs, rc)
        except KeyboardInterrupt:
            rec.status, rec.seconds = "interrupted", time.monotonic() - t0
            result.interrupted, result.failed_at = True, bs.index
            result.in_flight = list(rc.hosts) or list(bs.targets) or list(rc.session.transports)
            result.reason = f"interrupted during step {bs.index} ({bs.step.name})"
            result.resume = resume(bs.index) if resume else ""
            with contextlib.suppress(OSError, DnetError):
                audit.write(rc.secrets, step=bs.step.name, index=bs.index, host=None, start=began, end=now(),
                            result="interrupted", message=f"interrupted while working on "
                                                          f"{', '.join(result.in_flight) or 'the swarm'}")
            return result
        rec.seconds = time.monotonic() - t0
        outcomes = [(h, status, mask(message, rc.secrets)) for h, status, message in outcomes]
        failed = [o for o in outcomes if o[1] == "failed"]
        rec.status = "failed" if failed else "ok"
        unwritten = ""
        for host, status, message in outcomes:
            if rc.dry_run and status == "ok" and not message.startswith("would"):
                message = f"would: {message}"
            rec.results.append({"host": host, "status": status, "message": message})
            style = {"ok": "green", "failed": "red"}.get(status, "yellow")
            say(f"  {host or 'swarm'}: {status}: {message}", style)
            try:
                audit.write(rc.secrets, step=bs.step.name, index=bs.index, host=host or None, start=began,
                            end=now(), result=status, message=message)
            except (OSError, DnetError) as exc:
                unwritten = unwritten or str(exc)
        if failed:
            result.failed_at = bs.index
            result.reason = failed[0][2] if not failed[0][0] else f"{failed[0][0]}: {failed[0][2]}"
            result.resume = resume(bs.index) if resume else ""
        elif unwritten:  # the hosts changed but no record says so: stop before anything else changes
            result.failed_at = bs.index
            result.reason = (f"step {bs.index} ({bs.step.name}) completed, but the audit log could not be written "
                             f"({unwritten}); the run stops here so that nothing else happens unrecorded")
            result.resume = resume(bs.index + 1) if resume and bs.index < len(steps) else ""
        if failed or unwritten:
            for later in steps[bs.index:]:
                records.append(StepRecord(later.index, later.step.name, later.step.kind, later.targets, "skipped"))
            break
    return result


def _step(lr: LoadedRunbook, bs: BoundStep, rc: RunContext) -> list[tuple[str, str, str]]:
    """One step's outcomes; any failure in it is an outcome (Ctrl-C propagates)."""
    rc.hosts = []
    if bs.index > 1 and not rc.dry_run:
        rc.refresh()  # the step before may have changed what the hosts report
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
