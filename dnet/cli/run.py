"""`dnet run RUNBOOK`: run a runbook's steps on the inventory's hosts."""
from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import click

from dnet.cli.common import (
    EXIT_ERROR,
    accept_option,
    command_logger,
    err,
    inventory_option,
    json_option,
    load_inventory,
    log_to,
    out,
    print_json,
    quiet_option,
    say,
    styled,
    verbose_option,
)
from dnet.lock import Lock, hosts_locked
from dnet.runbook import RunContext, bind, execute, find, load, parse_params
from dnet.runbook.actions import Actions
from dnet.runbook.audit import Audit, default_path
from dnet.runbook.run import resume_command, start_index
from dnet.session import open_session

SHIPPED = Path(__file__).resolve().parent.parent / "files" / "runbooks"


@click.command("run")
@click.argument("runbook")
@inventory_option
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE", help="A runbook parameter (repeat).")
@click.option("--dry-run", is_flag=True, help="Say what each step would do; change nothing.")
@click.option("--from", "start", metavar="STEP", help="Start at this step (number or name), e.g. to resume.")
@click.option("--yes", is_flag=True, help="Do not ask before running.")
@click.option("--break-lock", is_flag=True, help="Take over the hosts' dnet lock even if another run holds it.")
@click.option("--audit-log", type=click.Path(dir_okay=False), help="Where to append the audit log "
              "(default DNET_AUDIT_LOG, else ~/.local/share/dnet/audit.log).")
@json_option
@accept_option
@quiet_option
@verbose_option
def command(runbook: str, inventory: str, params: tuple[str, ...], dry_run: bool, start: str | None, yes: bool,
            break_lock: bool, audit_log: str | None, as_json: bool, accept_new_host_keys: bool, quiet: bool,
            verbose: bool) -> None:
    """Run RUNBOOK (a file, or the name of one in ./playbooks or shipped with dnet) step by step.

    Prints each step, its targets and result; stops at the first failed step and prints the command that resumes
    with --from. Every result is appended to the audit log as a JSON line.
    """
    t0 = time.monotonic()
    loaded = load_inventory(inventory, quiet, connect=True)
    lr = load(find(runbook, [Path("playbooks"), SHIPPED]))
    given = parse_params(params)
    values, steps = bind(lr, loaded.model, given)
    first = start_index(steps, start)
    secret = {k for k, p in lr.book.params.items() if p.secret}
    if not dry_run and not yes:
        if not sys.stdin.isatty():
            raise click.UsageError(f"running runbook {lr.book.name} needs confirmation: pass --yes (or --dry-run)")
        if not click.confirm(f"run runbook {lr.book.name} ({len(steps) - first + 1} steps)?", default=False):
            raise click.Abort()
    log = log_to(quiet or as_json)
    shown = {k: ("***" if k in secret else v) for k, v in values.items()}
    audit = Audit(Path(audit_log) if audit_log else default_path(), lr.book.name, lr.path, shown, dry_run)

    def tell(text: str, style: str) -> None:
        if not as_json:
            say(out, styled(text, style))

    lock = None if dry_run else Lock(f"dnet run {lr.book.name}")
    with open_session(loaded, accept_new_host_keys, log, command_logger(verbose), read_facts=False, lock=lock) as s, \
            (contextlib.nullcontext() if lock is None else hosts_locked(s.transports, lock, log, break_lock)):
        step_log = log if as_json or quiet else (lambda m: say(out, styled(m, "dim")))  # steps' detail on stdout
        rc = RunContext(s, values, dry_run, step_log, secrets=tuple(str(values[k]) for k in secret), stale=True)
        rc.actions = Actions(rc)
        for h in s.host_errors:
            tell(f"unreachable: {h}: {s.host_errors[h]}", "red")
        result = execute(lr, steps, rc, audit, tell, first, resume_command(runbook, inventory, given, secret))
    seconds = time.monotonic() - t0
    if as_json:
        print_json({"runbook": lr.book.name, "file": lr.path, "params": shown, "dry_run": dry_run,
                    "steps": [r.public() for r in result.steps], "failed_at": result.failed_at,
                    "reason": result.reason, "resume": result.resume, "audit_log": str(audit.path),
                    "unreachable": s.host_errors, "seconds": round(seconds, 2)})
    elif result.failed_at:
        say(out, styled(f"stopped at step {result.failed_at}: {result.reason}", "red"))
        say(out, f"fix the cause, then resume with: {result.resume}")
    else:
        ran = sum(1 for r in result.steps if r.status == "ok")
        say(out, styled(f"runbook {lr.book.name}: {ran} steps " + ("checked (dry run, nothing changed)" if dry_run
                                                                   else "done") + f" in {seconds:.1f}s", "green"))
    if not as_json and not quiet:
        say(err, styled(f"audit log: {audit.path}", "dim"))
    sys.exit(EXIT_ERROR if result.failed_at else 0)
