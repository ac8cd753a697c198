"""Run a bound runbook step by step: print each step, its targets and results; stop at the first failure with the
command that resumes; append every result to the audit log."""
from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dnet.errors import DnetError
from dnet.runbook import actions
from dnet.runbook.audit import Audit, now
from dnet.runbook.context import RunContext, RunError
from dnet.runbook.load import BoundStep, LoadedRunbook
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


def describe(bs: BoundStep) -> str:
    st = bs.step
    what = {"action": f"action {st.action}", "shell": f"shell: {bs.text}", "python": f"python {bs.text}"}[st.kind]
    return what + (f", serial {bs.serial}" if bs.serial else "")


def execute(lr: LoadedRunbook, steps: list[BoundStep], rc: RunContext, audit: Audit, say: Say,
            start: int = 1, resume: Callable[[int], str] | None = None) -> RunResult:
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
        say(f"[{bs.index}/{len(steps)}] {bs.step.name}: {describe(bs)} on {targets}", "bold")
        t0, began = time.monotonic(), now()
        if bs.index > start and not rc.dry_run:
            rc.refresh()  # the step before may have changed what the hosts report
        try:
            outcomes = _batches(lr, bs, rc)
        except (RunError, DnetError) as exc:
            outcomes = [("", "failed", str(exc))]
        except Exception as exc:  # a step's own failure, whatever raised it
            outcomes = [("", "failed", f"{type(exc).__name__}: {exc}")]
        rec.seconds = time.monotonic() - t0
        failed = [o for o in outcomes if o[1] == "failed"]
        rec.status = "failed" if failed else "ok"
        for host, status, message in outcomes:
            message = mask(message, rc.secrets)
            if rc.dry_run and status == "ok" and not message.startswith("would"):
                message = f"would: {message}"
            rec.results.append({"host": host, "status": status, "message": message})
            style = {"ok": "green", "failed": "red"}.get(status, "yellow")
            say(f"  {host or 'swarm'}: {status}: {message}", style)
            audit.write(rc.secrets, step=bs.step.name, index=bs.index, host=host or None, start=began, end=now(),
                        result=status, message=message)
        if failed:
            result.failed_at = bs.index
            result.reason = failed[0][2] if not failed[0][0] else f"{failed[0][0]}: {failed[0][2]}"
            result.resume = resume(bs.index) if resume else ""
            for later in steps[bs.index:]:
                records.append(StepRecord(later.index, later.step.name, later.step.kind, later.targets, "skipped"))
            break
    return result


def _batches(lr: LoadedRunbook, bs: BoundStep, rc: RunContext) -> list[tuple[str, str, str]]:
    st = bs.step
    serial = bs.serial if st.kind != "action" or st.action != "engine-restart" else None
    groups = [bs.targets[i:i + serial] for i in range(0, len(bs.targets), serial)] if serial else [bs.targets]
    out: list[tuple[str, str, str]] = []
    for n, group in enumerate(groups):
        if len(groups) > 1:
            rc.log(f"  batch {n + 1}/{len(groups)}: {', '.join(group)}")
        rc.hosts = group
        if st.kind == "shell":
            got = actions.shell(rc, group, bs.text, st.timeout)
        elif st.kind == "python":
            got = actions.python(rc, group, bs.text, Path(lr.path).parent)
        else:
            got = actions.action(rc, bs, group)
        out += got
        if any(o[1] == "failed" for o in got):
            out += [(h, "skipped", "an earlier batch failed") for g in groups[n + 1:] for h in g]
            break
    return out


def resume_command(runbook: str, inventory: str, given: dict[str, str], secret: set[str]) -> Callable[[int], str]:
    def cmd(index: int) -> str:
        parts = ["dnet", "run", runbook, "-i", inventory]
        for k, v in given.items():
            parts += ["-p", f"{k}={'<secret>' if k in secret else v}"]
        return shlex.join([*parts, "--from", str(index)])
    return cmd
