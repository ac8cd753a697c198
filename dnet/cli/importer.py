"""`dnet import`: read a running cluster into an inventory that plans no changes (see dnet.brownfield)."""
from __future__ import annotations

import os
from pathlib import Path

import click

from dnet.brownfield import importer
from dnet.brownfield.stackcheck import differences
from dnet.cli.common import accept_option, command_logger, err, log_to, quiet_option, say, styled, verbose_option
from dnet.errors import DnetError, InventoryError
from dnet.inventory import loads, missing_keys, stacks
from dnet.session import open_session


def _stack_files(pairs: tuple[str, ...], output: str | None) -> dict[str, Path]:
    out = {}
    for pair in pairs:
        name, eq, path = pair.partition("=")
        if not eq or not name or not path:
            raise click.UsageError(f"--stack-file {pair!r}: write NAME=FILE")
        out[name] = Path(path)
    if out and not output:
        raise click.UsageError("--stack-file needs -o: a stack's file is named in the inventory written there")
    return out


@click.command("import")
@click.option("-i", "--inventory", "hosts_file", required=True, metavar="HOSTS.yml",
              help="The hosts to read (hosts, and defaults for SSH); their comments and order are kept.")
@click.option("-o", "--output", default=None, metavar="OUT.yml",
              help="Write the inventory here (mode 0600: env values are written as they run), and each stack's "
                   "compose file beside it (STACK.compose.yml); default: print the inventory, stacks as services.")
@click.option("--cluster", default=None, metavar="NAME", help="The inventory's cluster name (default: HOSTS.yml's, "
              "else 'default'); objects dnet made for this cluster are imported as its own.")
@click.option("--stack-file", "stack_files", multiple=True, metavar="NAME=FILE",
              help="Use your own compose file for running stack NAME (checked against what runs) instead of writing "
                   "one; repeatable; needs -o.")
@accept_option
@quiet_option
@verbose_option
def command(hosts_file: str, output: str | None, cluster: str | None, stack_files: tuple[str, ...],
            accept_new_host_keys: bool, quiet: bool, verbose: bool) -> None:
    """Write the inventory of the cluster the hosts run: hosts, swarm, networks, services, containers, forwards."""
    own = _stack_files(stack_files, output)
    try:
        text = Path(hosts_file).read_text(encoding="utf-8")
    except OSError as exc:
        raise DnetError(f"{hosts_file}: cannot read it: {exc.strerror or exc}") from None
    # validated with a version appended (not prepended: problems keep their line numbers)
    probe = text if any(line.startswith("version:") for line in text.splitlines()) else text + "\nversion: 1\n"
    loaded = loads(probe, hosts_file)
    if missing := missing_keys(loaded):
        raise InventoryError(missing)
    if cluster:
        loaded = loaded._replace(model=loaded.model.model_copy(update={"cluster": cluster}))
    name = loaded.model.cluster
    with open_session(loaded, accept_new_host_keys, log_to(quiet), command_logger(verbose)) as s:
        if s.host_errors:
            for h, e in s.host_errors.items():
                say(err, styled("unreachable", "red"), f" {h}: {e}")
            raise DnetError("import needs every host: fix the unreachable ones, or leave them out of the hosts file")
        got = importer.gather(s.facts, s.specs, name, stacks=output is not None)
        leader = importer.leader_of(s.facts)
        for st, path in own.items():
            if st not in got.stacks or leader is None:
                raise DnetError(f"--stack-file {st}={path}: no stack '{st}' runs on these hosts")
            c = stacks.read(st, str(path), Path.cwd())
            if problems := differences(s.facts[leader], c, Path.cwd(), name):
                raise DnetError(f"--stack-file {st}={path}: it does not say what runs: " + "; ".join(problems))
    files = {st: os.path.relpath(path.resolve(), Path(output).resolve().parent) for st, path in own.items()} \
        if output else {}
    result = importer.write(text, got, cluster, files)
    composed = {Path(output).parent / importer.compose_file(st): importer.compose_text(doc)
                for st, doc in got.stacks.items() if st not in own} if output else {}
    for path, body in composed.items():
        if path.exists() and path.read_text(encoding="utf-8") != body:
            raise DnetError(f"{path} exists and differs from the stack's compose file import would write; move it "
                            "away and import again")
    counts = ", ".join(f"{len(getattr(got, k))} {k}" for k in ("networks", "services", "containers", "forwards"))
    if output:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(result)
        for path, body in composed.items():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(body)
        if not quiet:
            written = f", {len(got.stacks)} stacks ({', '.join(str(p) for p in composed)})" if composed else ""
            say(err, f"wrote {output}: {len(got.hosts)} hosts, {counts}{written}")
    else:
        click.echo(result, nl=False)
    if not quiet:
        for n in got.notes:
            say(err, styled("not imported", "yellow"), f" {n}")
        say(err, "next: review it, then `dnet plan -i OUT.yml` (adoptions only, no changes) and `dnet apply` to "
                 "adopt what runs")
