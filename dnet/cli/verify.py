"""`dnet verify`: prove every path the inventory implies, scope by scope, and explain failures."""
from __future__ import annotations

import sys

import click

from dnet.cli.common import (
    EXIT_ERROR,
    accept_option,
    command_logger,
    err,
    inventory_option,
    json_option,
    limit_hosts,
    load_inventory,
    log_to,
    out,
    print_json,
    quiet_option,
    read_limit_option,
    say,
    styled,
    verbose_option,
)
from dnet.session import open_session
from dnet.verify import report, verify
from dnet.verify.baseline import compare
from dnet.verify.baseline import load as load_baseline
from dnet.verify.model import Check


def parse_scopes(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    """--scope 3 or 3,4: the scopes to probe (1-5)."""
    if value is None:
        return None
    try:
        scopes = [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        scopes = []
    if not scopes or any(not 1 <= x <= 5 for x in scopes):
        raise click.BadParameter(f"'{value}': give scope numbers 1-5, comma-separated (e.g. 3,4)")
    return sorted(set(scopes))


def mark(checks: list[Check], names: set[str]) -> None:
    """Tag each check whose source or destination is a discovered workload (or one of its tasks)."""
    for c in checks:
        found = [x for x in (c.src, c.dst.split(":")[0]) if x in names or x.rsplit(".", 1)[0] in names]
        if found:
            c.tags["discovered"] = ",".join(dict.fromkeys(found))


@click.command("verify")
@inventory_option
@json_option
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False), help="Also write a JUnit XML report.")
@click.option("--discover", is_flag=True,
              help="Also probe the services and containers the hosts run that the inventory does not declare "
                   "(stacks, hand-made); marked * (JSON: discovered). Changes nothing.")
@click.option("--scope", "scopes", callback=parse_scopes, metavar="N[,N]",
              help="Only these scopes: 1 inside a container, 2 same host, 3 across hosts, 4 out to the internet, "
                   "5 declared checks.")
@click.option("--from-operator/--no-operator", "from_operator", default=True, show_default=True,
              help="Probe published ports and forwards from this machine (as clients would), or from another "
                   "inventory host when this machine reaches the hosts only over SSH.")
@click.option("--baseline", type=click.Path(dir_okay=False), metavar="FILE",
              help="An earlier `verify --json`: fail only on checks that held there (or are new); known failures "
                   "are shown as such.")
@read_limit_option
@accept_option
@quiet_option
@verbose_option
def command(inventory: str, as_json: bool, junit_path: str | None, discover: bool, scopes: list[int] | None,
            from_operator: bool, baseline: str | None, limit: str | None, accept_new_host_keys: bool, quiet: bool,
            verbose: bool) -> None:
    """Probe every derived and declared path; exit 0 only when every check holds.

    With --baseline FILE, exit 0 when no check that held there fails (known failures are shown as known)."""
    before = load_baseline(baseline) if baseline else None
    loaded = load_inventory(inventory, quiet, connect=True)
    log = log_to(quiet or as_json)
    found: set[str] = set()
    with open_session(loaded, accept_new_host_keys, log, command_logger(verbose), limit_hosts(loaded, limit)) as s:
        if discover:
            from dnet.brownfield.discover import merge

            merged, found, notes = merge(s.loaded.model, s.facts, s.specs)
            s.loaded = s.loaded._replace(model=merged)
            log(f"discovered {len(found)}: {', '.join(sorted(found)) or 'nothing undeclared'}")
            for n in notes:
                log(f"discover: {n}")
        result = verify(s, log, scopes, operator=from_operator)
        if discover:
            mark(result.checks, found)
    checks, hints, seconds = result.checks, result.hints, result.seconds
    failed = [c for c in checks if not c.ok]
    counts = compare(checks, before) if before is not None else None
    if junit_path:
        report.junit(checks, junit_path, seconds)
    if as_json:
        data = report.as_json(checks, hints, seconds, result.findings)
        data["unreachable"] = s.host_errors
        if counts is not None:
            data["baseline"] = counts
        print_json(data)
    else:
        report.findings(out, result.findings, checks)
        report.tables(out, checks)
        report.matrix(out, checks)
        if any("discovered" in c.tags for c in checks):
            say(out, "* discovered: runs on the hosts, not declared in the inventory")
        for h, e in s.host_errors.items():
            say(out, styled("unreachable", "red"), f" {h}: {e}")
        for hint in hints:
            say(out, styled("likely cause", "yellow"), f": {hint}")
        say(out, f"{len(checks) - len(failed)} passed, {len(failed)} failed in {seconds:.1f}s")
        if counts is not None:
            say(out, f"against {baseline}: {counts['new_failures']} new failures, {counts['known_failures']} known "
                     f"(failed there too), {counts['fixed']} fixed")
    if (counts["new_failures"] if counts is not None else failed) or s.host_errors:
        sys.exit(EXIT_ERROR)
    if not checks:
        say(err, "no checks could be derived from this inventory")
