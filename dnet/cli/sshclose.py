"""`dnet ssh-close`: close the SSH connections the holder keeps between runs, and stop it."""
from __future__ import annotations

import json

import click

from dnet.transport import held


@click.command("ssh-close")
@click.option("--json", "as_json", is_flag=True,
              help="Print {\"closed\": N, \"running\": BOOL, \"openssh_masters\": M} as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing.")
def command(as_json: bool, quiet: bool) -> None:
    """Close the SSH connections kept open between runs (DNET_PERSIST) and stop their holder."""
    from dnet.transport import openssh

    stats = held.stats()
    running = held.close()
    count = int(stats["held"]) if stats else 0
    masters = openssh.close_all()  # DNET_TRANSPORT=openssh's ControlPersist masters
    if as_json:
        click.echo(json.dumps({"closed": count, "running": running, "openssh_masters": masters}))
    elif not quiet:
        click.echo(f"closed {count} held connection{'s' if count != 1 else ''}" if running
                   else "no connection holder was running")
        if masters:
            click.echo(f"closed {masters} OpenSSH master connection{'s' if masters != 1 else ''}")
