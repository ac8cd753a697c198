"""`dnet validate`: check an inventory and report file:line:col problems."""
from __future__ import annotations

import click

from dnet.cli.common import inventory_option, load_inventory, out


@click.command("validate")
@inventory_option
def command(inventory: str) -> None:
    """Check an inventory; print FILE:LINE:COL: message per problem."""
    loaded = load_inventory(inventory)
    m = loaded.model
    out.print(f"{inventory}: valid ({len(m.hosts)} hosts, {len(m.networks)} networks, "
              f"{len(m.services)} services, {len(m.containers)} containers, {len(m.forwards)} forwards)", markup=False)
