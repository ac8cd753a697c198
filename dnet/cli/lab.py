"""`dnet lab`: make, inspect and remove multi-host labs."""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import click

from dnet import api
from dnet.cli.common import json_option, log_to, out, print_json, quiet_option, say
from dnet.lab.fault import Faults
from dnet.lab.provider import PROVIDERS
from dnet.lab.state import LabState, all_labs
from dnet.output import row, show, table

name_option = click.option("--name", default="lab", show_default=True, help="Lab name.")


def logger(quiet: bool) -> Callable[[str], None]:
    show = log_to(quiet)
    return lambda msg: show(f"lab {msg}")


@click.group("lab")
def group() -> None:
    """Reproducible multi-host labs: Docker-in-Docker nodes, Vagrant machines or QEMU VMs."""


@group.command("up")
@name_option
@click.option("--nodes", default=3, show_default=True, type=click.IntRange(1, 200), help="How many nodes.")
@click.option("--provider", type=click.Choice(list(PROVIDERS)), default="docker", show_default=True,
              help="docker: Docker-in-Docker nodes on this machine's engine; vagrant: Vagrant machines (its docker "
                   "provider here); qemu: VMs with their own kernel under QEMU (routing mesh, encrypted overlays, "
                   "netem); libvirt: the same VMs made by Vagrant with vagrant-libvirt.")
@click.option("--accel", type=click.Choice(["auto", "kvm", "tcg"]), default="auto", show_default=True,
              help="How qemu and libvirt VMs run: KVM where a probe shows it runs natively, else QEMU's emulator "
                   "(TCG).")
@click.option("--bare", is_flag=True, help="Nodes without a Docker engine (to test engine installation).")
@click.option("--subnet", default="192.168.77.0/24", show_default=True,
              help="Lab network (upstream at .2, nodes from .11).")
@click.option("--with-example", "with_example", is_flag=True,
              help="Pair the lab hosts with the example inventory's networks and workloads.")
@click.option("--example", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Inventory whose networks and workloads --with-example uses.")
@click.option("-o", "--output", "output_path", type=click.Path(dir_okay=False), default=None,
              help="Where to write the lab's inventory (default: inventory.yml in the lab's state folder).")
@quiet_option
def up(name: str, nodes: int, provider: str, accel: str, bare: bool, subnet: str, with_example: bool,
       example: Path | None, output_path: str | None, quiet: bool) -> None:
    """Start a lab and write an inventory for it; print the inventory's path."""
    log = logger(quiet)
    start = time.monotonic()
    lab = api.lab_up(name, nodes, provider, (example or True) if with_example else False, bare, subnet,
                     output_path, log, accel)
    path = str(lab.inventory) if output_path else str(lab.inventory.resolve())
    log(f"lab '{name}' is up in {time.monotonic() - start:.1f}s; inventory: {path}")
    say(out, path)


@group.command("down")
@name_option
@quiet_option
def down(name: str, quiet: bool) -> None:
    """Remove the lab: exactly what it created, nothing else."""
    api.lab_down(name, logger(quiet))


@group.command("status")
@click.option("--name", default=None, help="Only this lab (default: every lab).")
@json_option
@quiet_option
def status(name: str | None, as_json: bool, quiet: bool) -> None:
    """List labs and their nodes."""
    from dnet.lab import provider as providers

    providers.get("docker")  # needs the docker SDK (what `lab` runs on): said here even when no lab exists
    rows = []
    for lab in [name] if name else all_labs():
        state = providers.load(lab)
        rows += providers.of(state).status(lab, state)
    if as_json:
        print_json({"nodes": rows})
        return
    t = table(out, "labs", "lab", "node", "role", "address", "state", "container")
    for r in rows:
        row(t, r["lab"], r["node"], r["role"], r["address"], r["state"], r["container"])
    show(out, t)


@group.command("ssh", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@name_option
@click.argument("node")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@quiet_option
def ssh(name: str, node: str, command: tuple[str, ...], quiet: bool) -> None:
    """Log in to a lab node (or run COMMAND there) with the lab's key."""
    from dnet.lab.provider import ssh_args

    os.execvp("ssh", ssh_args(LabState.load(name), node, list(command), quiet))


@group.group("fault")
@name_option
@click.pass_context
def fault(ctx: click.Context, name: str) -> None:
    """Break the network inside a lab's nodes (partition, drop, delay, loss, mtu) and heal it."""
    ctx.obj = name


def say_unless(quiet: bool, text: str) -> None:
    """A fault command's one line of result: -q leaves only the exit code."""
    if not quiet:
        say(out, text)


def _faults(name: str) -> Faults:
    from dnet.lab.provider import faults

    return faults(name)


@fault.command("partition")
@click.argument("a")
@click.argument("b")
@quiet_option
@click.pass_obj
def fault_partition(name: str, a: str, b: str, quiet: bool) -> None:
    """Drop every packet between nodes A and B (both ways)."""
    say_unless(quiet, _faults(name).partition(a, b).what)


@fault.command("drop")
@click.argument("node")
@click.argument("port", metavar="PROTO/PORT")
@quiet_option
@click.pass_obj
def fault_drop(name: str, node: str, port: str, quiet: bool) -> None:
    """Drop packets to PROTO/PORT (e.g. tcp/8080) on NODE, published ports included."""
    say_unless(quiet, _faults(name).drop(node, port).what)


@fault.command("delay")
@click.argument("node")
@click.argument("ms", type=click.IntRange(1, 60000))
@quiet_option
@click.pass_obj
def fault_delay(name: str, node: str, ms: int, quiet: bool) -> None:
    """Delay every packet NODE sends by MS milliseconds (needs netem in the kernel)."""
    say_unless(quiet, _faults(name).delay(node, ms).what)


@fault.command("loss")
@click.argument("node")
@click.argument("percent", type=click.FloatRange(0, 100))
@quiet_option
@click.pass_obj
def fault_loss(name: str, node: str, percent: float, quiet: bool) -> None:
    """Lose PERCENT of the packets NODE sends (needs netem in the kernel)."""
    say_unless(quiet, _faults(name).loss(node, percent).what)


@fault.command("mtu")
@click.argument("node")
@click.argument("size", type=click.IntRange(576, 9216))
@quiet_option
@click.pass_obj
def fault_mtu(name: str, node: str, size: int, quiet: bool) -> None:
    """Lower NODE's MTU to SIZE: larger packets sent to it vanish (a path MTU black hole)."""
    say_unless(quiet, _faults(name).mtu(node, size).what)


@fault.command("heal")
@click.argument("node", required=False)
@quiet_option
@click.pass_obj
def fault_heal(name: str, node: str | None, quiet: bool) -> None:
    """Remove every fault from NODE, or from every node of the lab."""
    say_unless(quiet, f"healed {', '.join(_faults(name).heal(node))}")
