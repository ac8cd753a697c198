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
from dnet.session import open_session
from dnet.verify import report, verify
from dnet.verify.model import Check


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
@limit_option
@accept_option
@quiet_option
@verbose_option
def command(inventory: str, as_json: bool, junit_path: str | None, discover: bool, limit: str | None,
            accept_new_host_keys: bool, quiet: bool, verbose: bool) -> None:
    """Probe every derived and declared path; exit 0 only when every check holds."""
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
        result = verify(s, log)
        if discover:
            mark(result.checks, found)
    checks, hints, seconds = result.checks, result.hints, result.seconds
    failed = [c for c in checks if not c.ok]
    if junit_path:
        report.junit(checks, junit_path, seconds)
    if as_json:
        data = report.as_json(checks, hints, seconds, result.findings)
        data["unreachable"] = s.host_errors
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
    if failed or s.host_errors:
        sys.exit(EXIT_ERROR)
    if not checks:
        say(err, "no checks could be derived from this inventory")
