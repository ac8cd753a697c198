"""`dnet run RUNBOOK`: run a runbook's steps on the inventory's hosts."""
from __future__ import annotations

import contextlib
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import click

from dnet.cli.common import (
    EXIT_ERROR,
    accept_option,
    command_logger,
    err,
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
from dnet.errors import DnetError, InventoryError
from dnet.inventory.schema import Inventory
from dnet.lock import Lock, hosts_locked
from dnet.output import row, show, table
from dnet.runbook import LoadedRunbook, RunContext, bind, execute, find, load, parse_params, template
from dnet.runbook.actions import Actions
from dnet.runbook.audit import Audit, default_path
from dnet.runbook.load import first_manager, pattern_hosts, read_param_file, walk
from dnet.runbook.model import python_file, substitute
from dnet.runbook.run import resume_command, start_index
from dnet.session import open_session

SHIPPED = Path(__file__).resolve().parent.parent / "files" / "runbooks"


@click.command("run", context_settings={"help_option_names": []})
@click.argument("runbook", required=False)
@click.option("-i", "--inventory", envvar="DNET_INVENTORY", type=click.Path(), metavar="PATH",
              help="Inventory YAML file (or set DNET_INVENTORY); not needed for --list, --check and --help.")
@click.option("--list", "list_books", is_flag=True, help="List the runbooks dnet finds (./playbooks, then dnet's own) "
              "with their descriptions.")
@click.option("--check", is_flag=True, help="Check RUNBOOK (every problem at FILE:LINE:COL) without an inventory "
              "or hosts.")
@click.option("-h", "--help", "show_help", is_flag=True, help="Show this message, or with RUNBOOK its parameters "
              "and steps, and exit.")
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE", help="A runbook parameter (repeat).")
@click.option("--param-file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Parameters from a YAML mapping (name: value), e.g. secrets kept off the command line; -p wins.")
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
def command(runbook: str | None, inventory: str | None, list_books: bool, check: bool, show_help: bool,
            params: tuple[str, ...], param_file: str | None, dry_run: bool, start: str | None, yes: bool,
            break_lock: bool, audit_log: str | None, as_json: bool, accept_new_host_keys: bool, quiet: bool,
            verbose: bool) -> None:
    """Run RUNBOOK (a file, or the name of one in ./playbooks or shipped with dnet) step by step.

    Prints each step, its targets and result; stops at the first failed step and prints the command that resumes
    with --from. Every result is appended to the audit log as a JSON line.
    """
    t0 = time.monotonic()
    ctx = click.get_current_context()
    if list_books:
        _list(as_json)
        return
    if runbook is None:
        if show_help:
            click.echo(ctx.get_help())
            return
        raise click.UsageError("give a RUNBOOK (a file, or a name from dnet run --list)")
    path = find(runbook, [Path("playbooks"), SHIPPED])
    lr = load(path, SHIPPED)
    named = "/" not in runbook and not runbook.endswith((".yml", ".yaml"))  # a name, not a path: it may be shadowed
    if show_help:
        _describe(lr, path)
        return
    if check:
        if as_json:
            print_json({"runbook": lr.book.name, "file": str(path), "valid": True, "steps": len(lr.book.steps)})
        else:
            n, k = len(lr.book.steps), len(lr.book.params)
            say(out, f"{path}: valid runbook {lr.book.name} ({n} step{'s' * (n != 1)}, {k} "
                     f"parameter{'s' * (k != 1)})")
        return
    if not inventory:
        raise click.UsageError("Missing option '-i' / '--inventory' (or set DNET_INVENTORY)")
    loaded = load_inventory(inventory, quiet, connect=True)
    if not quiet and not as_json:  # always say which file runs: ./playbooks may shadow dnet's own
        note = "" if not named or _shipped(path) else " (not the copy shipped with dnet)"
        say(err, styled(f"runbook: {path.resolve()}{note}", "yellow" if note else "dim"))
    cli_given = parse_params(params)
    from_file = read_param_file(param_file) if param_file else {}
    secret = {k for k, p in lr.book.params.items() if p.secret}
    cli_given.update(_prompted(lr, {**from_file, **cli_given}, secret))
    given = {**from_file, **cli_given}
    values, steps = bind(lr, loaded.model, given)
    first = start_index(steps, start)
    shown = {k: ("***" if k in secret else v) for k, v in values.items()}
    pyfiles = [f for st in lr.book.steps if st.python and (f := python_file(lr.path, st.python))]
    audit = Audit(Path(audit_log) if audit_log else default_path(), lr.book.name, lr.path, shown, dry_run, pyfiles)
    if not dry_run and not yes:
        if not sys.stdin.isatty():
            raise click.UsageError(f"running runbook {lr.book.name} needs confirmation: pass --yes (or --dry-run)")
        if not click.confirm(f"run runbook {lr.book.name} ({len(steps) - first + 1} steps)?", default=False):
            raise click.Abort()
    log = log_to(quiet or as_json)

    def tell(text: str, style: str) -> None:
        if not as_json:
            say(out, styled(text, style))

    secrets = tuple(str(values[k]) for k in secret)
    resume = resume_command(runbook, inventory, cli_given, secret, dry_run, param_file)
    lock = None if dry_run else Lock(f"dnet run {lr.book.name}")
    connect = _connect(lr, loaded.model, values)
    with open_session(loaded, accept_new_host_keys, log, command_logger(verbose), read_facts=False, lock=lock,
                      limit=connect) as s, \
            (contextlib.nullcontext() if lock is None else hosts_locked(s.transports, lock, log, break_lock)):
        s.limit = None  # connect: only chooses connections; steps still see the whole inventory
        for h in loaded.model.hosts:
            if h not in s.transports and h not in s.host_errors:
                s.host_errors[h] = "not connected: the runbook's connect: pattern leaves it out"
        step_log = log if as_json or quiet else (lambda m: say(out, styled(m, "dim")))  # steps' detail on stdout
        ask = (lambda m: click.prompt(m, default="", show_default=False, prompt_suffix=" ")) \
            if sys.stdin.isatty() and not yes and not as_json else None
        rc = RunContext(s, values, dry_run, step_log, secrets=secrets, stale=True, ask=ask, yes=yes,
                        runbook=lr.path)
        rc.actions = Actions(rc)
        for h in s.host_errors:
            tell(f"unreachable: {h}: {s.host_errors[h]}", "red")
        result = execute(lr, steps, rc, audit, tell, first, resume)
        left = [f"{h}: engine-restart drained it and may have left it drained: dnet run activate-node -i "
                f"{shlex.quote(inventory)} -p node={h}" for h in sorted(rc.drained)]
        if result.interrupted and lock is not None:  # commands may still run there: no other run may start yet
            lock.keep.update({h: f"step {result.failed_at} ({steps[(result.failed_at or 1) - 1].step.name}) was "
                                 "running there" for h in result.in_flight if h in s.transports})
    seconds = time.monotonic() - t0
    if as_json:
        print_json({"runbook": lr.book.name, "file": audit.file, "sha256": audit.sha256, "params": shown,
                    "dry_run": dry_run, "steps": [r.public() for r in result.steps], "failed_at": result.failed_at,
                    "interrupted": result.interrupted, "left": left,
                    "reason": result.reason, "resume": result.resume, "audit_log": str(audit.path),
                    "unreachable": s.host_errors, "seconds": round(seconds, 2)})
    elif result.interrupted:
        say(out, styled(f"interrupted at step {result.failed_at}: {result.reason}", "red"))
        for line in left:
            say(out, styled(f"  left: {line}", "yellow"))
        if lock is not None and lock.keep:
            say(out, f"  the lock stays on {', '.join(sorted(lock.keep))} (a command may still run there); once it "
                     "has ended, resume with --break-lock")
        say(out, f"resume with: {result.resume}")
    elif result.failed_at:
        say(out, styled(f"stopped at step {result.failed_at}: {result.reason}", "red"))
        if result.resume:
            say(out, f"fix the cause, then resume with: {result.resume}")
    else:
        ran = sum(1 for r in result.steps if r.status == "ok")
        say(out, styled(f"runbook {lr.book.name}: {ran} steps " + ("checked (dry run, nothing changed)" if dry_run
                                                                   else "done") + f" in {seconds:.1f}s", "green"))
    if not as_json and not quiet:
        say(err, styled(f"audit log: {audit.path}", "dim"))
    sys.exit(130 if result.interrupted else EXIT_ERROR if result.failed_at else 0)


def _connect(lr: LoadedRunbook, inv: Inventory, values: dict[str, Any]) -> list[str] | None:
    """The hosts the run connects to: the runbook's `connect:` pattern, else all."""
    if not lr.book.connect:
        return None
    try:
        return pattern_hosts(inv, template.plain(substitute(lr.book.connect, values)), first_manager(inv))
    except (DnetError, template.TemplateError) as exc:
        raise InventoryError([lr.at(("connect",), f"connect: {getattr(exc, 'message', None) or exc}")]) from None


def _candidates() -> list[tuple[str, Path]]:
    """(name, file) of every runbook `dnet run NAME` can find: ./playbooks first, then dnet's own."""
    seen: dict[str, Path] = {}
    for folder in (Path("playbooks"), SHIPPED):
        for f in sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")]) if folder.is_dir() else []:
            seen.setdefault(f.stem, f)
    return sorted(seen.items())


def _list(as_json: bool) -> None:
    rows = []
    for name, f in _candidates():
        try:
            desc, where = load(f, SHIPPED).book.description, "dnet" if _shipped(f) else str(f)
        except DnetError as exc:
            desc, where = f"not a valid runbook: {str(exc).splitlines()[0]}", str(f)
        rows.append({"name": name, "file": str(f.resolve()), "from": where, "description": desc})
    if as_json:
        print_json({"runbooks": rows})
        return
    t = table(out, "runbooks (dnet run NAME; ./playbooks first)", "name", "from", "description")
    for r in rows:
        row(t, r["name"], r["from"], r["description"])
    show(out, t)


def render(value: object) -> str:
    """A parameter value as a runbook writes it (true/false, not Python's True)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _describe(lr: LoadedRunbook, path: Path) -> None:
    """`dnet run NAME --help`: what the runbook is for, its parameters and its steps."""
    say(out, styled(f"runbook {lr.book.name}", "bold"), f" ({path.resolve()})")
    if lr.book.description:
        say(out, lr.book.description)
    t = table(out, "parameters (-p NAME=VALUE)", "name", "type", "default", "description")
    for name, p in lr.book.params.items():
        default = "(required)" if p.default is None else ("***" if p.secret else render(p.default))
        row(t, name, p.type + (" secret" if p.secret else ""), default, p.description or "-")
    show(out, t)
    t = table(out, "steps", "#", "name", "does", "hosts")
    for where, st in walk(lr.book):
        label = str(where[1] + 1) if where[0] == "steps" and len(where) == 2 else (
            f"{where[1] + 1}.{where[2]}.{where[3] + 1}" if len(where) == 4 else f"{where[0]}.{where[1] + 1}")
        does = {"action": f"action {st.action}", "shell": "shell", "python": f"python {st.python}",
                "pause": "pause"}[st.kind]
        extra = [f"when: {st.when}"] if st.when is not None else []
        extra += [k.replace("_", " ") for k in ("run_once", "ignore_errors") if getattr(st, k)]
        extra += [f"retries {st.retries}"] if st.retries else []
        extra += [f"register {st.register_as}"] if st.register_as else []
        row(t, label, st.name, does + (f" ({', '.join(extra)})" if extra else ""), st.hosts or "-")
    show(out, t)


def _shipped(path: Path) -> bool:
    """The runbook is dnet's own copy, or a file of the same name and the same bytes (the repository's playbooks/)."""
    own = SHIPPED / path.name
    return path.resolve().parent == SHIPPED or (own.is_file() and own.read_bytes() == path.read_bytes())


def _prompted(lr: LoadedRunbook, given: dict[str, str], secret: set[str]) -> dict[str, str]:
    """Ask for each secret parameter that has no value yet, when a terminal is attached (typed, never echoed)."""
    asked: dict[str, str] = {}
    for name, p in lr.book.params.items():
        if name in secret and name not in given and p.default is None and sys.stdin.isatty():
            asked[name] = click.prompt(f"{name}" + (f" ({p.description})" if p.description else ""),
                                       hide_input=True)
    return asked
