"""Entry point: the click group and error handling (never a traceback)."""
from __future__ import annotations

import os
import sys

import click

from dnet import __version__
from dnet.cli import converge_cmds, lab, run, schema, show, tunnel, validate, verify
from dnet.cli.common import EXIT_ERROR, err, say
from dnet.errors import DnetError, InventoryError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="dnet")
def cli() -> None:
    """Declare, apply and prove Docker networking across many servers.

    Exit codes: 0 success; 1 error (invalid inventory, failed host or
    check); 2 usage error, or changes pending (plan --detailed-exitcode);
    130 interrupted.
    """


for command in (validate.command, show.command, lab.group, converge_cmds.plan_cmd, converge_cmds.apply_cmd,
                converge_cmds.destroy_cmd, verify.command, run.command, schema.command, tunnel.command):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI, turning every dnet error into a calm message and exit code."""
    try:
        code = cli.main(args=argv, prog_name="dnet", standalone_mode=False)
    except InventoryError as exc:
        for p in exc.problems:
            click.echo(str(p), err=True)
        sys.exit(EXIT_ERROR)
    except DnetError as exc:
        say(err, f"error: {exc}")
        sys.exit(EXIT_ERROR)
    except click.exceptions.Abort:
        say(err, "aborted")
        sys.exit(130)
    except click.ClickException as exc:  # usage errors exit 2, as click does
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        say(err, "interrupted")
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("DNET_DEBUG"):
            raise
        say(err, f"dnet: internal error: {type(exc).__name__}: {exc} (set DNET_DEBUG=1 for a traceback and "
                 "report it)")
        sys.exit(EXIT_ERROR)
    sys.exit(code if isinstance(code, int) else 0)
