"""`dnet plan`, `dnet apply`, `dnet destroy`: converge hosts to the inventory, showing the plan first."""
from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable
from typing import Any

import click

from dnet import converge
from dnet.cli.common import (
    EXIT_CHANGES,
    EXIT_ERROR,
    accept_option,
    command_logger,
    inventory_option,
    json_option,
    limit_hosts,
    limit_option,
    load_inventory,
    log_to,
    out,
    print_json,
    quiet_option,
    say,
    styled,
    verbose_option,
)
from dnet.execute import Executed, execute
from dnet.inventory.override import override
from dnet.lock import Lock, hosts_locked
from dnet.output import row, show, table
from dnet.plan import saved, target
from dnet.plan.model import Plan
from dnet.session import Session

break_lock_option = click.option("--break-lock", is_flag=True,
                                 help="Take over the hosts' dnet lock even if another run holds it (when that run is "
                                      "dead).")
prune_nodes_option = click.option("--prune-nodes", is_flag=True,
                                  help="Remove swarm nodes the inventory does not list (drain, demote, node rm).")


target_option = click.option("--target", "targets", multiple=True, metavar="KIND.NAME",
                             help="Only this resource's changes and what it needs (repeat), e.g. service.web; other "
                                  "pending changes are listed as not targeted.")
set_option = click.option("--set", "sets", multiple=True, metavar="PATH=VALUE",
                          help="Override an inventory value for this run (repeat), e.g. services.web.replicas=2; "
                               "checked like the file.")


def open_session(inventory: str, accept: bool, quiet: bool, verbose: bool, limit: str | None,
                 lock: Lock | None = None, sets: tuple[str, ...] = ()) -> Session:
    loaded = load_inventory(inventory, quiet, connect=True)
    loaded, changed = override(loaded, parse_sets(sets))
    s = converge.open_session(loaded, accept, log_to(quiet), command_logger(verbose), limit_hosts(loaded, limit),
                              lock=lock)
    s.overrides = changed
    return s


def parse_sets(sets: tuple[str, ...] | list[str]) -> dict[str, str]:
    out = {}
    for item in sets:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise click.UsageError(f"--set {item}: write --set PATH=VALUE, e.g. services.web.replicas=2")
        out[key.strip()] = value
    return out


def make_plan(s: Session, prune_nodes: bool, targets: tuple[str, ...] | list[str]) -> Plan:
    plan = converge.make_plan(s, prune_nodes, target.parse(list(targets), s.loaded.model))
    plan.overrides = dict(s.overrides)
    return plan


def show_plan(plan: Plan, host_errors: dict[str, str]) -> None:
    """Print a plan as a table, with blocking errors and warnings after it."""
    for path, change in plan.overrides.items():
        say(out, styled("override", "yellow"), f" {path}: {change} (for this run; the inventory file says otherwise)")
    if plan.changes:
        t = table(out, "plan", "host", "kind", "name", "action", "detail")
        for c in plan.ordered():
            row(t, c.host, c.kind, c.name, str(c.action), c.detail)
        show(out, t)
    if plan.untargeted:
        t = table(out, f"not targeted (left pending by --target {', '.join(plan.targets)})", "host", "kind", "name",
                  "action", "detail")
        for c in sorted(plan.untargeted, key=lambda c: c.phase):
            row(t, c.host, c.kind, c.name, str(c.action), c.detail)
        show(out, t)
    for h, e in host_errors.items():
        say(out, styled("unreachable", "red"), f" {h}: {e}")
    for e in plan.errors:
        say(out, styled("error", "red"), f" {e}")
    for wmsg in plan.warnings:
        say(out, styled("warning", "yellow"), f" {wmsg}")
    if not plan.changes and not plan.errors:
        say(out, "No changes on the reachable hosts; the others could not be read." if host_errors
            else "No changes: the hosts match the inventory.")
    elif plan.changes:
        say(out, f"{len(plan.changes)} changes on {len({c.host for c in plan.changes})} hosts.")


def list_commands(s: Session, plan: Plan, as_json: bool) -> list[dict[str, Any]]:
    """Print (or return for JSON) the exact commands apply would run, change by change."""
    listed = converge.commands(s, plan)
    if as_json:
        return [{**c.public(), "commands": [{"host": h, "command": cmd} for h, cmd in cmds]} for c, cmds in listed]
    for c, cmds in listed:
        say(out, styled(f"# {c.host}: {c.kind} {c.name} {c.action}", "bold"))
        for h, cmd in cmds:
            say(out, f"{h}$ {cmd}")
    return []


def _public(s: Session, plan: Plan) -> dict[str, Any]:
    return {**plan.public(), "unreachable": s.host_errors}


@click.command("plan")
@inventory_option
@json_option
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 no changes (adoptions, which only record ownership, "
              "do not count), 2 changes pending, 1 error.")
@click.option("--show-commands", is_flag=True, help="Also list the exact commands apply would run on each host.")
@click.option("-o", "--out", "out_file", type=click.Path(dir_okay=False), metavar="PLAN.json",
              help="Save the plan, with a fingerprint of the hosts it was made from, for apply --plan.")
@prune_nodes_option
@target_option
@set_option
@limit_option
@accept_option
@quiet_option
@verbose_option
def plan_cmd(inventory: str, as_json: bool, detailed_exitcode: bool, show_commands: bool, out_file: str | None,
             prune_nodes: bool, targets: tuple[str, ...], sets: tuple[str, ...], limit: str | None,
             accept_new_host_keys: bool, quiet: bool, verbose: bool) -> None:
    """Show what apply would change, touching nothing."""
    with open_session(inventory, accept_new_host_keys, quiet or as_json, verbose, limit, sets=sets) as s:
        plan = make_plan(s, prune_nodes, targets)
        if out_file and not plan.errors:
            saved.save(out_file, inventory, {"prune_nodes": prune_nodes, "targets": list(targets),
                                             "sets": list(sets), "limit": limit}, s.facts, plan)
        if as_json:
            data = _public(s, plan)
            if show_commands:
                data["changes"] = list_commands(s, plan, True)
            print_json(data)
        else:
            show_plan(plan, s.host_errors)
            if show_commands and plan.changes and not plan.errors:
                list_commands(s, plan, False)
            if out_file and not plan.errors:
                say(out, f"Saved to {out_file}: dnet apply -i {shlex.quote(inventory)} --plan {shlex.quote(out_file)} "
                         "carries out exactly this plan, or nothing if the hosts change first.")
    if plan.errors or s.host_errors:
        sys.exit(EXIT_ERROR)
    if detailed_exitcode and plan.pending:
        sys.exit(EXIT_CHANGES)


def _confirm(yes: bool, what: str) -> Callable[[Plan], None]:
    def ask(plan: Plan) -> None:
        if yes:
            return
        if not sys.stdin.isatty():
            raise click.UsageError(f"{what.format(n=len(plan.changes))} needs confirmation: pass --yes")
        if not click.confirm(f"{what.format(n=len(plan.changes))}?", default=False):
            raise click.Abort()
    return ask


def _report(r: Executed, as_json: bool) -> int:
    if as_json:
        print_json({"changes": [o.public() for o in r.outcomes], "unreachable": r.unreachable, "errors": r.errors,
                    "services": r.services, "warnings": r.warnings, "seconds": round(r.seconds, 2),
                    "summary": {"changed": len(r.outcomes) - len(r.failed), "failed": len(r.failed)}})
    else:
        if r.outcomes:
            t = table(out, "applied", "host", "kind", "name", "action", "status", "result")
            for o in r.outcomes:
                color = {"ok": "green", "failed": "red", "skipped": "yellow"}[o.status]
                row(t, o.change.host, o.change.kind, o.change.name, str(o.change.action), styled(o.status, color),
                    o.message)
            show(out, t)
        for h, e in r.unreachable.items():
            say(out, styled("unreachable", "red"), f" {h}: {e}")
        for e in r.errors:
            say(out, styled("error", "red"), f" {e}")
        for name, state in r.services.items():
            say(out, f"service {name}: {state} replicas running")
        for w in r.warnings:
            say(out, styled("warning", "yellow"), f" {w}")
        say(out, r.summary())
    return 0 if r.ok else EXIT_ERROR


def _finish(r: Executed, s: Session, as_json: bool) -> None:
    """A refused plan prints as a plan (it was shown already without --json); an execution as its result."""
    if not r.applied:
        if as_json:
            print_json(_public(s, r.plan))
        sys.exit(EXIT_ERROR)
    sys.exit(_report(r, as_json))


@click.command("apply")
@inventory_option
@click.option("--yes", is_flag=True, help="Do not ask before changing hosts.")
@click.option("--serial", type=click.IntRange(1, 1000), default=1, show_default=True,
              help="Swarm members whose engine restarts at once (managers stay within raft quorum).")
@json_option
@click.option("--plan", "plan_file", type=click.Path(dir_okay=False), metavar="PLAN.json",
              help="Carry out a plan saved by dnet plan -o, exactly; refused (nothing changed) if the inventory or the "
                   "hosts changed since.")
@prune_nodes_option
@target_option
@set_option
@limit_option
@break_lock_option
@accept_option
@quiet_option
@verbose_option
def apply_cmd(inventory: str, yes: bool, serial: int, as_json: bool, plan_file: str | None, prune_nodes: bool,
              targets: tuple[str, ...], sets: tuple[str, ...], limit: str | None, break_lock: bool,
              accept_new_host_keys: bool, quiet: bool, verbose: bool) -> None:
    """Make the hosts match the inventory (plan first, then apply)."""
    start = time.monotonic()
    lock = Lock("dnet apply")
    earlier = None
    if plan_file:
        if prune_nodes or targets or sets or limit:
            raise click.UsageError("--plan carries the options it was made with: drop --prune-nodes, --target, --set "
                                   "and --limit")
        earlier = saved.read(plan_file)
        opts = saved.options_of(earlier)
        prune_nodes, targets, sets, limit = (bool(opts.get("prune_nodes")), tuple(opts.get("targets") or ()),
                                             tuple(opts.get("sets") or ()), opts.get("limit"))
    with open_session(inventory, accept_new_host_keys, quiet or as_json, verbose, limit, lock, sets) as s, \
            hosts_locked(s.transports, lock, log_to(quiet or as_json), break_lock):
        plan = make_plan(s, prune_nodes, targets)
        if earlier is not None:
            _refuse_drift(earlier, inventory, s, plan, as_json)
        if not as_json:
            show_plan(plan, {})
        r = execute(s, plan, log_to(quiet or as_json), serial=serial, confirm=_confirm(yes, "apply {n} changes"),
                    started=start)
    _finish(r, s, as_json)


def _refuse_drift(earlier: dict[str, Any], inventory: str, s: Session, plan: Plan, as_json: bool) -> None:
    """Stop (exit 1, nothing changed) when the saved plan no longer holds, listing why."""
    why = saved.drift(earlier, inventory, s.facts, plan)
    if not why:
        return
    if as_json:
        print_json({"error": "the saved plan no longer holds; nothing was changed", "drift": why})
    else:
        say(out, styled("refused", "red"), " the saved plan no longer holds; nothing was changed:")
        for line in why:
            say(out, f"  {line}")
        say(out, "Make a new plan (dnet plan -o FILE), review it, and apply that.")
    sys.exit(EXIT_ERROR)


@click.command("destroy")
@inventory_option
@click.option("--yes", is_flag=True, help="Do not ask.")
@click.option("--leave-swarm", is_flag=True, help="Also make every host leave the swarm.")
@click.option("--volumes", is_flag=True, help="Also remove the named volumes dnet's workloads made (their data is "
              "deleted); without it they are kept.")
@json_option
@limit_option
@break_lock_option
@accept_option
@quiet_option
@verbose_option
def destroy_cmd(inventory: str, yes: bool, leave_swarm: bool, volumes: bool, as_json: bool, limit: str | None,
                break_lock: bool, accept_new_host_keys: bool, quiet: bool, verbose: bool) -> None:
    """Remove everything dnet created (label dnet.managed=true) and nothing else."""
    start = time.monotonic()
    lock = Lock("dnet destroy")
    with open_session(inventory, accept_new_host_keys, quiet or as_json, verbose, limit, lock) as s, \
            hosts_locked(s.transports, lock, log_to(quiet or as_json), break_lock):
        plan = converge.destroy_plan(s, leave_swarm, volumes)
        if not as_json:
            show_plan(plan, {})
        r = execute(s, plan, log_to(quiet or as_json), destroying=True,
                    confirm=_confirm(yes, "remove {n} dnet-managed things"), started=start)
    _finish(r, s, as_json)
