"""`dnet doctor`: known causes of swarm networking trouble, read from the real hosts before or after apply."""
from __future__ import annotations

import sys

import click

from dnet.cli.common import (
    EXIT_ERROR,
    accept_option,
    command_logger,
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
from dnet.doctor import FEATURES, examine
from dnet.output import row, show, table
from dnet.session import open_session

COLOURS = {"error": "red", "warning": "yellow", "info": "cyan"}


@click.command("doctor")
@inventory_option
@json_option
@read_limit_option
@accept_option
@quiet_option
@verbose_option
def command(inventory: str, as_json: bool, limit: str | None, accept_new_host_keys: bool, quiet: bool,
            verbose: bool) -> None:
    """Find known causes of trouble on the hosts (kernel, ports, MTU, addresses, clocks); exit 1 on any error."""
    loaded = load_inventory(inventory, quiet, connect=True)
    log = log_to(quiet or as_json)
    with open_session(loaded, accept_new_host_keys, log, command_logger(verbose), limit_hosts(loaded, limit)) as s:
        kernel: dict[str, dict[str, str]] = {}
        found = examine(s, kernel)
    if as_json:
        print_json({"findings": [f.public() for f in found], "kernel": kernel,
                    "summary": {k: sum(f.severity == k for f in found) for k in COLOURS}})
    else:
        k = table(out, "kernel", "host", *(f"{name} ({use})" for name, use in FEATURES.items()))
        for h, features in kernel.items():
            row(k, h, *(styled(v, "green" if v == "yes" else "red" if v == "no" else "") for v in features.values()))
        show(out, k)
        if found:
            t = table(out, "doctor", "severity", "hosts", "finding", "evidence", "fix")
            for f in found:
                row(t, styled(f.severity, COLOURS[f.severity]), ", ".join(f.hosts), f.what, "; ".join(f.evidence),
                    f.fix)
            show(out, t)
        counts = {k: sum(f.severity == k for f in found) for k in COLOURS}
        say(out, f"{counts['error']} errors, {counts['warning']} warnings, {counts['info']} notes"
            + ("" if found else ": nothing known to break swarm networking was found"))
    sys.exit(EXIT_ERROR if any(f.severity == "error" for f in found) else 0)
