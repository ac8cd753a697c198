"""`dnet lab`: make, inspect and remove multi-host labs."""
from __future__ import annotations

import os
import time
from pathlib import Path

import click
from rich.table import Table

from dnet.cli.common import err, json_option, out, print_json
from dnet.errors import DnetError
from dnet.lab import dind, output
from dnet.lab.state import LabState, all_labs

name_option = click.option("--name", default="lab", show_default=True, help="Lab name.")


def log(msg: str) -> None:
    err.print(f"[dim]lab[/dim] {msg}", highlight=False)


@click.group("lab")
def group() -> None:
    """Reproducible multi-host labs: Docker-in-Docker nodes or Vagrant machines."""


@group.command("up")
@name_option
@click.option("--nodes", default=3, show_default=True, type=click.IntRange(1, 200))
@click.option("--provider", type=click.Choice(["docker", "vagrant"]), default="docker", show_default=True)
@click.option("--bare", is_flag=True, help="Nodes without a Docker engine (to test engine installation).")
@click.option("--subnet", default="192.168.77.0/24", show_default=True,
              help="Lab network (upstream at .2, nodes from .11).")
@click.option("--with-example", "with_example", is_flag=True, help="Pair the lab hosts with inventories/example.yml.")
@click.option("--example", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Inventory whose networks and workloads --with-example uses.")
@click.option("-o", "--output", "output_path", type=click.Path(dir_okay=False), default=None,
              help="Where to write the lab's inventory (default inventories/NAME.yml).")
def up(name: str, nodes: int, provider: str, bare: bool, subnet: str, with_example: bool, example: Path | None,
       output_path: str | None) -> None:
    """Start a lab and write an inventory for it."""
    start = time.monotonic()
    if provider == "vagrant":
        from dnet.lab import vagrant

        state = vagrant.up(name, nodes, subnet, bare, log)
    else:
        state = dind.up(name, nodes, subnet, bare, log)
    text = output.inventory(state, (example or output.EXAMPLE) if with_example else None)
    path = output_path or os.path.join("inventories", f"{name}.yml")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)
    state.inventory = os.path.abspath(path)
    state.save()
    log(f"lab '{name}' is up in {time.monotonic() - start:.1f}s; inventory: {path}")
    out.print(path, markup=False)


@group.command("down")
@name_option
def down(name: str) -> None:
    """Remove the lab: exactly what it created, nothing else."""
    try:
        state = LabState.load(name)
    except DnetError:
        state = None
    if state and state.provider == "vagrant":
        from dnet.lab import vagrant

        vagrant.down(state, log)
        return
    dind.down(name, log)


@group.command("status")
@click.option("--name", default=None, help="Only this lab (default: every lab).")
@json_option
def status(name: str | None, as_json: bool) -> None:
    """List labs and their nodes."""
    rows = [r for lab in ([name] if name else all_labs()) for r in dind.status(lab)]
    if as_json:
        print_json(rows)
        return
    t = Table(title="labs")
    for col in ("lab", "node", "role", "address", "state", "container"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["lab"], r["node"], r["role"], r["address"], r["state"], r["container"])
    out.print(t)


@group.command("ssh", context_settings={"ignore_unknown_options": True})
@name_option
@click.argument("node")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def ssh(name: str, node: str, command: tuple[str, ...]) -> None:
    """Log in to a lab node (or run COMMAND there) with the lab's key."""
    state = LabState.load(name)
    nodes = {n.name: n for n in [*state.nodes, *([state.upstream] if state.upstream else [])]}
    if node not in nodes:
        raise DnetError(f"lab '{name}' has no node '{node}'; it has {', '.join(nodes)}")
    n = nodes[node]
    args = ["ssh", "-i", str(state.key), "-o", f"UserKnownHostsFile={state.known_hosts}", "-o",
            "StrictHostKeyChecking=yes",
            "-o", "IdentitiesOnly=yes", "-p", str(n.ssh_port), f"root@{n.address}", *command]
    os.execvp("ssh", args)
