"""`dnet plan`, `dnet apply`, `dnet destroy`: converge hosts to the inventory, showing the plan first."""
from __future__ import annotations

import sys
import time
from typing import Any

import click
from rich.table import Table

from dnet import converge
from dnet.cli.common import (
    EXIT_CHANGES,
    EXIT_ERROR,
    err,
    inventory_option,
    json_option,
    load_inventory,
    out,
    print_json,
)
from dnet.plan.model import Plan

accept_option = click.option("--accept-new-host-keys", is_flag=True,
                             help="Record unknown SSH host keys (like OpenSSH accept-new); changed keys are refused.")
quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress lines.")


def _log(quiet: bool) -> converge.Log:
    return (lambda m: None) if quiet else (lambda m: err.print(f"[dim]{m}[/dim]", highlight=False, markup=True))


def show_plan(plan: Plan, host_errors: dict[str, str]) -> None:
    """Print a plan as a table, with blocking errors and warnings after it."""
    if plan.changes:
        t = Table(title="plan")
        for col in ("host", "kind", "name", "action", "detail"):
            t.add_column(col)
        for c in plan.ordered():
            t.add_row(c.host, c.kind, c.name, c.action, c.detail)
        out.print(t)
    for h, e in host_errors.items():
        out.print(f"[red]unreachable[/red] {h}: {e}", highlight=False)
    for e in plan.errors:
        out.print(f"[red]error[/red] {e}", highlight=False)
    for wmsg in plan.warnings:
        out.print(f"[yellow]warning[/yellow] {wmsg}", highlight=False)
    if not plan.changes and not plan.errors:
        out.print("No changes: the hosts match the inventory.")
    elif plan.changes:
        out.print(f"{len(plan.changes)} changes on {len({c.host for c in plan.changes})} hosts.")


def _public(s: converge.Session, plan: Plan) -> dict[str, Any]:
    return {**plan.public(), "unreachable": s.host_errors}


@click.command("plan")
@inventory_option
@json_option
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 no changes, 2 changes pending, 1 error.")
@accept_option
@quiet_option
def plan_cmd(inventory: str, as_json: bool, detailed_exitcode: bool, accept_new_host_keys: bool, quiet: bool) -> None:
    """Show what apply would change, touching nothing."""
    loaded = load_inventory(inventory)
    s = converge.open_session(loaded, accept_new_host_keys, _log(quiet or as_json))
    try:
        plan = converge.make_plan(s)
    finally:
        s.close()
    print_json(_public(s, plan)) if as_json else show_plan(plan, s.host_errors)
    if plan.errors or s.host_errors:
        sys.exit(EXIT_ERROR)
    if detailed_exitcode and plan.changes:
        sys.exit(EXIT_CHANGES)


def _confirm(yes: bool, what: str) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise click.UsageError(f"{what} needs confirmation: pass --yes")
    if not click.confirm(f"{what}?", default=False):
        raise click.Abort()


def _report(outcomes: list[converge.Outcome], services: dict[str, str], as_json: bool, s: converge.Session,
            plan: Plan, seconds: float) -> int:
    failed = [o for o in outcomes if o.status != "ok"]
    if as_json:
        print_json({"changes": [o.public() for o in outcomes], "unreachable": s.host_errors, "errors": plan.errors,
                    "services": services, "seconds": round(seconds, 2),
                    "summary": {"changed": len(outcomes) - len(failed), "failed": len(failed)}})
    else:
        if outcomes:
            t = Table(title="applied")
            for col in ("host", "kind", "name", "action", "status", "result"):
                t.add_column(col)
            for o in outcomes:
                color = {"ok": "green", "failed": "red", "skipped": "yellow"}[o.status]
                t.add_row(o.change.host, o.change.kind, o.change.name, o.change.action,
                          f"[{color}]{o.status}[/{color}]", o.message)
            out.print(t)
        for h, e in s.host_errors.items():
            out.print(f"[red]unreachable[/red] {h}: {e}", highlight=False)
        for name, state in services.items():
            out.print(f"service {name}: {state} replicas running", highlight=False)
        out.print(f"{len(outcomes) - len(failed)} changed, {len(failed)} failed or skipped, "
                  f"{len(s.host_errors)} unreachable in {seconds:.1f}s.")
    return EXIT_ERROR if failed or s.host_errors else 0


@click.command("apply")
@inventory_option
@click.option("--yes", is_flag=True, help="Do not ask before changing hosts.")
@json_option
@accept_option
@quiet_option
def apply_cmd(inventory: str, yes: bool, as_json: bool, accept_new_host_keys: bool, quiet: bool) -> None:
    """Make the hosts match the inventory (plan first, then apply)."""
    loaded = load_inventory(inventory)
    start = time.monotonic()
    log = _log(quiet or as_json)
    s = converge.open_session(loaded, accept_new_host_keys, log)
    try:
        plan = converge.make_plan(s)
        if not as_json:
            show_plan(plan, {})
        if plan.errors:
            if as_json:
                print_json(_public(s, plan))
            sys.exit(EXIT_ERROR)
        if plan.changes:
            _confirm(yes, f"apply {len(plan.changes)} changes")
        outcomes = converge.apply(s, plan, log)
        services = converge.wait_services(s) if any(c.kind == "service" for c in plan.changes) else {}
    finally:
        s.close()
    sys.exit(_report(outcomes, services, as_json, s, plan, time.monotonic() - start))


@click.command("destroy")
@inventory_option
@click.option("--yes", is_flag=True, help="Do not ask.")
@click.option("--leave-swarm", is_flag=True, help="Also make every host leave the swarm.")
@json_option
@accept_option
@quiet_option
def destroy_cmd(inventory: str, yes: bool, leave_swarm: bool, as_json: bool, accept_new_host_keys: bool,
                quiet: bool) -> None:
    """Remove everything dnet created (label dnet.managed=true) and nothing else."""
    loaded = load_inventory(inventory)
    start = time.monotonic()
    log = _log(quiet or as_json)
    s = converge.open_session(loaded, accept_new_host_keys, log)
    try:
        plan = converge.destroy_plan(s, leave_swarm)
        if not as_json:
            show_plan(plan, {})
        if plan.changes:
            _confirm(yes, f"remove {len(plan.changes)} dnet-managed things")
        outcomes = converge.apply(s, plan, log)
        for h in converge.wait_tasks_gone(s):
            s.host_errors[h] = "task containers of removed services are still there after 60s"
    finally:
        s.close()
    sys.exit(_report(outcomes, {}, as_json, s, plan, time.monotonic() - start))
