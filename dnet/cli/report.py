"""`dnet report`: one self-contained HTML page with the topology, doctor's findings and the verify matrix."""
from __future__ import annotations

from pathlib import Path

import click

from dnet.cli.common import accept_option, inventory_option, load_inventory, log_to, out, quiet_option, say
from dnet.doctor import examine
from dnet.graph import dot
from dnet.htmlreport import page
from dnet.session import open_session
from dnet.verify import verify


@click.command("report")
@inventory_option
@click.option("-o", "--output", "output_path", required=True, type=click.Path(dir_okay=False),
              help="The HTML file to write.")
@accept_option
@quiet_option
def command(inventory: str, output_path: str, accept_new_host_keys: bool, quiet: bool) -> None:
    """Write one self-contained HTML page: topology, doctor's findings, verify's findings and matrix."""
    loaded = load_inventory(inventory, quiet, connect=True)
    log = log_to(quiet)
    with open_session(loaded, accept_new_host_keys, log) as s:
        picture = dot(loaded.model, s.specs, s.facts)
        found = examine(s)
        result = verify(s, log)
    Path(output_path).write_text(page(f"dnet report: {Path(inventory).name}", picture, result, found,
                                      s.host_errors), encoding="utf-8")
    failed = sum(not c.ok for c in result.checks)
    say(out, f"{output_path}: {len(result.checks) - failed}/{len(result.checks)} checks hold, {len(found)} doctor "
             "findings")
