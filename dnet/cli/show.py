"""`dnet show`: the resolved model, every host with its effective settings."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from dnet.cli.common import inventory_option, json_option, load_inventory, out, print_json, quiet_option, say
from dnet.inventory import hosts, stacks
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
    t = table(out, "hosts", "name", "ssh", "identity", "roles", "labels", "engine")
    for h in resolved.values():
        eng = h.engine
        pools = ",".join(f"{p.base}/{p.size}" for p in eng.default_address_pools)
        engine = f"mtu={eng.mtu} dns={','.join(eng.dns)} pools={pools}"
        jump = f" via {h.proxy_jump}" if h.proxy_jump else ""
        row(t, h.name, f"{h.user}@{h.hostname}:{h.port}{jump}", h.identity_file or "-", ",".join(h.roles) or "-",
            ",".join(f"{k}={v}" for k, v in h.labels.items()) or "-", engine)
    show(out, t)
    t = table(out, "networks", "name", "driver", "subnet", "gateway", "flags", "hosts")
    for n, net in inv.networks.items():
        flags = ",".join(f for f in ("attachable", "internal", "encrypted") if getattr(net, f)) or "-"
        on = bridge_hosts(inv, n) if net.driver == "bridge" else swarm_hosts(inv)
        row(t, n, net.driver, net.subnet or "auto", net.gateway or "auto", flags, ",".join(on))
    show(out, t)
    t = table(out, "workloads", "name", "kind", "where", "image", "networks", "ports")
    for s, svc in inv.services.items():
        ports = ",".join(f"{p.published}:{p.target}/{p.protocol}({p.mode})" for p in svc.ports) or "-"
        count = "global" if svc.mode == "global" else f"x{svc.replicas}"
        where = "swarm" + (f" ({'; '.join(svc.placement.constraints)})" if svc.placement and
                           svc.placement.constraints else "")
        row(t, s, f"service {count} {svc.endpoint_mode}", where, svc.image, ",".join(svc.networks), ports)
    for c, ctr in inv.containers.items():
        row(t, c, "container", ctr.host, ctr.image, ",".join(ctr.networks), ",".join(map(str, ctr.ports)) or "-")
    for name, st in inv.stacks.items():  # read here only for their services' names (validate read the files)
        try:
            svcs = list(stacks.read(name, st.file, Path(loaded.path).parent).services)
        except stacks.StackError:
            svcs = []
        adopt = " (adopt)" if st.adopt else ""
        row(t, name, f"stack: {', '.join(f'{name}_{x}' for x in svcs) or '?'}", "swarm", f"{st.file}{adopt}", "-",
            "-")
    show(out, t)
    for f in inv.forwards:
        say(out, f"forward {f.host}:{f.listen}/{f.protocol} -> {f.to}")
