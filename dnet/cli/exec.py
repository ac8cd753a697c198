"""`dnet exec`: an ad-hoc command on the hosts in parallel, one result per host (Ansible's -m shell, pyinfra's exec)."""
from __future__ import annotations

import shlex
import sys

import click

from dnet.cli.common import (
    EXIT_ERROR,
    accept_option,
    command_logger,
    inventory_option,
    json_option,
    limit_hosts,
    load_inventory,
    log_to,
    out,
    print_json,
    quiet_option,
    say,
    styled,
    verbose_option,
)
from dnet.runner import parallel
from dnet.session import open_session
from dnet.transport.base import Result


def shell_command(words: tuple[str, ...]) -> str:
    """One word is a shell command as written (like ssh HOST 'CMD'); several are quoted one by one, so
    `dnet exec -- ls -l 'a b'` runs exactly that."""
    return words[0] if len(words) == 1 else shlex.join(words)


@click.command("exec")
@inventory_option
@json_option
@click.option("--limit", "limit", default="all", metavar="PATTERN", show_default=True,
              help="The hosts that run the command (an Ansible host pattern: all, node*, managers:!node3, ...).")
@click.option("--timeout", type=click.FloatRange(1, 86400), default=120, show_default=True,
              help="Seconds each host may take; a host that takes longer counts as failed (exit 124).")
@accept_option
@quiet_option
@verbose_option
@click.argument("words", nargs=-1, required=True, metavar="-- COMMAND...")
def command(inventory: str, as_json: bool, limit: str, timeout: float, accept_new_host_keys: bool, quiet: bool,
            verbose: bool, words: tuple[str, ...]) -> None:
    """Run COMMAND on the hosts in parallel; print each host's output prefixed by its name.

    Over the same SSH connections as every command, with no lock and no facts read. One word is a shell command
    as written; several are quoted one by one. Exit 1 when any host fails or is unreachable."""
    loaded = load_inventory(inventory, quiet, connect=True)
    chosen = limit_hosts(loaded, limit) or []  # --limit defaults to all, so never None here
    cmd = shell_command(words)
    log = log_to(quiet or as_json)
    with open_session(loaded, accept_new_host_keys, log, command_logger(verbose), chosen, read_facts=False) as s:
        hosts = [h for h in chosen if h in s.transports]
        results = {r.host: r for r in parallel(hosts, lambda h: s.transports[h].run(cmd, check=False,
                                                                                    timeout=timeout))}
    answers: dict[str, Result] = {h: r.value for h, r in results.items() if r.value is not None}
    errors = {**s.host_errors, **{h: r.error or "" for h, r in results.items() if r.value is None}}
    errors = {h: e for h, e in errors.items() if h in chosen}
    failed = sorted(h for h, a in answers.items() if a.code != 0)
    if as_json:
        print_json({"command": cmd, "hosts": {h: {"rc": a.code, "stdout": a.stdout, "stderr": a.stderr}
                                              for h, a in sorted(answers.items())},
                    "unreachable": errors,
                    "summary": {"ok": len(answers) - len(failed), "failed": len(failed), "unreachable": len(errors)}})
    else:
        width = max(len(h) for h in chosen)
        for h in chosen:  # inventory order, each host's output together
            a = answers.get(h)
            if a is None:
                say(out, styled(f"{h:<{width}} !", "red"), f" unreachable: {errors.get(h, 'not connected')}")
                continue
            for line in a.stdout.splitlines():
                say(out, f"{h:<{width}} | ", line)
            for line in a.stderr.splitlines():
                say(out, styled(f"{h:<{width}} ! ", "yellow"), line)
            if a.code != 0:
                say(out, styled(f"{h:<{width}} ! exit {a.code}", "red"))
        say(out, f"{len(answers) - len(failed)} ok, {len(failed)} failed"
                 + (f" ({', '.join(failed)})" if failed else "") + f", {len(errors)} unreachable")
    if failed or errors:
        sys.exit(EXIT_ERROR)
