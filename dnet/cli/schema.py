"""`dnet schema`: the inventory's (or a runbook's) JSON Schema, so editors complete and check those files."""
from __future__ import annotations

import json
from typing import Any

import click

from dnet.inventory.schema import json_schema


def runbook_schema() -> dict[str, Any]:
    """A runbook file's JSON Schema (draft 2020-12)."""
    from dnet.runbook.model import Runbook

    schema = Runbook.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "dnet runbook",
            **{k: v for k, v in schema.items() if k != "title"}}


@click.command("schema")
@click.option("--runbook", is_flag=True, help="A runbook file's schema instead of the inventory's.")
@click.option("-q", "--quiet", is_flag=True, help="Accepted for symmetry; schema prints only the schema.")
def command(runbook: bool, quiet: bool) -> None:
    """Print the inventory's JSON Schema (for the YAML language server: see docs/schema.md)."""
    click.echo(json.dumps(runbook_schema() if runbook else json_schema(), indent=2))
