"""Shared CLI pieces: the inventory option, output helpers, logging options, exit codes."""
from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from dnet.errors import DnetError, InventoryError
from dnet.inventory import Loaded, load, missing_keys
from dnet.inventory.limit import select
from dnet.output import err, out, say, styled

if TYPE_CHECKING:  # the transport pulls in paramiko and fabric: imported only by commands that connect
    from dnet.transport import Transport

__all__ = [
    "EXIT_CHANGES",
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_USAGE",
    "FORMAT_VERSION",
    "accept_option",
    "command_logger",
    "err",
    "inventory_option",
    "json_option",
    "limit_hosts",
    "limit_option",
    "load_inventory",
    "log_to",
    "out",
    "print_json",
    "quiet_option",
    "say",
    "styled",
    "verbose_option",
]

EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_USAGE = 0, 1, 2, 2
FORMAT_VERSION = 1  # bumped when a --json shape changes incompatibly; documented in docs/json.md
F = TypeVar("F", bound=Callable[..., Any])

inventory_option = click.option(
    "-i", "--inventory", "inventory", envvar="DNET_INVENTORY", required=True,
    type=click.Path(), help="Inventory YAML file (or set DNET_INVENTORY).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress lines or warnings; results only.")
verbose_option = click.option("-v", "--verbose", is_flag=True, help="Show every command run on every host.")
PATTERN_HELP = ("an Ansible host pattern: hosts, groups, managers/workers, all, wildcards (node*), ~regex, joined "
                "by , or :, with &PATTERN to intersect and !PATTERN to exclude, e.g. 'all:!node3'")
limit_option = click.option("--limit", "limit", default=None, metavar="PATTERN",
                            help="Only these hosts are connected to and changed (swarm-wide work goes through any "
                                 f"reachable manager); {PATTERN_HELP}.")
read_limit_option = click.option("--limit", "limit", default=None, metavar="PATTERN",
                                 help="Only these hosts are connected to and examined; nothing is changed; "
                                      f"{PATTERN_HELP}.")
accept_option = click.option("--accept-new-host-keys", is_flag=True,
                             help="Record unknown SSH host keys (like OpenSSH accept-new); changed keys are refused.")


def limit_hosts(loaded: Loaded, spec: str | None) -> list[str] | None:
    """Resolve --limit against the inventory (a usage error when it names nothing known)."""
    if spec is None:
        return None
    try:
        return select(loaded.model, spec)
    except DnetError as exc:
        raise click.BadParameter(str(exc).removeprefix("--limit: "), param_hint="--limit") from None


def load_inventory(path: str, quiet: bool = False, connect: bool = False) -> Loaded:
    """Load an inventory; warnings go to stderr, errors propagate as InventoryError.

    With connect (the commands that log in to hosts), an identity_file that does not exist is an error at its line.
    """
    loaded = load(path)
    if connect and (missing := missing_keys(loaded)):
        raise InventoryError(missing)
    if not quiet:
        for w in loaded.warnings:
            click.echo(str(w), err=True)
    return loaded


def log_to(quiet: bool) -> Callable[[str], None]:
    """Progress lines on stderr (dim on a terminal), or nothing."""
    if quiet:
        return lambda m: None
    return lambda m: say(err, styled(m, "dim"))


def command_logger(verbose: bool) -> Callable[[Transport], Transport] | None:
    """With -v, wrap each host's transport so that every command is shown on stderr as `host$ command`."""
    if not verbose:
        return None
    from dnet.transport.record import Logged

    return lambda t: Logged(t, lambda m: say(err, styled(m, "cyan")))


def print_json(data: dict[str, Any]) -> None:
    """Write JSON to stdout (no colour, stable key order), tagged with the format version."""
    sys.stdout.write(json.dumps({"format_version": FORMAT_VERSION, **data}, indent=2, default=str) + "\n")
