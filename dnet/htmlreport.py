"""`dnet report`: one self-contained HTML page for a ticket: the topology picture, doctor's findings, verify's
findings and its sources x destinations matrix coloured by result, each failed cell linked to its checks' hints.
No script, no stylesheet or font from the network: it renders offline."""
from __future__ import annotations

import shutil
from datetime import UTC, datetime
from html import escape

from dnet.doctor import Finding as DoctorFinding
from dnet.errors import DnetError
from dnet.graph import run_dot, safe_svg
from dnet.verify import Report
from dnet.verify.model import SCOPES, Check
from dnet.verify.report import grid

STYLE = """body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px;text-align:left}th{background:#f4f4f4}
td.ok{background:#d9f2d9}td.fail{background:#f8d0d0}td.none{color:#bbb}.error{color:#b00}.warning{color:#a60}
.info{color:#06a}svg{max-width:100%;height:auto}pre{background:#f7f7f7;padding:1em;overflow:auto}"""


# The page runs no script and fetches nothing, whatever a name in it says: styles are its own, pictures inline.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


def _picture(dot: str) -> str:
    if shutil.which("dot"):
        try:
            return safe_svg(run_dot(dot, "svg").decode(errors="replace"))
        except DnetError as exc:
            why = escape(str(exc))
            return f"<p>(the topology could not be drawn: {why}; here it is as DOT)</p><pre>{escape(dot)}</pre>"
    return f"<p>(Graphviz is not installed here: the topology as DOT)</p><pre>{escape(dot)}</pre>"


def _matrix(checks: list[Check]) -> str:
    srcs, dsts, grouped = grid(checks)
    ids = {c.id: n for n, c in enumerate(checks)}
    out = ["<table><tr><th>from \\ to</th>" + "".join(f"<th>{escape(d)}</th>" for d in dsts) + "</tr>"]
    for s in srcs:
        cells = [f"<th>{escape(s)}</th>"]
        for d in dsts:
            cs = grouped.get((s, d), [])
            if not cs:
                cells.append('<td class="none">-</td>')
                continue
            good = sum(c.ok for c in cs)
            bad = [c for c in cs if not c.ok]
            if bad:
                cells.append(f'<td class="fail"><a href="#check-{ids[bad[0].id]}" '
                             f'title="{escape(bad[0].tags.get("hint", ""))}">{good}/{len(cs)}</a></td>')
            else:
                cells.append(f'<td class="ok">{good}/{len(cs)}</td>')
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def page(title: str, dot: str, report: Report, doctor: list[DoctorFinding], unreachable: dict[str, str]) -> str:
    checks = report.checks
    failed = [(n, c) for n, c in enumerate(checks) if not c.ok]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><meta http-equiv='Content-Security-Policy' "
             f"content=\"{CSP}\"><title>{escape(title)}</title>",
             f"<style>{STYLE}</style></head><body>",
             f"<h1>{escape(title)}</h1><p>written {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; "
             f"{len(checks) - len(failed)} of {len(checks)} checks hold in {report.seconds:.1f}s</p>",
             "<h2>Topology</h2>", _picture(dot), "<h2>Doctor</h2>"]
    if doctor:
        parts.append("<table><tr><th>severity</th><th>hosts</th><th>finding</th><th>evidence</th><th>fix</th></tr>")
        parts += [f"<tr><td class='{f.severity}'>{f.severity}</td><td>{escape(', '.join(f.hosts))}</td>"
                  f"<td>{escape(f.what)}</td><td>{escape('; '.join(f.evidence))}</td><td>{escape(f.fix)}</td></tr>"
                  for f in doctor]
        parts.append("</table>")
    else:
        parts.append("<p>Nothing known to break swarm networking was found.</p>")
    parts.append("<h2>Verify findings</h2>")
    parts += [f"<p><b>{escape(f.cause)}</b><br>evidence: {escape('; '.join(f.evidence))}<br>fix: {escape(f.fix)}</p>"
              for f in report.findings] or ["<p>None.</p>" if not failed else "<p>No cause confirmed.</p>"]
    parts += ["<h2>Connectivity matrix</h2><p>rows: from, columns: to; checks that hold / checks. A red cell links "
              "to its failed checks.</p>", _matrix(checks)]
    if failed:
        parts.append("<h2>Failed checks</h2><table><tr><th>scope</th><th>from</th><th>to</th><th>check</th>"
                     "<th>result</th><th>hint</th></tr>")
        parts += [f"<tr id='check-{n}'><td>{escape(SCOPES[c.scope])}</td><td>{escape(c.src)}</td>"
                  f"<td>{escape(c.dst)}</td><td>{escape(c.what)}</td><td>{escape(c.result)}</td>"
                  f"<td>{escape(c.tags.get('hint', ''))}</td></tr>" for n, c in failed]
        parts.append("</table>")
    if unreachable:
        parts.append("<h2>Unreachable</h2><ul>" + "".join(f"<li>{escape(h)}: {escape(e)}</li>"
                                                         for h, e in unreachable.items()) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
