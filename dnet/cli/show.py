"""`dnet show`: the resolved model, every host with its effective settings."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from dnet.cli.common import inventory_option, json_option, load_inventory, out, print_json, quiet_option
from dnet.inventory import hosts, stacks
from dnet.inventory.resolve import HostSpec
from dnet.inventory.schema import Inventory
from dnet.inventory.semantic import bridge_hosts, swarm_hosts
from dnet.output import row, show, table


@click.command("show")
@inventory_option
@json_option
@quiet_option
def command(inventory: str, as_json: bool, quiet: bool) -> None:
    """Show the resolved inventory: hosts with effective settings, networks, workloads."""
    loaded = load_inventory(inventory, quiet or as_json)
    inv = loaded.model
    resolved = hosts(inv)
    if as_json:
        data = inv.model_dump(mode="json", by_alias=True)
        data["hosts"] = {n: {**asdict(h), "engine": h.engine.model_dump(mode="json")} for n, h in resolved.items()}
        print_json(data)
        return
    for title, columns, rows in sections(inv, resolved, Path(loaded.path).parent):
        t = table(out, title, *columns)
        for r in rows:
            row(t, *r)
        show(out, t)


def cell(value: object) -> str:
    """One field: no spaces (awk splits on them), "-" for nothing."""
    if value is None or value == "" or value == [] or value == {}:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ",".join(cell(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}={cell(v)}" for k, v in value.items())
    return str(value).replace(" ", "_")


Section = tuple[str, list[str], list[list[str]]]


def sections(inv: Inventory, resolved: dict[str, HostSpec], base: Path) -> list[Section]:
    """Every table show prints: one record per line, every field free of spaces."""
    out: list[Section] = []
    rows = []
    for h in resolved.values():
        eng = h.engine
        pools = [f"{p.base}:{p.size}" for p in eng.default_address_pools]
        rows.append([h.name, f"{h.user}@{h.hostname}:{h.port}", cell(h.proxy_jump), cell(h.identity_file),
                     cell(list(h.roles)), cell(h.labels), cell(eng.mtu), cell(eng.dns), cell(pools),
                     cell({k: v for k, v in h.sources.items()})])
    out.append(("hosts", ["name", "ssh", "jump", "identity", "roles", "labels", "mtu", "dns", "pools(base:size)",
                          "from"], rows))
    sw = inv.swarm
    if sw is not None:
        fields = sw.model_dump(mode="json", exclude_none=True)
        out.append(("swarm", ["setting", "value"], [[k, cell(v)] for k, v in fields.items()] or [["-", "-"]]))
    rows = []
    for n, net in inv.networks.items():
        flags = [f for f in ("attachable", "internal", "encrypted") if getattr(net, f)]
        on = bridge_hosts(inv, n) if net.driver == "bridge" else swarm_hosts(inv)
        rows.append([n, net.driver, net.subnet or "auto", net.gateway or "auto", cell(flags), cell(on)])
    out.append(("networks", ["name", "driver", "subnet", "gateway", "flags", "hosts"], rows))
    rows = []
    for s, svc in inv.services.items():
        ports = [f"{p.published}:{p.target}/{p.protocol}:{p.mode}" for p in svc.ports]
        count = "global" if svc.mode == "global" else str(svc.replicas)
        where = cell(svc.placement.constraints) if svc.placement and svc.placement.constraints else "swarm"
        rows.append([s, "service", count, svc.endpoint_mode, where, svc.image, cell(svc.networks), cell(ports)])
    for c, ctr in inv.containers.items():
        ports = [str(p) for p in ctr.ports]
        rows.append([c, "container", "1", "-", ctr.host, ctr.image, cell(ctr.networks), cell(ports)])
    for name, st in inv.stacks.items():  # read here only for their services' names (validate read the files)
        try:
            svcs = list(stacks.read(name, st.file, base).services)
        except stacks.StackError:
            svcs = []
        rows.append([name, "stack" + ("(adopt)" if st.adopt else ""), str(len(svcs)), "-", "swarm", cell(st.file),
                     "-", cell([f"{name}_{x}" for x in svcs])])
    out.append(("workloads", ["name", "kind", "replicas", "endpoint", "where", "image", "networks",
                              "ports"], rows))  # published:target/protocol:mode
    if inv.forwards:
        out.append(("forwards", ["host", "listen", "protocol", "to"],
                    [[f.host, str(f.listen), f.protocol, f.to] for f in inv.forwards]))
    if inv.egress:
        out.append(("egress", ["url"], [[cell(u)] for u in inv.egress]))
    if inv.checks:
        out.append(("checks", ["from", "to", "expect"], [[c.from_, cell(c.to), c.expect] for c in inv.checks]))
    return out
