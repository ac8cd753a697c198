"""`dnet validate`: check an inventory and report file:line:col problems."""
from __future__ import annotations

import sys
from typing import Any

import click

from dnet.cli.common import EXIT_ERROR, inventory_option, json_option, out, print_json, quiet_option, say
from dnet.errors import InventoryError, Problem
from dnet.inventory import load, missing_keys


def _problem(p: Problem) -> dict[str, Any]:
    return {"file": p.file, "line": p.line, "col": p.col, "severity": p.severity, "message": p.message}


@click.command("validate")
@inventory_option
@json_option
@quiet_option
def command(inventory: str, as_json: bool, quiet: bool) -> None:
    """Check an inventory; print FILE:LINE:COL: message per problem (every problem of the file in one run)."""
    try:
        loaded = load(inventory)
    except InventoryError as exc:
        if not as_json:
            raise
        errors = [p for p in exc.problems if p.severity == "error"]
        print_json({"file": inventory, "valid": False, "problems": [_problem(p) for p in exc.problems],
                    "summary": {"errors": len(errors), "warnings": len(exc.problems) - len(errors)}})
        sys.exit(EXIT_ERROR)
    loaded = loaded._replace(warnings=sorted(loaded.warnings + missing_keys(loaded, "warning")))
    m = loaded.model
    counts = {"hosts": len(m.hosts), "networks": len(m.networks), "services": len(m.services),
              "containers": len(m.containers), "forwards": len(m.forwards)}
    if as_json:
        print_json({"file": inventory, "valid": True, "problems": [_problem(p) for p in loaded.warnings],
                    "summary": {"errors": 0, "warnings": len(loaded.warnings), **counts}})
        return
    if not quiet:
        for w in loaded.warnings:
            click.echo(str(w), err=True)
        say(out, f"{inventory}: valid (" + ", ".join(f"{n} {k if n != 1 else k[:-1]}" for k, n in counts.items()) + ")")
