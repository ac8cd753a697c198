"""`dnet graph`: draw the topology (hosts, networks, containers, services, ports, forwards)."""
from __future__ import annotations

import click

from dnet.cli.common import accept_option, inventory_option, load_inventory, log_to, out, quiet_option, say
from dnet.graph import dot, render
from dnet.inventory.resolve import hosts
from dnet.session import open_session


@click.command("graph")
@inventory_option
@click.option("-o", "--output", "output_path", required=True, type=click.Path(dir_okay=False),
              help="FILE.svg, FILE.png (rendered with Graphviz) or FILE.dot.")
@click.option("--no-connect", is_flag=True, help="Draw from the inventory alone (services as one box each).")
@accept_option
@quiet_option
def command(inventory: str, output_path: str, no_connect: bool, accept_new_host_keys: bool, quiet: bool) -> None:
    """Draw the topology as SVG, PNG or DOT: hosts, networks, containers and tasks, published ports, forwards."""
    loaded = load_inventory(inventory, quiet, connect=not no_connect)
    if no_connect:
        text = dot(loaded.model, hosts(loaded.model), {})
    else:
        with open_session(loaded, accept_new_host_keys, log_to(quiet)) as s:
            text = dot(loaded.model, s.specs, s.facts)
    render(text, output_path)
    say(out, output_path)
