"""Shared CLI pieces: the inventory option, output helpers, exit codes."""
from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console

from dnet.inventory import Loaded, load

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2

def _width(stream: object) -> int | None:
    return None if getattr(stream, "isatty", lambda: False)() else 200


out = Console(highlight=False, width=_width(sys.stdout))
err = Console(stderr=True, highlight=False, width=_width(sys.stderr))

inventory_option = click.option(
    "-i", "--inventory", "inventory", envvar="DNET_INVENTORY", required=True,
    type=click.Path(dir_okay=False), help="Inventory YAML file (or set DNET_INVENTORY).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")


def load_inventory(path: str, quiet: bool = False) -> Loaded:
    """Load an inventory; warnings go to stderr, errors propagate as InventoryError."""
    loaded = load(path)
    if not quiet:
        for w in loaded.warnings:
            err.print(str(w), markup=False)
    return loaded


def print_json(data: Any) -> None:
    """Write JSON to stdout (no colour, stable key order)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
