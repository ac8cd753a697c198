"""`dnet show`: the resolved model, every host with its effective settings."""
from __future__ import annotations

from dataclasses import asdict

import click
from rich.table import Table

from dnet.cli.common import inventory_option, json_option, load_inventory, out, print_json
from dnet.inventory import hosts


@click.command("show")
@inventory_option
@json_option
def command(inventory: str, as_json: bool) -> None:
    """Show the resolved inventory: hosts with effective settings, networks, workloads."""
    loaded = load_inventory(inventory)
    inv = loaded.model
    resolved = hosts(inv)
    if as_json:
        data = inv.model_dump(mode="json", by_alias=True)
        data["hosts"] = {n: {**asdict(h), "engine": h.engine.model_dump(mode="json")} for n, h in resolved.items()}
        print_json(data)
        return
    t = Table(title="hosts")
    for col in ("name", "ssh", "identity", "roles", "labels", "engine"):
        t.add_column(col)
    for h in resolved.values():
        eng = h.engine
        pools = ",".join(f"{p.base}/{p.size}" for p in eng.default_address_pools)
        engine = f"mtu={eng.mtu} dns={','.join(eng.dns)} pools={pools}"
        jump = f" via {h.proxy_jump}" if h.proxy_jump else ""
        t.add_row(h.name, f"{h.user}@{h.hostname}:{h.port}{jump}", h.identity_file or "-", ",".join(h.roles) or "-",
                  ",".join(f"{k}={v}" for k, v in h.labels.items()) or "-", engine)
    out.print(t)
    t = Table(title="networks")
    for col in ("name", "driver", "subnet", "gateway", "flags", "hosts"):
        t.add_column(col)
    from dnet.inventory.semantic import bridge_hosts, swarm_hosts

    for n, net in inv.networks.items():
        flags = ",".join(f for f in ("attachable", "internal", "encrypted") if getattr(net, f)) or "-"
        on = bridge_hosts(inv, n) if net.driver == "bridge" else swarm_hosts(inv)
        t.add_row(n, net.driver, net.subnet or "auto", net.gateway or "auto", flags, ",".join(on))
    out.print(t)
    t = Table(title="workloads")
    for col in ("name", "kind", "where", "image", "networks", "ports"):
        t.add_column(col)
    for s, svc in inv.services.items():
        ports = ",".join(f"{p.published}:{p.target}/{p.protocol}({p.mode})" for p in svc.ports) or "-"
        t.add_row(s, f"service x{svc.replicas} {svc.endpoint_mode}", "swarm", svc.image, ",".join(svc.networks), ports)
    for c, ctr in inv.containers.items():
        t.add_row(c, "container", ctr.host, ctr.image, ",".join(ctr.networks), ",".join(map(str, ctr.ports)) or "-")
    out.print(t)
    for f in inv.forwards:
        out.print(f"forward {f.host}:{f.listen}/{f.protocol} -> {f.to}", markup=False)
