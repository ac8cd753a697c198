"""Entry point: the click group and error handling (never a traceback).

Commands are imported only when they run (`--version` and `--help` import none of them), which keeps start-up
fast; the short help of each command is listed here and a test keeps it equal to the command's own.
"""
from __future__ import annotations

import atexit
import contextlib
import importlib
import os
import signal
import sys
from typing import Any

import click

from dnet import __version__
from dnet.errors import DnetError, Interrupted, InventoryError

EXIT_ERROR = 1
# name -> (module, attribute, short help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "validate": ("dnet.cli.validate", "command",
             'Check an inventory; print FILE:LINE:COL: message per problem (every problem of the file in one '
             'run).'),
    "show": ("dnet.cli.show", "command",
             'Show the resolved inventory: hosts with effective settings, networks, workloads.'),
    "lab": ("dnet.cli.lab", "group",
             'Reproducible multi-host labs: Docker-in-Docker nodes, Vagrant machines or QEMU VMs.'),
    "import": ("dnet.cli.importer", "command",
               "Write the inventory of the cluster the hosts run: hosts, swarm, networks, services, containers, "
               "forwards."),
    "plan": ("dnet.cli.converge_cmds", "plan_cmd",
             'Show what apply would change, touching nothing.'),
    "apply": ("dnet.cli.converge_cmds", "apply_cmd",
             'Make the hosts match the inventory (plan first, then apply).'),
    "destroy": ("dnet.cli.converge_cmds", "destroy_cmd",
             'Remove everything dnet created (label dnet.managed=true) and nothing else.'),
    "doctor": ("dnet.cli.doctor", "command",
               "Find known causes of trouble on the hosts (kernel, ports, MTU, addresses, clocks); exit 1 on any "
               "error."),
    "trace": ("dnet.cli.trace", "command",
              "Show the path from SRC to DST[:PORT] hop by hop (SRC: a container, task, service, host or operator)."),
    "graph": ("dnet.cli.graph", "command",
              "Draw the topology as SVG, PNG or DOT: hosts, networks, containers and tasks, published ports, "
              "forwards."),
    "report": ("dnet.cli.report", "command",
               "Write one self-contained HTML page: topology, doctor's findings, verify's findings and matrix."),
    "verify": ("dnet.cli.verify", "command",
               "Probe every derived and declared path; exit 0 only when every check holds."),
    "exec": ("dnet.cli.exec", "command",
             "Run COMMAND on the hosts in parallel; print each host's output prefixed by its name."),
    "run": ("dnet.cli.run", "command",
             'Run RUNBOOK (a file, or the name of one in ./playbooks or shipped with dnet) step by step.'),
    "schema": ("dnet.cli.schema", "command",
             "Print the inventory's JSON Schema (for the YAML language server: see docs/schema.md)."),
    "ssh-close": ("dnet.cli.sshclose", "command",
                  "Close the SSH connections kept open between runs (DNET_PERSIST) and stop their holder."),
    "tunnel": ("dnet.cli.tunnel", "command",
             'Forward 127.0.0.1:PORT here to TARGET over SSH, published or not; hold until Ctrl-C.'),
}


class LazyGroup(click.Group):
    """A group that imports a command's module only when that command is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        cmd: click.Command = getattr(importlib.import_module(module), attr)
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, _, short) in COMMANDS.items()])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="dnet")
@click.option("--forks", type=click.IntRange(1, 1000), metavar="N",
              help="Hosts worked on at once (connections, facts, changes; default 16, verify's probes 24). Also "
                   "DNET_FORKS.")
def cli(forks: int | None) -> None:
    """Declare, apply and prove Docker networking across many servers.

    Exit codes: 0 success; 1 error (invalid inventory, failed host or
    check); 2 usage error, or changes pending (plan --detailed-exitcode);
    130 interrupted.
    """
    if forks:
        os.environ["DNET_FORKS"] = str(forks)  # read where the work is spread: dnet.runner.forks


def _say(message: str) -> None:
    from dnet.output import err, say

    say(err, message)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM ends a run the way Ctrl-C does


def _interrupted(exc: BaseException | None) -> None:
    """Stop now: in-flight remote commands are abandoned (their SSH channels close with this process) and no new
    one starts; waiting for worker threads would wait for them."""
    _say("interrupted: commands in flight were abandoned and nothing new was started; run the command again to "
         "finish (apply converges from wherever the hosts are)")
    for line in exc.summary if isinstance(exc, Interrupted) else []:
        _say(line)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI, turning every dnet error into a calm message and exit code.

    As the `dnet` command (no argv given) it ends with a quick exit: atexit handlers run and output is flushed,
    but the interpreter's teardown, which frees every module's objects one by one, is skipped (0.1 to 0.15 s
    after an apply; the OS frees the process at once). With argv, it raises SystemExit as usual.
    """
    if argv is not None:
        _run(argv)
        return
    try:
        _run(None)
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    if code is not None and not isinstance(code, int):
        sys.stderr.write(f"{code}\n")
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more can be said
            stream.flush()
    os._exit(code or 0)


def _run(argv: list[str] | None) -> None:
    signal.signal(signal.SIGTERM, _terminate)
    try:
        code: Any = cli.main(args=argv, prog_name="dnet", standalone_mode=False)
    except InventoryError as exc:
        for p in exc.problems:
            click.echo(str(p), err=True)
        sys.exit(EXIT_ERROR)
    except DnetError as exc:
        _say(f"error: {exc}")
        sys.exit(EXIT_ERROR)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):  # click turns Ctrl-C (and our SIGTERM) into Abort
            _interrupted(exc.__cause__)
        _say("aborted")
        sys.exit(130)
    except click.ClickException as exc:  # usage errors exit 2, as click does
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt as exc:
        _interrupted(exc)
    except Exception as exc:
        if os.environ.get("DNET_DEBUG"):
            raise
        _say(f"dnet: internal error: {type(exc).__name__}: {exc} (set DNET_DEBUG=1 for a traceback and report it)")
        sys.exit(EXIT_ERROR)
    sys.exit(code if isinstance(code, int) else 0)
