"""`dnet graph`: the topology as Graphviz DOT (rendered to SVG or PNG by Graphviz's `dot`): hosts, their bridge
networks, the overlays across them, containers and service tasks where they run, published ports and forwards."""
from __future__ import annotations

import shutil
import subprocess

from dnet.errors import DnetError, clean
from dnet.facts import HostFacts
from dnet.inventory.resolve import HostSpec, address_of
from dnet.inventory.schema import Inventory, Service
from dnet.inventory.semantic import members
from dnet.verify.derive import instances


class _Ids:
    """DOT node IDs made by dnet (n0, n1, ...): names read from hosts (any docker user can label a container as a
    task) never become DOT syntax; they appear only inside escaped labels."""

    def __init__(self) -> None:
        self.known: dict[tuple[str, ...], str] = {}

    def __call__(self, *parts: str) -> str:
        kind = "cluster" if parts[0] == "cluster" else "n"  # Graphviz draws a box only around a "cluster*"
        return self.known.setdefault(parts, f"{kind}{len(self.known)}")


BREAK = "\x00"  # stands for a line break inside a label until _label writes it as DOT's \n


def _label(text: str) -> str:
    """A DOT string: backslashes doubled (so none escapes the closing quote or starts \\N, \\G, \\l ...), double quotes
    made single, control characters shown as \\xNN."""
    parts = (clean(p).replace("\\", "\\\\").replace('"', "'") for p in text.split(BREAK))
    return '"' + "\\n".join(parts) + '"'


def _sub(subnet: str | None) -> str:
    return BREAK + subnet if subnet else ""


def dot(inv: Inventory, specs: dict[str, HostSpec], facts: dict[str, HostFacts]) -> str:
    """The DOT text. Where facts are known, service tasks are drawn on the hosts that run them."""
    _id = _Ids()
    lines = ["digraph dnet {", '  graph [rankdir=LR, fontname="Helvetica", label="dnet topology", labelloc=t];',
             '  node [fontname="Helvetica", fontsize=10]; edge [fontname="Helvetica", fontsize=9];']
    overlays = [n for n, net in inv.networks.items() if net.driver == "overlay"]
    for n in overlays:
        net = inv.networks[n]
        extra = ", internal" if net.internal else ""
        lines.append(f"  {_id('net', n)} [shape=hexagon, style=filled, fillcolor=lightblue, "
                     f"label={_label(f'{n} (overlay{extra})' + _sub(net.subnet))}];")
    placed = {(i.host, i.name): i for i in instances(inv, facts)} if facts else {}
    for h, spec in specs.items():
        roles = ", ".join(inv.hosts[h].roles) or "no swarm role"
        lines.append(f"  subgraph {_id('cluster', h)} {{")
        lines.append(f"    label={_label(f'{h} ({address_of(spec)}, {roles})')}; style=rounded; color=gray40;")
        lines.append(f"    {_id('host', h)} [shape=box3d, label={_label(h)}];")
        for n, net in inv.networks.items():
            if net.driver == "bridge" and h in members(inv, net.hosts or list(inv.hosts)):
                lines.append(f"    {_id('net', n, h)} [shape=hexagon, style=filled, fillcolor=lightyellow, "
                             f"label={_label(f'{n} (bridge)' + _sub(net.subnet))}];")
        for name, ctr in inv.containers.items():
            if ctr.host == h:
                ports = "".join(f"{BREAK}{p}" for p in ctr.ports)
                lines.append(f"    {_id('ctr', name)} [shape=box, style=rounded, label={_label(name + ports)}];")
        for (host, task), i in sorted(placed.items()):
            if host == h and i.kind == "task":
                lines.append(f"    {_id('task', task)} [shape=box, style=\"rounded,filled\", fillcolor=honeydew, "
                             f"label={_label(task)}];")
        lines.append("  }")
    for name, ctr in inv.containers.items():
        for n in ctr.networks:
            target = _id("net", n) if n in overlays else _id("net", n, ctr.host)
            lines.append(f"  {_id('ctr', name)} -> {target} [dir=none];")
    tasks = [i for i in placed.values() if i.kind == "task"]
    for name, svc in inv.services.items():
        mine = [i for i in tasks if i.workload == name]
        if not mine:  # nothing known about placement: one node for the service
            lines.append(f"  {_id('svc', name)} [shape=box, style=\"rounded,filled\", fillcolor=honeydew, "
                         f"label={_label(f'{name} {_count(svc)}')}];")
        for i in mine:
            if i.host not in specs:  # no task runs on a host read (drawn outside every host)
                lines.append(f"  {_id('task', i.name)} [shape=box, style=\"rounded,dashed\", "
                             f"label={_label(f'{name} {_count(svc)} (no task running)')}];")
        for src in [_id("task", i.name) for i in mine] or [_id("svc", name)]:
            for n in svc.networks:
                lines.append(f"  {src} -> {_id('net', n)} [dir=none];")
        for p in svc.ports:
            lines.append(f"  {_id('port', name, str(p.published))} [shape=plaintext, "
                         f"label={_label(f'{p.published}/{p.protocol} ({p.mode}) -> {name}:{p.target}')}];")
            for src in [_id("task", i.name) for i in mine] or [_id("svc", name)]:
                lines.append(f"  {_id('port', name, str(p.published))} -> {src} [style=dashed];")
    for f in inv.forwards:
        target = _id("host", f.to_host) if f.to_host in specs else _id("ext", f.to_host)
        lines.append(f"  {_id('host', f.host)} -> {target} [color=darkorange, "
                     f"label={_label(f'forward {f.listen}/{f.protocol} -> {f.to}')}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(text: str, path: str) -> None:
    """Write DOT as it is (.dot, .gv), or render it with Graphviz (.svg, .png)."""
    kind = path.rsplit(".", 1)[-1].lower()
    if kind in ("dot", "gv"):
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        return
    if kind not in ("svg", "png"):
        raise DnetError(f"-o {path}: write .dot, .svg or .png")
    data = run_dot(text, kind)
    with open(path, "wb") as fh:
        fh.write(safe_svg(data.decode()).encode() if kind == "svg" else data)


def run_dot(text: str, kind: str, timeout: float = 120) -> bytes:
    """Graphviz's rendering of DOT text; DnetError (never a traceback) when dot is missing, fails or takes too long."""
    if not shutil.which("dot"):
        raise DnetError("rendering needs Graphviz's dot command (apt-get install graphviz); or write a .dot file")
    try:
        r = subprocess.run(["dot", f"-T{kind}"], input=text.encode(), capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DnetError(f"Graphviz's dot took longer than {timeout:.0f}s to draw the topology; write a .dot file "
                        "instead (-o FILE.dot) and render it yourself") from None
    if r.returncode != 0:
        raise DnetError(f"dot failed: {clean(r.stderr.decode(errors='replace').strip()[-500:])}")
    return r.stdout


SVG_NS = "http://www.w3.org/2000/svg"
XLINK = "{http://www.w3.org/1999/xlink}href"


def safe_svg(svg: str) -> str:
    """The SVG with every link, script, event handler and foreign content taken out: dnet's drawings link nowhere,
    so whatever is there came from a name someone chose."""
    import xml.etree.ElementTree as ET

    ET.register_namespace("", SVG_NS)
    ET.register_namespace("xlink", "http://www.w3.org/1999/xlink")
    try:
        root = ET.fromstring(svg[svg.find("<svg"):])
    except ET.ParseError as exc:
        raise DnetError(f"Graphviz's dot wrote no readable SVG ({exc})") from None
    bad = {f"{{{SVG_NS}}}{t}" for t in ("script", "foreignObject", "iframe", "use", "image", "animate", "set")}

    def scrub(el: ET.Element) -> None:
        kept: list[ET.Element] = []
        for child in list(el):
            scrub(child)
            if child.tag in bad:
                continue
            if child.tag == f"{{{SVG_NS}}}a":  # keep what the link wrapped, drop the link
                kept += list(child)
            else:
                kept.append(child)
        el[:] = kept
        for attr in list(el.attrib):
            local = attr.rsplit("}", 1)[-1].lower()
            if local.startswith("on") or local == "href" or attr == XLINK or (
                    local == "style" and "url(" in el.attrib[attr]):
                del el.attrib[attr]

    scrub(root)
    return ET.tostring(root, encoding="unicode")


def _count(svc: Service) -> str:
    return "global" if svc.mode == "global" else f"x{svc.replicas}"
