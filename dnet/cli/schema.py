"""`dnet schema`: the inventory's JSON Schema, so editors complete and check inventories."""
from __future__ import annotations

import json

import click

from dnet.inventory.schema import json_schema


@click.command("schema")
@click.option("-q", "--quiet", is_flag=True, help="Accepted for symmetry; schema prints only the schema.")
def command(quiet: bool) -> None:
    """Print the inventory's JSON Schema (for the YAML language server: see docs/schema.md)."""
    click.echo(json.dumps(json_schema(), indent=2))
