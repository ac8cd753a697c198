"""`dnet trace`: the path a packet takes between two declared endpoints, read from the real hosts."""
from __future__ import annotations

import sys

import click

from dnet.cli.common import (
    EXIT_ERROR,
    accept_option,
    inventory_option,
    json_option,
    load_inventory,
    log_to,
    out,
    print_json,
    quiet_option,
    say,
    styled,
)
from dnet.output import row, show, table
from dnet.session import open_session
from dnet.trace import trace


@click.command("trace")
@inventory_option
@click.argument("src")
@click.argument("dst")
@json_option
@accept_option
@quiet_option
def command(inventory: str, src: str, dst: str, as_json: bool, accept_new_host_keys: bool, quiet: bool) -> None:
    """Show the path from SRC to DST[:PORT] hop by hop (SRC: a container, task, service, host or operator)."""
    loaded = load_inventory(inventory, quiet, connect=True)
    with open_session(loaded, accept_new_host_keys, log_to(quiet or as_json)) as s:
        hops = trace(s, src, dst)
    reached = all(h.ok for h in hops)
    if as_json:
        print_json({"from": src, "to": dst, "reached": reached, "hops": [h.public() for h in hops]})
    else:
        t = table(out, f"trace {src} -> {dst}", "#", "where", "what", "evidence")
        for n, h in enumerate(hops, 1):
            row(t, str(n), h.where, styled(h.what, "" if h.ok else "red"), h.evidence)
        show(out, t)
        say(out, "the path is complete" if reached else styled("the path stops at the hop in red", "red"))
    sys.exit(0 if reached else EXIT_ERROR)
